"""The rule state machine: `for`, `keep_firing_for`, episodes, labels, as Prometheus does them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.rules.model import Alert, AlertRule, AlertStatus, Sample, fingerprint
from alerts.rules.state import RuleEvaluationError, resolve_orphans, step

T0 = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
DOWN = Sample(labels={"__name__": "up", "job": "billing-engine", "instance": "e1:8006"},
              value=0.0)


def rule(**overrides: object) -> AlertRule:
    base: dict[str, object] = dict(
        name="BillingEngineDown", expr='up{job="billing-engine"} == 0',
        hold=timedelta(minutes=1),
        labels={"severity": "P0", "service": "billing-engine"},
        annotations={"summary": "Billing engine is down",
                     "description": "instance {{ $labels.instance }} value {{ $value }}"})
    base.update(overrides)
    return AlertRule(**base)  # type: ignore[arg-type]


def run(r: AlertRule, rounds: list[tuple[datetime, list[Sample]]]) -> list[Alert]:
    alerts: list[Alert] = []
    for at, samples in rounds:
        outcome = step(r, alerts, samples, now=at)
        alerts = [a for a in outcome.alerts if a.fingerprint not in outcome.dropped]
    return alerts


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_an_alert_is_pending_until_its_condition_has_held_for_the_rules_for():
    r = rule()
    [alert] = run(r, [(at(0), [DOWN]), (at(30), [DOWN])])
    assert alert.status == AlertStatus.PENDING and alert.active_at == at(0)
    [alert] = run(r, [(at(0), [DOWN]), (at(30), [DOWN]), (at(60), [DOWN])])
    assert alert.status == AlertStatus.FIRING
    assert alert.fired_at == at(60) and alert.active_at == at(0)


def test_a_rule_without_for_fires_at_its_first_evaluation():
    [alert] = run(rule(hold=timedelta(0)), [(at(0), [DOWN])])
    assert alert.status == AlertStatus.FIRING and alert.fired_at == at(0)


def test_a_pending_alert_whose_condition_goes_away_is_forgotten_not_resolved():
    r = rule()
    outcome = step(r, run(r, [(at(0), [DOWN])]), [], now=at(15))
    assert outcome.dropped and not [a for a in outcome.alerts
                                    if a.status == AlertStatus.RESOLVED]


def test_a_firing_alert_resolves_when_its_condition_goes_away():
    r = rule(hold=timedelta(0))
    [alert] = run(r, [(at(0), [DOWN]), (at(15), [])])
    assert alert.status == AlertStatus.RESOLVED and alert.resolved_at == at(15)


def test_an_alert_that_comes_back_after_resolving_starts_a_new_episode():
    r = rule(hold=timedelta(0))
    [first] = run(r, [(at(0), [DOWN]), (at(15), [])])
    [again] = run(r, [(at(0), [DOWN]), (at(15), []), (at(30), [DOWN])])
    assert again.fingerprint == first.fingerprint
    assert again.status == AlertStatus.FIRING and again.active_at == at(30)
    assert again.episode != first.episode and again.resolved_at is None


def test_keep_firing_for_holds_a_firing_alert_after_its_condition_clears():
    r = rule(hold=timedelta(0), keep_firing_for=timedelta(seconds=60))
    [alert] = run(r, [(at(0), [DOWN]), (at(15), []), (at(60), [])])
    assert alert.status == AlertStatus.FIRING and alert.keep_firing_since == at(15)
    [alert] = run(r, [(at(0), [DOWN]), (at(15), []), (at(75), [])])
    assert alert.status == AlertStatus.RESOLVED and alert.resolved_at == at(75)


def test_keep_firing_for_restarts_when_the_condition_returns():
    r = rule(hold=timedelta(0), keep_firing_for=timedelta(seconds=60))
    [alert] = run(r, [(at(0), [DOWN]), (at(15), []), (at(30), [DOWN]), (at(45), []),
                      (at(100), [])])
    assert alert.status == AlertStatus.FIRING and alert.active_at == at(0)
    assert alert.keep_firing_since == at(45)


def test_labels_are_the_series_labels_plus_the_rules_without_the_metric_name():
    [alert] = run(rule(hold=timedelta(0)), [(at(0), [DOWN])])
    assert alert.labels == {"alertname": "BillingEngineDown", "job": "billing-engine",
                            "instance": "e1:8006", "severity": "P0",
                            "service": "billing-engine"}
    assert alert.fingerprint == fingerprint(alert.labels)


def test_rule_labels_override_series_labels_and_may_be_templated():
    r = rule(hold=timedelta(0), labels={"severity": "P1", "job": "overridden",
                                        "where": "{{ $labels.instance }}"})
    [alert] = run(r, [(at(0), [DOWN])])
    assert alert.labels["job"] == "overridden" and alert.labels["where"] == "e1:8006"


def test_annotations_are_rendered_again_with_each_new_value():
    r = rule(hold=timedelta(0))
    value_2 = Sample(labels=DOWN.labels, value=2.5)
    [alert] = run(r, [(at(0), [DOWN]), (at(15), [value_2])])
    assert alert.annotations["description"] == "instance e1:8006 value 2.5"
    assert alert.value == 2.5


def test_series_that_become_the_same_alert_are_refused_like_prometheus_does():
    r = rule(labels={"instance": "same"})
    other = Sample(labels={**DOWN.labels, "instance": "e2:8006"}, value=0.0)
    with pytest.raises(RuleEvaluationError, match="same labelset"):
        step(r, [], [DOWN, other], now=at(0))


def test_each_label_set_is_its_own_alert():
    r = rule(hold=timedelta(0))
    other = Sample(labels={**DOWN.labels, "instance": "e2:8006"}, value=0.0)
    alerts = run(r, [(at(0), [DOWN, other]), (at(15), [other])])
    states = {a.labels["instance"]: a.status for a in alerts}
    assert states == {"e1:8006": AlertStatus.RESOLVED, "e2:8006": AlertStatus.FIRING}


def test_alerts_of_a_rule_that_left_the_rule_files_resolve():
    r = rule(hold=timedelta(0))
    [alert] = run(r, [(at(0), [DOWN])])
    outcome = resolve_orphans([alert], rule_names={"SomethingElse"}, now=at(30))
    [resolved] = outcome.alerts
    assert resolved.status == AlertStatus.RESOLVED and resolved.resolved_at == at(30)
    assert resolve_orphans([alert], rule_names={r.name}, now=at(30)).alerts == ()
