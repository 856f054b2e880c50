"""Budget alerts: one round over every org finds the thresholds reached and not yet notified.

Per open billing period (the current one, and the previous one while it still takes late
heartbeats), the store takes the thresholds (50, 90 and 100 % of the plan's included hours)
each org has reached from the engine's published query and keeps only the (org, period,
threshold) triples not noticed yet. In a steady state that answer is empty, and the round costs
one aggregate over the period's rollups.

Each new triple becomes a notice (its primary key is the "once per threshold per period"
guarantee) and its messages (the customer email, the support Slack line, as routes.yml says for
kind `budget`) are queued in the same transaction. Because the check compares totals rather
than watching events, usage that arrives late and pushes an org over a threshold alerts at the
next round, like any other usage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alerts.budget.messages import budget_labels, budget_message
from alerts.budget.rules import BudgetCrossing, open_periods
from alerts.budget.store import BudgetNoticeStore, notice_key
from alerts.delivery.links import LinkSettings
from alerts.delivery.message import message_to_json
from alerts.delivery.routing import RoutingTable
from alerts.delivery.store import OutboxEntry
from alerts.observability.metrics import AlertsMetrics
from billing_core.clock import Clock
from billing_core.plans import PlanCatalog

log = logging.getLogger("alerts.budget")


@dataclass
class BudgetReport:
    at: datetime
    seconds: float = 0.0
    periods: list[str] = field(default_factory=list)
    crossings: list[BudgetCrossing] = field(default_factory=list)
    queued: int = 0


class BudgetEvaluator:
    def __init__(self, *, store: BudgetNoticeStore, catalog: PlanCatalog,
                 routing: RoutingTable, links: LinkSettings, metrics: AlertsMetrics,
                 clock: Clock, close_grace: timedelta = timedelta(hours=1),
                 on_queued: Callable[[], None] | None = None) -> None:
        self.store = store
        self.catalog = catalog
        self.routing = routing
        self.links = links
        self.metrics = metrics
        self.clock = clock
        self.close_grace = close_grace
        self.on_queued = on_queued

    def run_round(self) -> BudgetReport:
        started = time.perf_counter()
        now = self.clock()
        report = BudgetReport(at=now)
        try:
            for period in open_periods(now, close_grace=self.close_grace):
                report.periods.append(period.key)
                crossings, queued = self.store.record_crossings(
                    period, self.catalog, now=now,
                    messages=lambda crossing: self.messages_for(crossing, now=now))
                report.crossings.extend(crossings)
                report.queued += queued
        finally:
            report.seconds = time.perf_counter() - started
            self.metrics.budget_duration.observe(report.seconds)
        for crossing in report.crossings:
            log.info("budget threshold reached", extra={
                "org_id": crossing.org_id, "period": crossing.period,
                "threshold": crossing.threshold, "percent_used": crossing.percent_used})
        if report.queued and self.on_queued is not None:
            self.on_queued()
        return report

    def messages_for(self, crossing: BudgetCrossing, *, now: datetime) -> list[OutboxEntry]:
        """One message per receiver the routes file names for this crossing."""
        plan = self.catalog.get(crossing.plan) or self.catalog.plans[self.catalog.default_plan]
        labels = budget_labels(crossing, plan)
        key = notice_key(crossing.org_id, crossing.period, crossing.threshold)
        entries = []
        for destination in self.routing.route(labels, kind="budget"):
            receiver = destination.receiver
            recipients = receiver.recipients(labels) if receiver.channel == "email" else ()
            message = budget_message(crossing, plan=plan, recipients=recipients, now=now,
                                     links=self.links)
            entries.append(OutboxEntry(kind="budget", receiver=receiver.name,
                                       channel=receiver.channel,
                                       payload=message_to_json(message), notice_key=key))
        return entries
