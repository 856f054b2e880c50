"""The Alerts page against the real alerts process (AppTest, no browser).

The module's stack: a scratch PostgreSQL database, an engine, a Prometheus scraping it with the
shipped rules, a real SMTP server and a Slack stand-in, and `python -m alerts serve` evaluating
the shipped rules every second. Its routes file sends every rule alert to on-call email and
Slack; the SMTP server refuses the on-call address, so the always-firing Watchdog shows one
channel sent (Slack) and one failed with its reason (email).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from devstack.processes import AlertsProcess, EngineProcess, PrometheusServer
from devstack.receivers import SlackReceiver, SmtpServer
from devstack.servers import create_scratch_database, drop_database, wait_for
from devstack.stack import Stack
from tests.dashboard.conftest import (
    ADMIN,
    OPERATOR,
    VIEWER,
)

# One worker runs the whole module, so its module-scoped stack is started once.
pytestmark = [pytest.mark.processes, pytest.mark.xdist_group("test_alerts_page_live")]

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
ONCALL = "oncall@example.com"
ROUTES = """\
version: 1
defaults:
  group_by: [alertname]
  repeat_interval: 4h
  send_resolved: true
receivers:
  oncall-email:
    email:
      to: ["${ONCALL_EMAIL}"]
  oncall-slack:
    slack:
      webhook_url: "${SLACK_WEBHOOK_URL}"
routes:
  - name: everything
    match:
      kind: rule
    receivers: [oncall-email, oncall-slack]
"""


@dataclass
class AlertsStack:
    engine: EngineProcess
    prometheus: PrometheusServer
    alerts: AlertsProcess
    watchdog: str  # its fingerprint
    console_env: dict[str, str]  # what `python -m dashboard` would give the app
    people: dict[str, dict[str, Any]]  # a viewer and an operator, signed in


def _watchdog(alerts_url: str) -> dict[str, Any] | None:
    body = httpx.get(f"{alerts_url}/v1/alerts", params={"state": "active"}, timeout=5,
                     headers={"X-Admin-Key": ADMIN}).json()
    return next((a for a in body["alerts"] if a["alertname"] == "Watchdog"), None)


@pytest.fixture(scope="module")
def alerts_stack(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[AlertsStack]:
    database_url = create_scratch_database(pg_server_url)
    routes = tmp_path_factory.mktemp("alerts-page") / "routes.yml"
    routes.write_text(ROUTES)
    with SmtpServer() as smtp, SlackReceiver() as slack:
        smtp.reject_recipient(ONCALL)
        stack = Stack(database_url, admin_key=ADMIN,
                      parts=("oidc", "engine", "prometheus", "alerts"),
                      engine_env={"REDIS_URL": ""},
                      alerts_env={"EVALUATION_INTERVAL_SECONDS": "1", "ROUTES_FILE": str(routes),
                                  "ONCALL_EMAIL": ONCALL, "SLACK_WEBHOOK_URL": slack.url,
                                  **smtp.environ()})
        try:
            with stack:
                assert stack.engine and stack.prometheus and stack.alerts
                alerts = stack.alerts

                def watchdog_delivered() -> bool:
                    alert = _watchdog(alerts.url)
                    statuses = {c: d["status"]
                                for c, d in (alert or {}).get("delivery", {}).items()}
                    return statuses == {"email": "failed", "slack": "sent"}

                # The Watchdog has no `for`: it fires on the first evaluation, then is delivered.
                wait_for(watchdog_delivered, timeout=30,
                         what="the Watchdog to fire and reach Slack (email refused)")
                watchdog = _watchdog(alerts.url)
                assert watchdog is not None
                assert stack.oidc is not None
                yield AlertsStack(stack.engine, stack.prometheus, alerts,
                                  watchdog["fingerprint"], stack.console_environ(),
                                  {p: stack.console_user(p) for p in (VIEWER, OPERATOR)})
        finally:
            drop_database(database_url)


@pytest.fixture
def open_alerts(alerts_stack: AlertsStack,
                monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    for name, value in alerts_stack.console_env.items():
        monkeypatch.setenv(name, value)
    st.cache_data.clear()

    def open_page(*, person: str = VIEWER) -> AppTest:
        app = AppTest.from_file(APP, default_timeout=30)
        app.user = dict(alerts_stack.people[person])
        app.run()
        app.switch_page("views/alerts.py")
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        return app

    return open_page


def _text(app: AppTest) -> str:
    return "\n".join(m.value for m in app.markdown)


def _card(app: AppTest, name: str) -> str:
    """The markdown of one alert's card: from its header to the next header."""
    values = [m.value for m in app.markdown]
    start = next(i for i, v in enumerate(values) if f"**{name}**" in v)
    end = next((i for i in range(start + 1, len(values)) if "border-radius:4px" in values[i]),
               len(values))
    return "\n".join(values[start:end])


