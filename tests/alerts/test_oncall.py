"""On call: rotations, overrides, and escalation of unacknowledged alerts, once per step.

Read like the incident runbook: a P0 page unacknowledged for 15 minutes goes to the secondary,
another 15 to the manager; an acknowledgement stops it; the resolution reaches everyone told.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select

from alerts.delivery.email import EmailRenderer
from alerts.delivery.lanes import PAGE
from alerts.delivery.links import LinkSettings
from alerts.delivery.message import message_from_json
from alerts.delivery.routes_file import load_routes
from alerts.delivery.slack import build_payload
from alerts.oncall.policy_file import OnCallFileError, load_policy, parse_policy
from alerts.oncall.rules import (
    OnCallPolicy,
    Override,
    Rotation,
    due_step,
    next_shift,
    on_call,
)
from alerts.oncall.service import OnCallService
from alerts.rules.model import Alert, AlertStatus, fingerprint
from alerts.silences.rules import parse_matcher
from alerts.store.schema import alert_outbox
from tests.alerts.core import *  # noqa: F403
from tests.support.clock import FrozenClock

# Monday 7 December 2026, 10:00 UTC, an hour after the hand-off: chloe is primary, ana
# secondary, dana manager (the shipped oncall.yml).
MONDAY = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
ROUTES_ENV = {"ONCALL_EMAIL": "oncall@example.com",
              "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/services/T/B/oncall"}
LABELS = {"alertname": "BillingEngineDown", "severity": "P0", "instance": "e1:8006"}


def policy_with(**changes: object) -> OnCallPolicy:
    return replace(load_policy(), **changes)  # type: ignore[arg-type]


# -- rotations ----------------------------------------------------------------------------------


def test_the_shipped_policy_has_the_runbooks_response_times():
    severities = load_policy().severities
    assert {s: p.response for s, p in severities.items()} == {
        "P0": timedelta(minutes=15), "P1": timedelta(minutes=30),
        "P2": timedelta(hours=2), "P3": timedelta(hours=8)}
    assert severities["P0"].steps == ("primary", "secondary", "manager")


def test_a_rotation_hands_off_weekly_at_its_local_time_across_daylight_saving():
    policy = policy_with(rotations={"primary": Rotation(
        "primary", ("ana", "ben"), start=date(2026, 3, 16), handoff_weekday=0,
        handoff_time=time(9, 0), zone="Europe/Berlin")}, overrides=())
    # Berlin moves to summer time on Sunday 29 March 2026: the hand-off stays at 09:00 local.
    before = on_call(policy, "primary", datetime(2026, 3, 23, 7, 59, tzinfo=UTC))  # 08:59 CET
    after = on_call(policy, "primary", datetime(2026, 3, 23, 8, 0, tzinfo=UTC))  # 09:00 CET
    assert (before.person, after.person) == ("ana", "ben")
    summer = on_call(policy, "primary", datetime(2026, 3, 30, 7, 0, tzinfo=UTC))  # 09:00 CEST
    assert summer.person == "ana" and summer.starts == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert after.ends - after.starts == timedelta(hours=167)  # a week with one hour less


def test_an_override_holds_its_range_and_then_the_rotation_resumes():
    override = Override("primary", "dana", datetime(2026, 12, 8, 12, 0, tzinfo=UTC),
                        datetime(2026, 12, 9, 12, 0, tzinfo=UTC))
    policy = policy_with(overrides=(override,))
    assert on_call(policy, "primary", MONDAY).person == "chloe"
    upcoming = next_shift(policy, "primary", MONDAY)
    assert (upcoming.person, upcoming.starts, upcoming.override) == (
        "dana", override.starts, True)
    during = on_call(policy, "primary", datetime(2026, 12, 9, 0, 0, tzinfo=UTC))
    assert (during.person, during.ends) == ("dana", override.ends)
    later = on_call(policy, "primary", datetime(2026, 12, 10, 0, 0, tzinfo=UTC))
    assert (later.person, later.starts) == ("chloe", override.ends)


def test_escalation_steps_come_every_response_time_up_to_the_last():
    policy = load_policy()
    at = [due_step(policy, "P0", MONDAY, MONDAY + timedelta(minutes=m)) for m in (0, 14, 15, 44,
                                                                                  45, 300)]
    assert at == [0, 0, 1, 2, 2, 2]
    assert due_step(policy, "P3", MONDAY, MONDAY + timedelta(days=2)) == 0  # one step only
    assert due_step(policy, "P9", MONDAY, MONDAY) is None


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"version": 2}, "version", "must be 1"),
    ({"people": {"ana": {"email": "not an address"}}}, "people.ana.email", "email address"),
    ({"rotations": {"primary": {"members": ["zed"], "start": date(2026, 1, 5)}}},
     "rotations.primary.members", "names no person"),
    ({"severities": {"P0": {"response": "soon", "steps": []}}}, "severities.P0.response",
     "duration"),
    ({"severities": {"P7": {"response": "5m"}}}, "severities.P7", "must be one of"),
    ({"severities": {"P0": {"response": "5m", "steps": ["nobody"]}}}, "severities.P0.steps",
     "names no rotation"),
    ({"exclude": ["alertname"]}, "exclude[0]", "is not name=value"),
    ({"overrides": [{"rotation": "primary", "person": "ana", "from": "2026-12-02T00:00:00Z",
                     "until": "2026-12-01T00:00:00Z"}]}, "overrides[0].until", "after from"),
])
def test_a_bad_policy_names_the_field_and_the_reason(change, field, reason):
    import yaml

    from alerts.oncall.policy_file import DEFAULT_ONCALL_FILE

    document = {**yaml.safe_load(DEFAULT_ONCALL_FILE.read_text()), **change}
    with pytest.raises(OnCallFileError) as caught:
        parse_policy(document, environ={})
    assert any(e.field == field and reason in e.reason for e in caught.value.errors), \
        caught.value


# -- escalation rounds against the store ---------------------------------------------------------


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(MONDAY)


@pytest.fixture
def oncall(store, clock) -> OnCallService:
    return OnCallService(policy=load_policy(), alerts=store, silences=store, escalations=store,
                         routing=load_routes(environ=ROUTES_ENV), links=LinkSettings(),
                         clock=clock)


def fire(store, at: datetime, **overrides: object) -> Alert:
    alert = Alert(fingerprint=fingerprint(LABELS), alertname="BillingEngineDown", labels=LABELS,
                  annotations={"summary": "The billing engine is down"},
                  status=AlertStatus.FIRING, active_at=at, last_evaluated_at=at, value=0.0,
                  fired_at=at)
    alert = replace(alert, **overrides)  # type: ignore[arg-type]
    store.apply_round(alerts=[alert], dropped=[], messages=[], now=at)
    return alert


def told(engine) -> list[tuple[str, str, str]]:
    """(receiver, person, summary) of every escalation message queued, in order."""
    with engine.connect() as conn:
        rows = conn.execute(select(alert_outbox.c.receiver, alert_outbox.c.payload,
                                   alert_outbox.c.priority)
                            .where(alert_outbox.c.kind == "escalation")
                            .order_by(alert_outbox.c.id)).all()
    assert all(r.priority == PAGE for r in rows)
    return [(r.receiver, message_from_json(r.payload).labels["person"],
             message_from_json(r.payload).summary) for r in rows]


def test_an_unacknowledged_p0_reaches_primary_then_secondary_then_manager(
        oncall, store, alerts_engine, clock):
    fire(store, MONDAY)
    oncall.run_round(MONDAY)
    assert told(alerts_engine) == [
        ("escalation-email", "chloe", "P0 BillingEngineDown is firing: you are primary on call"),
        ("oncall-slack", "chloe", "P0 BillingEngineDown is firing: you are primary on call")]
    oncall.run_round(MONDAY + timedelta(minutes=14, seconds=59))
    assert len(told(alerts_engine)) == 2
    oncall.run_round(MONDAY + timedelta(minutes=15))
    oncall.run_round(MONDAY + timedelta(minutes=31))
    oncall.run_round(MONDAY + timedelta(hours=3))
    people = [person for receiver, person, _ in told(alerts_engine)
              if receiver == "escalation-email"]
    assert people == ["chloe", "ana", "dana"]
    assert told(alerts_engine)[2][2] == ("P0 BillingEngineDown unacknowledged for 15 min: "
                                         "escalated to you (secondary)")


def test_an_acknowledgement_stops_the_escalation(oncall, store, alerts_engine):
    alert = fire(store, MONDAY)
    oncall.run_round(MONDAY)
    store.ack(alert.fingerprint, by="chloe@example.com", now=MONDAY + timedelta(minutes=4))
    oncall.run_round(MONDAY + timedelta(minutes=20))
    assert {person for _, person, _ in told(alerts_engine)} == {"chloe"}


def test_the_always_firing_watchdog_pages_nobody(oncall, store, alerts_engine):
    labels = {"alertname": "Watchdog", "severity": "P3", "service": "alerting"}
    fire(store, MONDAY, labels=labels, alertname="Watchdog", fingerprint=fingerprint(labels))
    oncall.run_round(MONDAY + timedelta(days=1))
    assert told(alerts_engine) == []


def test_a_silenced_alert_is_not_escalated(oncall, store, alerts_engine):
    fire(store, MONDAY)
    store.add_silence(matchers=[parse_matcher("alertname=BillingEngineDown")],
                      starts_at=MONDAY, expires_at=MONDAY + timedelta(hours=1),
                      created_by="chloe", comment="maintenance", now=MONDAY)
    oncall.run_round(MONDAY + timedelta(minutes=20))
    assert told(alerts_engine) == []


def test_when_a_silence_ends_only_the_step_due_now_is_told_and_no_countdown_shows_meanwhile(
        oncall, store, alerts_engine):
    alert = fire(store, MONDAY)
    store.add_silence(matchers=[parse_matcher("alertname=BillingEngineDown")],
                      starts_at=MONDAY, expires_at=MONDAY + timedelta(minutes=40),
                      created_by="chloe", comment="maintenance", now=MONDAY)
    views = oncall.escalation_views([alert], MONDAY + timedelta(minutes=20))
    assert views[alert.fingerprint].next is None  # silenced: nothing is coming
    oncall.run_round(MONDAY + timedelta(minutes=41))  # silence over, step 2 due by now
    assert [(p, s.split(":")[0]) for r, p, s in told(alerts_engine) if r == "oncall-slack"] == [
        ("chloe", "P0 BillingEngineDown is firing"),  # the first step, so primary knows
        ("dana", "P0 BillingEngineDown unacknowledged for 41 min")]  # and the one due now


def test_the_resolution_reaches_everyone_who_was_told(oncall, store, alerts_engine):
    alert = fire(store, MONDAY)
    oncall.run_round(MONDAY)
    oncall.run_round(MONDAY + timedelta(minutes=16))
    resolved_at = MONDAY + timedelta(minutes=20)
    fire(store, resolved_at, status=AlertStatus.RESOLVED, resolved_at=resolved_at,
         fired_at=alert.fired_at, active_at=alert.active_at)
    oncall.run_round(resolved_at)
    oncall.run_round(resolved_at + timedelta(seconds=15))
    resolved = [(r, p) for r, p, summary in told(alerts_engine) if summary.startswith("Resolved")]
    assert sorted(resolved) == [("escalation-email", "ana"), ("escalation-email", "chloe"),
                                ("oncall-slack", "ana"), ("oncall-slack", "chloe")]


def test_a_restart_or_a_new_leader_never_tells_anyone_twice(oncall, store, alerts_engine, clock):
    fire(store, MONDAY)
    oncall.run_round(MONDAY + timedelta(minutes=16))
    again = OnCallService(policy=oncall.policy, alerts=store, silences=store, escalations=store,
                          routing=oncall.routing, links=LinkSettings(), clock=clock)
    again.run_round(MONDAY + timedelta(minutes=16))
    again.run_round(MONDAY + timedelta(minutes=17))
    assert [p for r, p, _ in told(alerts_engine) if r == "escalation-email"] == ["chloe", "ana"]


def test_the_escalation_email_and_slack_line_say_who_why_and_what_next(oncall, store,
                                                                      alerts_engine):
    policy = replace(oncall.policy, people={**oncall.policy.people, "chloe": replace(
        oncall.policy.people["chloe"], slack="U024BE7LH")})
    oncall.policy = policy
    fire(store, MONDAY)
    oncall.run_round(MONDAY)
    with alerts_engine.connect() as conn:
        payloads = {r.channel: message_from_json(r.payload) for r in conn.execute(
            select(alert_outbox.c.channel, alert_outbox.c.payload)).all()}
    email = payloads["email"]
    assert email.recipients == ("chloe@oncall.example",)
    text = " ".join(EmailRenderer().render(email).text.split())
    assert "Acknowledge it within 15 min" in text and "secondary (ana)" in text
    assert "The billing engine is down" in text
    slack = build_payload(payloads["slack"])
    assert slack["text"].startswith("<@U024BE7LH> P0 BillingEngineDown is firing")


def test_the_oncall_view_shows_now_and_next_and_each_alert_its_countdown(oncall, store):
    fire(store, MONDAY)
    oncall.run_round(MONDAY)
    view = oncall.oncall(MONDAY)
    primary = next(r for r in view.rotations if r.name == "primary")
    assert (primary.now.person, primary.next.person) == ("chloe", "ana")
    assert primary.next.starts == datetime(2026, 12, 14, 9, 0, tzinfo=UTC)
    [alert] = store.load_alerts()
    escalation = oncall.escalation_views([alert], MONDAY + timedelta(minutes=5))[alert.fingerprint]
    assert [(s.step, s.person) for s in escalation.steps] == [(0, "chloe")]
    assert escalation.next is not None
    assert (escalation.next.person, escalation.next.at) == ("ana",
                                                            MONDAY + timedelta(minutes=15))
