"""Which notifications are due: once per key, repeats, acks, silences, resolved, SLO grouping."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from alerts.delivery.message import NotificationKey
from alerts.rules.model import Alert, AlertStatus, fingerprint
from alerts.rules.notify import Delivery, grouped, plan
from alerts.silences.rules import (
    Matcher,
    MatchOp,
    Silence,
    SilenceError,
    parse_matcher,
    validate_silence,
)

T0 = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
FOUR_HOURS = timedelta(hours=4)
PAGE = (Delivery("oncall-email", FOUR_HOURS, ("alertname", "slo")),
        Delivery("oncall-slack", FOUR_HOURS, ("alertname", "slo")))


def alert(name: str = "BillingEngineDown", *, status: AlertStatus = AlertStatus.FIRING,
          fired: datetime = T0, **labels: str) -> Alert:
    all_labels = {"alertname": name, "severity": "P1", **labels}
    return Alert(fingerprint=fingerprint(all_labels), alertname=name, labels=all_labels,
                 annotations={"summary": name}, status=status, active_at=fired,
                 last_evaluated_at=fired, fired_at=fired if status != AlertStatus.PENDING
                 else None)


def due(alerts: list[Alert], *, now: datetime, existing: list[NotificationKey] = (),  # type: ignore[assignment]
        silences: list[Silence] = (), deliveries: tuple[Delivery, ...] = PAGE  # type: ignore[assignment]
        ) -> list[NotificationKey]:
    planned = plan(alerts, deliveries={a.fingerprint: deliveries for a in alerts},
                   existing=existing, silences=silences, now=now)
    return [p.key for p in planned]


def test_a_firing_alert_is_due_once_per_receiver():
    keys = due([alert()], now=T0)
    assert [(k.receiver, k.state, k.repeat_bucket) for k in keys] == [
        ("oncall-email", "firing", f"{alert().episode}/0"),
        ("oncall-slack", "firing", f"{alert().episode}/0")]
    assert due([alert()], now=T0 + timedelta(minutes=5), existing=keys) == []


def test_pending_alerts_are_never_notified():
    assert due([alert(status=AlertStatus.PENDING)], now=T0) == []


def test_a_firing_alert_repeats_after_the_repeat_interval_and_not_before():
    first = due([alert()], now=T0)
    assert due([alert()], now=T0 + timedelta(hours=3, minutes=59), existing=first) == []
    repeat = due([alert()], now=T0 + FOUR_HOURS, existing=first)
    assert {k.repeat_bucket for k in repeat} == {f"{alert().episode}/1"}


def test_a_route_that_never_repeats_sends_once():
    once = (Delivery("customer-email", None),)
    first = due([alert()], now=T0, deliveries=once)
    assert due([alert()], now=T0 + timedelta(days=3), existing=first, deliveries=once) == []


def test_an_acknowledged_alert_stops_repeating():
    first = due([alert()], now=T0)
    acked = replace(alert(), acked_at=T0 + timedelta(minutes=1), acked_by="alice")
    assert due([acked], now=T0 + FOUR_HOURS, existing=first) == []


def test_a_silenced_alert_is_not_notified_and_is_once_the_silence_ends():
    silence = Silence(id="s1", matchers=(Matcher("alertname", "BillingEngineDown"),),
                      starts_at=T0, expires_at=T0 + timedelta(hours=1), comment="deploy",
                      created_by="alice", created_at=T0)
    assert due([alert()], now=T0 + timedelta(minutes=5), silences=[silence]) == []
    after = due([alert()], now=T0 + timedelta(hours=1), silences=[silence])
    assert len(after) == 2


def test_resolved_goes_only_to_receivers_that_were_told_it_fired():
    fired = due([alert()], now=T0)
    resolved = replace(alert(), status=AlertStatus.RESOLVED,
                       resolved_at=T0 + timedelta(minutes=3))
    keys = due([resolved], now=T0 + timedelta(minutes=3), existing=fired[:1])
    assert [(k.receiver, k.state) for k in keys] == [("oncall-email", "resolved")]
    assert due([resolved], now=T0 + timedelta(minutes=3)) == []
    no_resolved = (Delivery("oncall-email", FOUR_HOURS, send_resolved=False),)
    assert due([resolved], now=T0 + timedelta(minutes=3), existing=fired,
               deliveries=no_resolved) == []


def test_the_next_outage_of_the_same_alert_is_notified_again():
    first = due([alert()], now=T0)
    later = alert(fired=T0 + timedelta(days=1))
    assert later.fingerprint == alert().fingerprint
    assert len(due([later], now=T0 + timedelta(days=1), existing=first)) == 2


def test_fast_and_slow_burn_of_one_slo_firing_together_are_one_message():
    fast = alert("BillingAvailabilityFastBurn", slo="availability")
    slow = alert("BillingAvailabilitySlowBurn", slo="availability")
    latency = alert("BillingLatencyFastBurn", slo="latency")
    planned = plan([fast, slow, latency],
                   deliveries={a.fingerprint: PAGE for a in (fast, slow, latency)},
                   existing=[], silences=[], now=T0)
    groups = grouped(planned)
    messages = {(receiver, group): [p.alert.alertname for p in items]
                for (receiver, _state, group), items in groups}
    assert messages == {
        ("oncall-email", "slo=availability"): ["BillingAvailabilityFastBurn",
                                                "BillingAvailabilitySlowBurn"],
        ("oncall-slack", "slo=availability"): ["BillingAvailabilityFastBurn",
                                                "BillingAvailabilitySlowBurn"],
        ("oncall-email", "slo=latency"): ["BillingLatencyFastBurn"],
        ("oncall-slack", "slo=latency"): ["BillingLatencyFastBurn"],
    }


def test_a_slow_burn_joining_a_paged_fast_burn_does_not_page_again_until_that_resolves():
    fast = alert("BillingAvailabilityFastBurn", slo="availability")
    paged = due([fast], now=T0)
    slow = alert("BillingAvailabilitySlowBurn", slo="availability",
                 fired=T0 + timedelta(minutes=20))
    later = T0 + timedelta(minutes=20)
    assert due([fast, slow], now=later, existing=paged) == []
    fast_resolved = replace(fast, status=AlertStatus.RESOLVED, resolved_at=later)
    keys = due([fast_resolved, slow], now=later, existing=paged)
    assert {(k.fingerprint, k.state) for k in keys} == {
        (fast.fingerprint, "resolved"), (slow.fingerprint, "firing")}


def test_matchers_compare_whole_values_and_treat_missing_labels_as_empty():
    labels = {"alertname": "X", "severity": "P23"}
    assert not Matcher("severity", "P2|P3", MatchOp.REGEX).matches(labels)
    assert Matcher("severity", "P2.*", MatchOp.REGEX).matches(labels)
    assert Matcher("instance", "", MatchOp.EQUAL).matches(labels)
    assert Matcher("alertname", "Y", MatchOp.NOT_EQUAL).matches(labels)
    assert not Matcher("alertname", "X|Y", MatchOp.NOT_REGEX).matches(labels)
    assert parse_matcher('severity=~"P2|P3"') == Matcher("severity", "P2|P3", MatchOp.REGEX)
    assert parse_matcher("instance!=") == Matcher("instance", "", MatchOp.NOT_EQUAL)


@pytest.mark.parametrize("kwargs, field", [
    ({"matchers": ()}, "matchers"),
    ({"matchers": (Matcher("instance", "", MatchOp.EQUAL),)}, "matchers"),
    ({"expires_at": T0 - timedelta(seconds=1)}, "expires_at"),
    ({"comment": "  "}, "comment"),
    ({"created_by": ""}, "created_by"),
])
def test_a_silence_must_name_what_it_hides_end_and_say_why_and_who(kwargs, field):
    base = dict(matchers=(Matcher("alertname", "X"),), starts_at=T0,
                expires_at=T0 + timedelta(hours=1), comment="maintenance", created_by="alice",
                now=T0)
    base.update(kwargs)
    with pytest.raises(SilenceError) as error:
        validate_silence(**base)  # type: ignore[arg-type]
    assert error.value.field == field


def test_a_bad_regular_expression_is_refused_when_the_matcher_is_made():
    with pytest.raises(SilenceError, match="regular expression"):
        parse_matcher("alertname=~(unclosed")
