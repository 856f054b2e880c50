"""The alerts tables as the code declares them are the tables the alerts migrations build, on
SQLite and PostgreSQL: alerts/store/schema.py and alerts/migrations cannot drift apart."""

from __future__ import annotations

from alerts.store.schema import metadata
from tests.alerts.core import *  # noqa: F403
from tests.support.schema_drift import schema_drift


def test_the_migrated_database_has_exactly_the_declared_alerts_tables(alerts_db_url):
    assert set(metadata.tables) == {"alert_states", "alert_outbox", "alert_notifications",
                                    "alert_silences", "alert_budget_notices", "alert_audit",
                                    "alert_escalations", "alert_episodes", "alert_incidents",
                                    "alert_incident_events", "alert_incident_tasks"}
    assert schema_drift(metadata, alerts_db_url,
                        include_table=lambda name: name in metadata.tables) == []