def _errors(app: AppTest) -> list[str]:
    return [e.value for e in app.error]


def _select_watchdog(app: AppTest) -> AppTest:
    box = app.selectbox(key="action_alert")
    index = next(i for i, label in enumerate(box.options) if "Watchdog" in label)
    return box.select_index(index).run()


def _silences(alerts_stack: AlertsStack) -> list[dict[str, Any]]:
    return list(httpx.get(f"{alerts_stack.alerts.url}/v1/silences", timeout=5,
                          headers={"X-Admin-Key": ADMIN}).json()["silences"])


def test_watchdog_is_listed_with_its_runbook_since_and_delivery_per_channel(open_alerts):
    app = open_alerts()
    assert not _errors(app)
    card = _card(app, "Watchdog")
    assert "P3" in card and "firing" in card
    assert "(/runbooks?runbook=alerting&section=watchdog)" in card
    assert "[Dashboard](http" in card
    # A readable UTC time and how long it has been firing, not the API's ISO string.
    assert re.search(r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, for \d+ (s|min)", card), card
    assert not re.search(r"\d\d:\d\d:\d\d\.\d+", card)
    assert "value 1" in card
    assert "Not acknowledged" in card
    assert re.search(r"slack via oncall-slack: sent \d{4}-\d\d-\d\d \d\d:\d\d UTC \(1 attempt\)",
                     card), card
    assert re.search(r"email via oncall-email: failed, rejected: .*550.*\(1 attempt\)", card), card
    assert any("Watchdog, always firing" in m.value for m in app.markdown)

    app.radio(key="alerts_state").set_value("recent").run()
    assert not app.exception
    assert "Watchdog" in _text(app)
    # The history: it fired and is still firing, with how fast it was answered per alert.
    history = next(d.value for d in app.dataframe if "To acknowledge" in d.value.columns)
    watchdog = history[history["Alert"] == "Watchdog"].iloc[0]
    assert (watchdog["Severity"], watchdog["To resolve"]) == ("P3", "still firing")
    stats = next(d.value for d in app.dataframe if "Median to resolve" in d.value.columns)
    assert "Watchdog" in list(stats["Alert"])


def test_acknowledging_is_offered_to_operators_and_records_the_person(open_alerts, alerts_stack):
    app = open_alerts(person=VIEWER)
    assert not [b for b in app.button if b.key in ("ack_submit", "silence_submit")]
    assert any("Read-only" in i.value for i in app.info)
    assert _watchdog(alerts_stack.alerts.url)["acked"] is False

    app = open_alerts(person=OPERATOR)
    _select_watchdog(app)
    app.button(key="ack_submit").click().run()
    assert any(f"Watchdog acknowledged by {OPERATOR}" in s.value for s in app.success), \
        _errors(app)
    watchdog = _watchdog(alerts_stack.alerts.url)
    assert (watchdog["acked"], watchdog["acked_by"]) == (True, OPERATOR)  # the signed-in person
    assert f"Acknowledged by {OPERATOR} at " in _card(app, "Watchdog")


def test_a_silence_added_from_the_page_is_listed_and_can_be_expired(open_alerts, alerts_stack):
    app = open_alerts(person=OPERATOR)
    _select_watchdog(app)
    assert app.text_area(key="silence_matchers").value == 'alertname="Watchdog"'
    # No comment: the alerts API's field error, under the form's name.
    app.button(key="silence_submit").click().run()
    assert any("HTTP 422" in e and "Comment (comment)" in e for e in _errors(app)), _errors(app)
    assert _silences(alerts_stack) == []

    app.selectbox(key="silence_duration").set_value("1h")
    app.text_input(key="silence_comment").input("planned maintenance, ticket 42")
    app.button(key="silence_submit").click().run()
    assert any(s.value.startswith("Silence ") and 'alertname="Watchdog"' in s.value
               for s in app.success), _errors(app)
    [silence] = _silences(alerts_stack)
    assert silence["matchers"] == [{"name": "alertname", "op": "=", "value": "Watchdog"}]
    assert (silence["comment"], silence["created_by"]) == ("planned maintenance, ticket 42",
                                                           OPERATOR)  # the signed-in person
    table = next(d.value for d in app.dataframe if "Matchers" in d.value.columns)
    row = table[table["Silence"] == silence["id"]].iloc[0]
    assert row["Matchers"] == 'alertname="Watchdog"' and row["Created by"] == OPERATOR
    assert "(in 59 min)" in row["Expires"] or "(in 1 h)" in row["Expires"]
    assert f"Silenced by `{silence['id']}`" in _card(app, "Watchdog")

    app.button(key=f"expire_{silence['id']}").click().run()
    assert any(f"Silence {silence['id']} expired" in s.value for s in app.success), _errors(app)
    assert _silences(alerts_stack) == []
    assert any("No active silence" in i.value for i in app.info)
    assert "Silenced by" not in _card(app, "Watchdog")


def test_expire_is_not_offered_to_a_viewer(open_alerts, alerts_stack):
    added = httpx.post(f"{alerts_stack.alerts.url}/v1/silences", headers={"X-Admin-Key": ADMIN},
                       json={"matchers": ["alertname=NothingReal"], "duration": "30m",
                             "comment": "read-only check", "created_by": "test"})
    assert added.status_code == 201, added.text
    try:
        app = open_alerts(person=VIEWER)
        table = next(d.value for d in app.dataframe if "Matchers" in d.value.columns)
        assert list(table["Comment"]) == ["read-only check"]
        assert not [b for b in app.button if (b.key or "").startswith("expire_")]
    finally:
        httpx.delete(f"{alerts_stack.alerts.url}/v1/silences/{added.json()['id']}",
                     headers={"X-Admin-Key": ADMIN})


def test_the_oncall_page_shows_rotations_and_the_watchdog_paging_nobody(open_alerts,
                                                                        alerts_stack):
    app = open_alerts(person=VIEWER)
    app.switch_page("views/oncall.py").run()
    assert not app.exception and not _errors(app)
    rotations = next(d.value for d in app.dataframe if "Rotation" in d.value.columns)
    assert list(rotations["Rotation"]) == ["primary", "secondary", "manager"]
    assert set(rotations["On call now"]) <= {"ana", "ben", "chloe", "dana"}
    policy = next(d.value for d in app.dataframe if "Escalates to" in d.value.columns)
    assert policy.set_index("Severity").loc["P0", "Escalates to"] == (
        "primary → secondary → manager")
    assert "not escalated" in _text(app)  # the Watchdog, excluded by the policy
    assert not [b for b in app.button if (b.key or "").startswith("oncall_ack_")]
    assert any("operator role" in c.value for c in app.caption)


def test_an_operator_declares_updates_and_resolves_an_incident_from_the_console(
        open_alerts, alerts_stack):
    app = open_alerts(person=OPERATOR)
    app.switch_page("views/incidents.py").run()
    assert not app.exception
    app.selectbox(key="inc_severity").set_value("P1")
    app.text_input(key="inc_title").input("Card payments failing")
    app.text_input(key="inc_impact").input("a third of card payments declined")
    app.button(key="FormSubmitter:declare_incident-Declare").click().run()
    assert any("Incident declared" in s.value for s in app.success), _errors(app)
    assert any(h.value.startswith("INC-") and "P1 · investigating" in h.value
               for h in app.subheader)
    app.text_area(key="upd_text").input("Rolled back the payment client")
    app.selectbox(key="upd_status").set_value("monitoring")
    app.button(key=next(b.key for b in app.button if "update_" in (b.key or ""))).click().run()
    assert any("Update posted" in s.value for s in app.success), _errors(app)
    timeline = next(d.value for d in app.dataframe if "Detail" in d.value.columns)
    people = timeline[timeline["What"].isin(["declared", "update"])]
    assert list(people["What"]) == ["declared", "update"]
    assert set(people["Who"]) == {OPERATOR}  # the signed-in person, not a key
    # Declared from nothing: every alert firing meanwhile is in its timeline, the Watchdog too.
    assert "Watchdog (P3) fired" in list(timeline["Detail"])
    app.text_area(key="res_summary").input("Payments succeed again")
    app.button(key=next(b.key for b in app.button if "resolve_" in (b.key or ""))).click().run()
    assert any("Resolved" in s.value for s in app.success), _errors(app)
    done = next(b for b in app.button if (b.key or "").startswith("task_"))
    done.click().run()
    assert any("Checklist item done" in s.value for s in app.success), _errors(app)
    postmortem = next(t for t in app.text_area if (t.key or "").startswith("pm_"))
    assert postmortem.value.startswith("# Post-mortem: INC-")

    viewer = open_alerts(person=VIEWER)
    viewer.switch_page("views/incidents.py").run()
    assert not viewer.exception
    assert not [f for f in viewer.text_input if f.key == "inc_title"]
    assert not [b for b in viewer.button if (b.key or "").startswith("task_")]


def test_alerts_api_stopped_gives_a_banner_and_prometheus_alerts(open_alerts, alerts_stack):
    # Last in this module: it stops the module's alerts process.
    alerts_stack.alerts.stop()
    wait_for(lambda: alerts_stack.prometheus.query('ALERTS{alertname="Watchdog"}'), timeout=30,
             what="Prometheus' own Watchdog alert")
    app = open_alerts(person=OPERATOR)
    banners = _errors(app)
    assert len(banners) == 1, banners
    assert "alerts API unreachable" in banners[0] and alerts_stack.alerts.url in banners[0]
    assert any("Prometheus' own active alerts" in c.value for c in app.caption)
    card = _card(app, "Watchdog")
    assert "(/runbooks?runbook=alerting&section=watchdog)" in card
    assert re.search(r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, for ", card), card
    assert not [b for b in app.button if b.key in ("ack_submit", "silence_submit")]


# -- the page's pure helpers (no stack) -----------------------------------------------------------


def test_times_from_either_source_read_as_utc_and_an_age():
    from datetime import UTC, datetime

    from dashboard.formatting import format_age, format_since, parse_time

    now = datetime(2026, 11, 23, 14, 37, 30, tzinfo=UTC)
    # Prometheus' nanoseconds and 'Z', and the alerts API's microseconds and offset.
    assert parse_time("2026-11-23T14:25:03.123456789Z") == datetime(
        2026, 11, 23, 14, 25, 3, 123456, tzinfo=UTC)
    assert format_since("2026-11-23T14:25:03.123456789Z", now) == (
        "2026-11-23 14:25:03 UTC, for 12 min")
    assert format_since("2026-11-23T15:25:03.5+01:00", now) == (
        "2026-11-23 14:25:03 UTC, for 12 min")
    assert format_since(None, now) == "unknown" and parse_time("yesterday") is None
    assert [format_age(s) for s in (45, 3600 + 5 * 60, 2 * 86400 + 4 * 3600, -3)] == [
        "45 s", "1 h 5 min", "2 d 4 h", "0 s"]


def test_alerts_sort_by_severity_then_longest_running():
    from datetime import UTC, datetime

    from dashboard.charts import SEVERITY_ORDER
    from dashboard.formatting import alert_sort_key

    now = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    alerts = [
        {"alertname": "a", "severity": "P3", "activeAt": "2026-11-23T10:00:00+00:00"},
        {"alertname": "b", "labels": {"severity": "P1"}, "activeAt": "2026-11-23T14:00:00Z"},
        {"alertname": "c", "severity": "P1", "activeAt": "2026-11-23T12:00:00+00:00"},
        {"alertname": "d", "severity": "odd", "activeAt": "2026-11-23T09:00:00+00:00"},
    ]
    ordered = sorted(alerts, key=lambda a: alert_sort_key(a, tuple(SEVERITY_ORDER), now))
    assert [a["alertname"] for a in ordered] == ["c", "b", "a", "d"]
