"""The rule state machine, step for step what Prometheus' alerting rule does on each evaluation.

For every sample the rule's query returns, the alert with that label set becomes pending (or
stays active, with a fresh value and annotations). A pending alert fires once its condition has
held for the rule's `for`. An alert whose sample disappears is dropped if it was pending, and
resolved if it was firing, unless the rule's `keep_firing_for` keeps it firing a while longer.
A resolved alert that comes back starts a new episode.

Everything here is a pure function of the previous alerts, the samples and the time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from alerts.rules.model import (
    Alert,
    AlertRule,
    AlertStatus,
    RuleEvaluationError,
    Sample,
    fingerprint,
)
from alerts.rules.templating import TemplateData, render

__all__ = ["RuleEvaluationError", "RuleOutcome", "Transition", "resolve_orphans", "step"]


@dataclass(frozen=True)
class Transition:
    fingerprint: str
    alertname: str
    before: AlertStatus | None  # None: a new alert
    after: AlertStatus | None  # None: dropped (a pending alert whose condition went away)


@dataclass(frozen=True)
class RuleOutcome:
    alerts: tuple[Alert, ...]  # every alert of the rule still worth keeping, as it now stands
    dropped: tuple[str, ...]  # fingerprints to forget
    transitions: tuple[Transition, ...] = field(default=())


def alert_labels(rule: AlertRule, sample: Sample, *, external_labels: Mapping[str, str]) -> dict[
    str, str
]:
    data = TemplateData(labels=sample.labels, value=sample.value, external_labels=external_labels)
    labels = {k: v for k, v in sample.labels.items() if k != "__name__"}
    for name, template in rule.labels.items():
        labels[name] = render(template, data)
    labels["alertname"] = rule.name
    return {k: v for k, v in labels.items() if v != ""}


def alert_annotations(rule: AlertRule, sample: Sample, *,
                      external_labels: Mapping[str, str]) -> dict[str, str]:
    data = TemplateData(labels=sample.labels, value=sample.value, external_labels=external_labels)
    return {name: render(template, data) for name, template in rule.annotations.items()}


def step(
    rule: AlertRule,
    previous: Iterable[Alert],
    samples: Iterable[Sample],
    *,
    now: datetime,
    external_labels: Mapping[str, str] | None = None,
) -> RuleOutcome:
    """One evaluation of `rule` at `now`, given its alerts so far and the query's samples."""
    external = external_labels or {}
    before = {alert.fingerprint: alert for alert in previous}
    seen: dict[str, tuple[dict[str, str], dict[str, str], float]] = {}
    for sample in samples:
        labels = alert_labels(rule, sample, external_labels=external)
        fp = fingerprint(labels)
        if fp in seen:
            raise RuleEvaluationError(
                f"{rule.name}: vector contains metrics with the same labelset after applying "
                "alert labels"
            )
        seen[fp] = (labels, alert_annotations(rule, sample, external_labels=external),
                    sample.value)

    alerts: list[Alert] = []
    dropped: list[str] = []
    transitions: list[Transition] = []

    for fp, (labels, rendered, value) in seen.items():
        old = before.get(fp)
        if old is not None and old.status != AlertStatus.RESOLVED:
            alert = replace(old, labels=labels, annotations=rendered, value=value,
                            last_evaluated_at=now, keep_firing_since=None)
        else:
            # New, or back after being resolved: a new episode (its ack belongs to the old one).
            alert = Alert(fingerprint=fp, alertname=rule.name, labels=labels,
                          annotations=rendered, status=AlertStatus.PENDING, active_at=now,
                          last_evaluated_at=now, value=value)
            transitions.append(Transition(fp, rule.name, old.status if old else None,
                                          AlertStatus.PENDING))
        if alert.status == AlertStatus.PENDING and now - alert.active_at >= rule.hold:
            alert = replace(alert, status=AlertStatus.FIRING, fired_at=now)
            transitions.append(Transition(fp, rule.name, AlertStatus.PENDING,
                                          AlertStatus.FIRING))
        alerts.append(alert)

    for fp, old in before.items():
        if fp in seen:
            continue
        if old.status == AlertStatus.PENDING:
            dropped.append(fp)
            transitions.append(Transition(fp, rule.name, AlertStatus.PENDING, None))
            continue
        if old.status == AlertStatus.RESOLVED:
            alerts.append(old)
            continue
        keep_since = old.keep_firing_since or now
        if rule.keep_firing_for and now - keep_since < rule.keep_firing_for:
            alerts.append(replace(old, keep_firing_since=keep_since, last_evaluated_at=now))
            continue
        alerts.append(replace(old, status=AlertStatus.RESOLVED, resolved_at=now,
                              keep_firing_since=None, last_evaluated_at=now))
        transitions.append(Transition(fp, rule.name, AlertStatus.FIRING, AlertStatus.RESOLVED))

    return RuleOutcome(alerts=tuple(alerts), dropped=tuple(dropped),
                       transitions=tuple(transitions))


def resolve_orphans(alerts: Iterable[Alert], *, rule_names: set[str], now: datetime
                    ) -> RuleOutcome:
    """Alerts of rules that left the rule files: firing ones resolve, pending ones go."""
    kept: list[Alert] = []
    dropped: list[str] = []
    transitions: list[Transition] = []
    for alert in alerts:
        if alert.alertname in rule_names or alert.status == AlertStatus.RESOLVED:
            continue
        if alert.status == AlertStatus.PENDING:
            dropped.append(alert.fingerprint)
            transitions.append(Transition(alert.fingerprint, alert.alertname,
                                          AlertStatus.PENDING, None))
        else:
            kept.append(replace(alert, status=AlertStatus.RESOLVED, resolved_at=now,
                                keep_firing_since=None, last_evaluated_at=now))
            transitions.append(Transition(alert.fingerprint, alert.alertname,
                                          AlertStatus.FIRING, AlertStatus.RESOLVED))
    return RuleOutcome(alerts=tuple(kept), dropped=tuple(dropped),
                       transitions=tuple(transitions))
