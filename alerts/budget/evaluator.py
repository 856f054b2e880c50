"""Budget alerts: one query over every org finds the thresholds reached and not yet notified.

Per open billing period (the current one, and the previous one while it still takes late
heartbeats), a single statement takes the thresholds (50, 90 and 100 % of the plan's included
hours) each org has reached, from the query the engine publishes for it
(`billing_engine.usage.facts.thresholds_reached`: this process never reads the engine's tables),
and keeps only the (org, period, threshold) triples that `alert_budget_notices` does not hold
yet. In a steady state
that answer is empty, and the round costs one aggregate over the period's rollups.

Each new triple is inserted into `alert_budget_notices` (its primary key is the "once per
threshold per period" guarantee) and its messages (the customer email, the support Slack line,
as routes.yml says for kind `budget`) are queued in the same transaction. Because the check
compares totals rather than watching events, usage that arrives late and pushes an org over a
threshold alerts at the next round, like any other usage.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, exists, literal, select

from alerts.budget.messages import budget_labels, budget_message
from alerts.budget.rules import BudgetCrossing, open_periods
from alerts.delivery.links import LinkSettings
from alerts.delivery.message import message_to_json
from alerts.delivery.routing import RoutingTable
from alerts.observability.metrics import AlertsMetrics
from alerts.store.repository import PENDING, AlertStore
from alerts.store.schema import alert_budget_notices, alert_outbox
from billing_core.periods import BillingPeriod
from billing_core.plans import PlanCatalog
from billing_engine.usage.facts import thresholds_reached

log = logging.getLogger("alerts.budget")

Clock = Callable[[], datetime]


@dataclass
class BudgetReport:
    at: datetime
    seconds: float = 0.0
    periods: list[str] = field(default_factory=list)
    crossings: list[BudgetCrossing] = field(default_factory=list)
    queued: int = 0


def crossings_query(period: BillingPeriod, catalog: PlanCatalog) -> Any:
    """The thresholds reached in `period` (the engine's published query) that
    `alert_budget_notices` does not hold yet."""
    reached = thresholds_reached(period, catalog).subquery("reached")
    notified = exists(
        select(literal(1)).where(
            alert_budget_notices.c.org_id == reached.c.org_id,
            alert_budget_notices.c.period == period.key,
            alert_budget_notices.c.threshold == reached.c.threshold,
        )
    )
    return (
        select(reached.c.org_id.label("id"), reached.c.org_name.label("name"),
               reached.c.billing_email, reached.c.plan, reached.c.used_minutes.label("minutes"),
               reached.c.threshold, reached.c.included_minutes.label("included"))
        .where(~notified)
        .order_by(reached.c.org_id, reached.c.threshold)
    )


class BudgetEvaluator:
    def __init__(self, *, store: AlertStore, catalog: PlanCatalog, routing: RoutingTable,
                 links: LinkSettings, metrics: AlertsMetrics, clock: Clock,
                 close_grace: timedelta = timedelta(hours=1),
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
                crossings, queued = self.store.run(self._period_work(period, now), write=True)
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

    def _period_work(self, period: BillingPeriod, now: datetime
                     ) -> Callable[[Connection], tuple[list[BudgetCrossing], int]]:
        return lambda conn: self._period(conn, period, now)

    def _period(self, conn: Connection, period: BillingPeriod, now: datetime
                ) -> tuple[list[BudgetCrossing], int]:
        rows = conn.execute(crossings_query(period, self.catalog)).all()
        if not rows:
            return [], 0
        round_id = str(uuid.uuid4())
        candidates = [
            BudgetCrossing(org_id=r.id, org_name=r.name, email=r.billing_email, plan=r.plan,
                           period=period.key, threshold=int(r.threshold),
                           used_minutes=int(r.minutes), included_minutes=int(r.included))
            for r in rows
        ]
        statement = self.store.insert(alert_budget_notices).on_conflict_do_nothing(
            index_elements=["org_id", "period", "threshold"]
        ).returning(alert_budget_notices.c.org_id, alert_budget_notices.c.threshold)
        inserted = conn.execute(statement, [{
            "org_id": c.org_id, "period": c.period, "threshold": c.threshold, "email": c.email,
            "org_name": c.org_name, "plan": c.plan, "used_minutes": c.used_minutes,
            "included_minutes": c.included_minutes, "round_id": round_id, "created_at": now,
        } for c in candidates]).all()
        new = {(r.org_id, int(r.threshold)) for r in inserted}
        crossings = [c for c in candidates if (c.org_id, c.threshold) in new]
        outbox_rows = []
        for crossing in crossings:
            plan = self.catalog.get(crossing.plan) or self.catalog.plans[
                self.catalog.default_plan]
            labels = budget_labels(crossing, plan)
            notice_key = f"{crossing.org_id}/{crossing.period}/{crossing.threshold}"
            for destination in self.routing.route(labels, kind="budget"):
                receiver = destination.receiver
                message = budget_message(crossing, plan=plan,
                                         recipients=receiver.recipients(labels)
                                         if receiver.channel == "email" else (),
                                         now=now, links=self.links)
                outbox_rows.append({
                    "kind": "budget", "receiver": receiver.name, "channel": receiver.channel,
                    "payload": message_to_json(message), "notice_key": notice_key,
                    "status": PENDING, "attempts": 0, "next_attempt_at": now,
                    "created_at": now, "updated_at": now,
                })
        if outbox_rows:
            conn.execute(alert_outbox.insert(), outbox_rows)
        return crossings, len(outbox_rows)
