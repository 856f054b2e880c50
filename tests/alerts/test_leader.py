"""Leader election on a PostgreSQL advisory lock: one leader, takeover when it goes away."""

from __future__ import annotations

import psycopg

from alerts.observability.metrics import AlertsMetrics
from alerts.scheduling.leader import LEADER_LOCK_KEY, LeaderElection
from devstack.servers import wait_for
from tests.alerts.core import *  # noqa: F403


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def test_one_replica_leads_and_the_other_takes_over_when_it_releases(alerts_pg_url):
    first_metrics, second_metrics = AlertsMetrics(), AlertsMetrics()
    first = LeaderElection(alerts_pg_url, metrics=first_metrics)
    second = LeaderElection(alerts_pg_url, metrics=second_metrics)
    try:
        assert first.try_lead() is True
        assert second.try_lead() is False
        assert first.confirm() and not second.confirm()
        assert first_metrics.registry.get_sample_value("alert_leader") == 1
        assert second_metrics.registry.get_sample_value("alert_leader") == 0
        first.release()
        assert first_metrics.registry.get_sample_value("alert_leader") == 0
        assert second.try_lead() is True
        assert first.try_lead() is False
    finally:
        first.release()
        second.release()


def test_a_leader_whose_session_is_killed_stops_leading_and_a_standby_takes_over(alerts_pg_url):
    leader = LeaderElection(alerts_pg_url, metrics=AlertsMetrics())
    standby = LeaderElection(alerts_pg_url, metrics=AlertsMetrics())
    try:
        assert leader.try_lead()
        with psycopg.connect(libpq(alerts_pg_url), autocommit=True) as admin:
            [(pid,)] = admin.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND objid = %s AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())", (LEADER_LOCK_KEY,)).fetchall()
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # pg_terminate_backend only signals: the lock is free once that backend has exited.
        assert wait_for(standby.try_lead, timeout=10, what="the standby to take the lock") is True
        assert leader.confirm() is False  # it notices before its next piece of work
        assert leader.try_lead() is False
    finally:
        leader.release()
        standby.release()


def test_the_lock_is_held_on_a_session_named_for_operators(alerts_pg_url):
    leader = LeaderElection(alerts_pg_url, metrics=AlertsMetrics())
    try:
        assert leader.try_lead()
        with psycopg.connect(libpq(alerts_pg_url), autocommit=True) as admin:
            rows = admin.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())").fetchall()
        assert rows == [("alerts-leader",)]
    finally:
        leader.release()


def test_embedded_sqlite_is_always_its_own_leader(alerts_sqlite_url):
    metrics = AlertsMetrics()
    election = LeaderElection(alerts_sqlite_url, metrics=metrics)
    assert election.try_lead() and election.confirm()
    assert metrics.registry.get_sample_value("alert_leader") == 1
