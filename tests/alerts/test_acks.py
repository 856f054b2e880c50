"""An acknowledgement made here is sent on to PagerDuty: queued with the acknowledgement, once,
for the PagerDuty receivers that were paged, in the alert's lane (on SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from alerts.delivery.lanes import ALERT, PAGE
from alerts.delivery.links import LinkSettings
from alerts.delivery.message import NotificationKey, message_from_json, message_to_json
from alerts.delivery.store import QueuedMessage, alert_outbox
from alerts.rules.messages import rule_message
from alerts.rules.model import Alert, AlertStatus, fingerprint
from alerts.rules.service import AlertService
from alerts.store.repository import AlertStore
from billing_core.access import Principal
from tests.alerts.core import *  # noqa: F403

LINKS = LinkSettings(console_url="https://console.example.com")
OPERATOR = Principal(kind="staff", name="alice")


def fired(store: AlertStore, now, severity: str = "P1", *,  # type: ignore[no-untyped-def]
          receivers=(("oncall-email", "email"), ("oncall-pagerduty", "pagerduty"),
                     ("payments-pagerduty", "pagerduty"))) -> Alert:
    """A firing alert whose first notification was queued for `receivers`, as a round does."""
    labels = {"alertname": "PaymentGatewayDown", "severity": severity, "instance": "gw-1"}
    alert = Alert(fingerprint=fingerprint(labels), alertname="PaymentGatewayDown", labels=labels,
                  annotations={"summary": "Payment gateway gw-1 is down"},
                  status=AlertStatus.FIRING, active_at=now, last_evaluated_at=now, value=0.0,
                  fired_at=now)
    payload = message_to_json(rule_message([alert], state="firing", recipients=(), links=LINKS))
    messages = [QueuedMessage(
        kind="rule", receiver=receiver, channel=channel,
        keys=((NotificationKey(alert.fingerprint, receiver, "firing", f"{alert.episode}/0"),
               alert.alertname),),
        build_payload=lambda _keys: payload) for receiver, channel in receivers]
    store.apply_round(alerts=[alert], dropped=[], messages=messages, now=now)
    return alert


def queued_acks(store: AlertStore, fingerprint: str) -> list[dict[str, Any]]:
    rows = store.run(lambda conn: conn.execute(select(alert_outbox)).all())
    return [dict(r._mapping) for r in rows
            if message_from_json(r.payload).state == "acked"
            and message_from_json(r.payload).fingerprint == fingerprint]


def test_acknowledging_a_page_queues_an_acknowledge_for_each_pagerduty_receiver_paged(
        store: AlertStore, alerts_clock) -> None:
    alert = fired(store, alerts_clock())
    service = AlertService(alerts=store, silences=store, links=LINKS, clock=alerts_clock)

    alerts_clock.advance(minutes=3)
    service.ack(alert.fingerprint, by=OPERATOR)

    acks = queued_acks(store, alert.fingerprint)
    assert sorted((a["receiver"], a["channel"], a["priority"]) for a in acks) == [
        ("oncall-pagerduty", "pagerduty", PAGE), ("payments-pagerduty", "pagerduty", PAGE)]
    message = message_from_json(acks[0]["payload"])
    assert (message.state, message.fingerprint) == ("acked", alert.fingerprint)
    keys = {(k.receiver, k.state, k.repeat_bucket)
            for k in store.notification_keys([alert.fingerprint]) if k.state == "acked"}
    assert keys == {("oncall-pagerduty", "acked", f"{alert.episode}/acked"),
                    ("payments-pagerduty", "acked", f"{alert.episode}/acked")}


def test_acknowledging_twice_tells_pagerduty_once(store: AlertStore, alerts_clock) -> None:
    alert = fired(store, alerts_clock())
    service = AlertService(alerts=store, silences=store, links=LINKS, clock=alerts_clock)

    service.ack(alert.fingerprint, by=OPERATOR)
    alerts_clock.advance(minutes=1)
    service.ack(alert.fingerprint, by=Principal(kind="staff", name="bob"))

    assert len(queued_acks(store, alert.fingerprint)) == 2  # one per receiver, not four


def test_a_p2_acknowledgement_goes_in_the_bulk_lane_and_email_or_slack_are_not_told(
        store: AlertStore, alerts_clock) -> None:
    alert = fired(store, alerts_clock(), "P2",
                  receivers=(("oncall-slack", "slack"), ("tickets-pagerduty", "pagerduty")))
    AlertService(alerts=store, silences=store, links=LINKS, clock=alerts_clock).ack(
        alert.fingerprint, by=OPERATOR)

    [ack] = queued_acks(store, alert.fingerprint)
    assert (ack["receiver"], ack["priority"]) == ("tickets-pagerduty", ALERT)


def test_acknowledging_a_new_episode_does_not_reach_the_last_ones_pagerduty_alert(
        store: AlertStore, alerts_clock) -> None:
    fired(store, alerts_clock())  # paged PagerDuty, then resolved there with its episode
    alerts_clock.advance(hours=1)
    again = fired(store, alerts_clock(), receivers=(("oncall-email", "email"),))

    AlertService(alerts=store, silences=store, links=LINKS, clock=alerts_clock).ack(
        again.fingerprint, by=OPERATOR)

    assert store.get_alert(again.fingerprint).acked_by == "alice"  # type: ignore[union-attr]
    assert queued_acks(store, again.fingerprint) == []
