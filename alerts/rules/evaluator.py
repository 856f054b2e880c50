"""One evaluation round: query every rule, step its alerts, queue the notifications due.

The round reads the stored alerts, asks Prometheus for each rule's expression at one instant,
runs the pure state machine, plans notifications (routing, silences, acks, repeat buckets, SLO
grouping) and writes the new states and the queued messages in one transaction. When Prometheus
cannot be reached the round stops and writes nothing: every alert keeps the state it had.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from alerts.delivery.lanes import priority_for
from alerts.delivery.links import LinkSettings
from alerts.delivery.message import NotificationKey, message_to_json
from alerts.delivery.routing import Receiver, RoutingTable
from alerts.delivery.store import QueuedMessage
from alerts.observability.metrics import AlertsMetrics
from alerts.rules.messages import rule_message
from alerts.rules.model import Alert, AlertRule, AlertStatus, Sample
from alerts.rules.notify import (
    RESOLVED_NOTIFY_WINDOW,
    Delivery,
    PlannedNotification,
    group_labels,
    grouped,
    plan,
)
from alerts.rules.prometheus import PrometheusUnavailable, QueryError
from alerts.rules.state import RuleEvaluationError, RuleOutcome, resolve_orphans, step
from alerts.silences.rules import Silence
from billing_core.clock import Clock

log = logging.getLogger("alerts.evaluator")


class Querier(Protocol):
    def query(self, expr: str, *, at: datetime) -> list[Sample]: ...


class RoundStore(Protocol):
    """What a round reads and writes: alert states (rules), the notification log (delivery)
    and the active silences (silences). `alerts.store.repository.AlertStore` is all three."""

    def load_alerts(self) -> list[Alert]: ...

    def notification_keys(self, fingerprints: Iterable[str]) -> list[NotificationKey]: ...

    def list_silences(self, *, state: str, now: datetime) -> list[Silence]: ...

    def apply_round(self, *, alerts: Sequence[Alert], dropped: Sequence[str],
                    messages: Sequence[QueuedMessage], now: datetime) -> list[int]: ...


@dataclass
class RoundReport:
    at: datetime
    evaluated: int = 0
    failed: int = 0
    prometheus_up: bool = True
    transitions: list[str] = field(default_factory=list)
    queued: list[int] = field(default_factory=list)


def deliveries_for(routing: RoutingTable, alert: Alert) -> list[tuple[Delivery, Receiver]]:
    found = []
    for destination in routing.route(alert.labels, kind="rule"):
        delivery = Delivery(receiver=destination.receiver.name,
                            repeat_interval=destination.repeat_interval,
                            group_by=destination.group_by,
                            send_resolved=destination.send_resolved)
        found.append((delivery, destination.receiver))
    return found


class Evaluator:
    def __init__(
        self,
        *,
        store: RoundStore,
        prometheus: Querier,
        rules: Sequence[AlertRule],
        routing: RoutingTable,
        links: LinkSettings,
        metrics: AlertsMetrics,
        clock: Clock,
        external_labels: Mapping[str, str] | None = None,
        on_queued: Callable[[], None] | None = None,
        repeat_for: Callable[[str], timedelta | None] | None = None,
    ) -> None:
        self.store = store
        # The on-call policy's repeat interval for a severity, over the route's.
        self.repeat_for = repeat_for
        self.prometheus = prometheus
        self.rules = list(rules)
        self.routing = routing
        self.links = links
        self.metrics = metrics
        self.clock = clock
        self.external_labels = dict(external_labels or {})
        self.on_queued = on_queued
        self._prometheus_was_up: bool | None = None
        # When a round last reached Prometheus (the heartbeat vouches only for a fresh one).
        self.last_good_round: datetime | None = None
        self._rule_errors: dict[str, str] = {}

    @property
    def prometheus_reachable(self) -> bool | None:
        """Whether the last round reached Prometheus (None before the first round)."""
        return self._prometheus_was_up

    def run_round(self, at: datetime | None = None) -> RoundReport:
        """One round at `at` (the scheduler's slot; the clock's time when None)."""
        started = time.perf_counter()
        now = at or self.clock()
        report = RoundReport(at=now)
        try:
            self._round(now, report)
        finally:
            self.metrics.evaluations.inc()
            self.metrics.evaluation_duration.observe(time.perf_counter() - started)
        if report.queued and self.on_queued is not None:
            self.on_queued()
        return report

    # -- the round ------------------------------------------------------------------------------

    def _round(self, now: datetime, report: RoundReport) -> None:
        previous = [a for a in self.store.load_alerts() if a.status != AlertStatus.RESOLVED
                    or (a.resolved_at and now - a.resolved_at <= RESOLVED_NOTIFY_WINDOW)]
        by_rule: dict[str, list[Alert]] = {}
        for alert in previous:
            by_rule.setdefault(alert.alertname, []).append(alert)

        outcomes: list[RuleOutcome] = []
        for index, rule in enumerate(self.rules):
            try:
                samples = self.prometheus.query(rule.expr, at=now)
            except PrometheusUnavailable as error:
                not_run = len(self.rules) - index
                self.metrics.rule_errors.inc(not_run)
                report.failed += not_run
                self._prometheus_down(str(error))
                report.prometheus_up = False
                return  # keep every alert as it is: nothing is written this round
            except QueryError as error:
                self._rule_failed(rule, str(error), report)
                continue
            try:
                outcome = step(rule, by_rule.get(rule.name, ()), samples, now=now,
                               external_labels=self.external_labels)
            except RuleEvaluationError as error:
                self._rule_failed(rule, str(error), report)
                continue
            if rule.name in self._rule_errors:
                del self._rule_errors[rule.name]
                log.info("rule evaluates again", extra={"rule": rule.name})
            outcomes.append(outcome)
            report.evaluated += 1
        self._prometheus_up()
        self.last_good_round = now

        # Alerts of rules that left the rule files resolve (a failing rule is still a rule).
        names = {rule.name for rule in self.rules}
        outcomes.append(resolve_orphans(previous, rule_names=names, now=now))

        alerts = [a for outcome in outcomes for a in outcome.alerts]
        dropped = [fp for outcome in outcomes for fp in outcome.dropped]
        for outcome in outcomes:
            for t in outcome.transitions:
                report.transitions.append(
                    f"{t.alertname} {t.fingerprint}: {t.before or 'new'} -> {t.after or 'gone'}")
                log.info("alert state changed", extra={
                    "alertname": t.alertname, "fingerprint": t.fingerprint,
                    "from": t.before.value if t.before else None,
                    "to": t.after.value if t.after else None})
        messages = self._messages(alerts, now)
        report.queued = self.store.apply_round(alerts=alerts, dropped=dropped,
                                               messages=messages, now=now)

    def _messages(self, alerts: Sequence[Alert], now: datetime) -> list[QueuedMessage]:
        notifiable = [a for a in alerts if a.status != AlertStatus.PENDING]
        if not notifiable:
            return []
        receivers: dict[str, Receiver] = {}
        deliveries: dict[str, list[Delivery]] = {}
        for alert in notifiable:
            repeat = self.repeat_for(alert.severity) if self.repeat_for is not None else None
            for delivery, receiver in deliveries_for(self.routing, alert):
                if repeat is not None and delivery.repeat_interval is not None:
                    delivery = replace(delivery, repeat_interval=repeat)
                deliveries.setdefault(alert.fingerprint, []).append(delivery)
                receivers[receiver.name] = receiver
        existing = self.store.notification_keys(a.fingerprint for a in notifiable)
        silences = self.store.list_silences(state="active", now=now)
        planned = plan(notifiable, deliveries=deliveries, existing=existing, silences=silences,
                       now=now)
        messages = []
        for (receiver_name, state, _group), items in grouped(planned):
            receiver = receivers[receiver_name]
            severities = {item.alert.severity for item in items}
            lead = items[0].alert
            [group_by] = [d.group_by for d in deliveries[lead.fingerprint]
                          if d.receiver == receiver_name]
            messages.append(QueuedMessage(
                kind="rule", receiver=receiver_name, channel=receiver.channel,
                keys=tuple((item.key, item.alert.alertname) for item in items),
                build_payload=self._payload_builder(items, receiver, state,
                                                    group_labels(lead, group_by)),
                priority=priority_for("rule", severities)))
        return messages

    def _payload_builder(self, items: list[PlannedNotification], receiver: Receiver, state: str,
                         group: Mapping[str, str]) -> Callable[[Sequence[NotificationKey]], str]:
        by_key = {item.key: item.alert for item in items}
        links = self.links

        def build(inserted: Sequence[NotificationKey]) -> str:
            members = [by_key[key] for key in inserted]
            recipients: list[str] = []
            for member in members:
                for address in receiver.recipients(member.labels):
                    if address not in recipients:
                        recipients.append(address)
            message = rule_message(members, state=state, recipients=tuple(recipients),
                                   links=links, group_labels=group)
            return message_to_json(message)

        return build

    # -- reporting ------------------------------------------------------------------------------

    def _rule_failed(self, rule: AlertRule, error: str, report: RoundReport) -> None:
        self.metrics.rule_errors.inc()
        report.failed += 1
        if self._rule_errors.get(rule.name) != error:
            log.warning("rule evaluation failed; its alerts keep their state",
                        extra={"rule": rule.name, "source": rule.source, "reason": error[:300]})
        self._rule_errors[rule.name] = error

    def _prometheus_down(self, error: str) -> None:
        self.metrics.prometheus_up.set(0)
        if self._prometheus_was_up is not False:
            log.error("Prometheus cannot be reached; alert state is kept, not resolved",
                      extra={"prometheus_url": getattr(self.prometheus, "url", ""),
                             "reason": error[:300]})
        self._prometheus_was_up = False

    def _prometheus_up(self) -> None:
        self.metrics.prometheus_up.set(1)
        if self._prometheus_was_up is False:
            log.info("Prometheus reachable again; evaluating rules")
        self._prometheus_was_up = True

