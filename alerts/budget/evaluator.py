"""Budget alerts: one round over every org finds the thresholds reached and not yet notified.

Per open billing period (the current one, and the previous one while it still takes late
heartbeats), the store takes the thresholds (50, 90 and 100 % of the plan's included hours)
each org has reached from the engine's published query and keeps only the (org, period,
threshold) triples not noticed yet. In a steady state that answer is empty, and the round costs
one read of each org's period total (a row per org, kept by the engine's ingest).

Each new triple becomes a notice (its primary key is the "once per threshold per period"
guarantee), noted in one INSERT ... SELECT, and its messages (the customer email, the support
Slack line, as routes.yml says for kind `budget`) are queued in the same transaction, a page of
orgs at a time so memory stays bounded however many orgs cross at once. An org that reached
several thresholds in one round gets one message naming the highest (`RoundMessages`). Because
the check compares totals rather than watching events, usage that arrives late and pushes an org
over a threshold alerts at the next round, like any other usage.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alerts.budget.messages import budget_digest_message, budget_labels, budget_message
from alerts.budget.rules import BudgetCrossing, open_periods
from alerts.budget.store import BudgetNoticeStore, notice_key
from alerts.delivery.lanes import BULK
from alerts.delivery.links import LinkSettings
from alerts.delivery.message import Message, message_to_json
from alerts.delivery.routing import RoutingTable
from alerts.delivery.store import OutboxEntry
from alerts.observability.metrics import AlertsMetrics
from billing_core.clock import Clock
from billing_core.plans import PlanCatalog

log = logging.getLogger("alerts.budget")
# Above this many orgs told in one round, support's Slack gets one digest instead of a line each.
DIGEST_AFTER_ORGS = 20
DIGEST_TOP = 10  # orgs named in a digest: the furthest over their included hours


@dataclass
class BudgetReport:
    at: datetime
    seconds: float = 0.0
    periods: list[str] = field(default_factory=list)
    crossings: list[BudgetCrossing] = field(default_factory=list)  # the first 1,000
    notices: int = 0  # thresholds noted this round
    orgs: int = 0  # orgs told this round
    queued: int = 0


class BudgetEvaluator:
    def __init__(self, *, store: BudgetNoticeStore, catalog: PlanCatalog,
                 routing: RoutingTable, links: LinkSettings, metrics: AlertsMetrics,
                 clock: Clock, close_grace: timedelta = timedelta(hours=1),
                 on_queued: Callable[[], None] | None = None,
                 digest_after_orgs: int = DIGEST_AFTER_ORGS) -> None:
        self.store = store
        self.catalog = catalog
        self.routing = routing
        self.links = links
        self.metrics = metrics
        self.clock = clock
        self.close_grace = close_grace
        self.on_queued = on_queued
        self.digest_after_orgs = digest_after_orgs

    def run_round(self) -> BudgetReport:
        started = time.perf_counter()
        now = self.clock()
        report = BudgetReport(at=now)
        try:
            for period in open_periods(now, close_grace=self.close_grace):
                report.periods.append(period.key)
                tally = self.store.record_crossings(
                    period, self.catalog, now=now,
                    renderer=lambda orgs: RoundMessages(self, orgs=orgs, now=now))
                report.crossings.extend(tally.crossings)
                report.notices += tally.notices
                report.orgs += tally.orgs
                report.queued += tally.queued
        finally:
            report.seconds = time.perf_counter() - started
            self.metrics.budget_duration.observe(report.seconds)
        if report.notices:
            log.info("budget thresholds reached", extra={
                "periods": report.periods, "orgs": report.orgs, "thresholds": report.notices,
                "messages": report.queued, "seconds": round(report.seconds, 3),
                "first": [f"{c.org_id}:{c.period}:{c.threshold}" for c in report.crossings[:20]]})
        if report.queued and self.on_queued is not None:
            self.on_queued()
        return report


class RoundMessages:
    """The messages of one budget round, made org by org as the store pages through them.

    An org that reached several thresholds in one round (the first round after install on a busy
    month, or late usage arriving in one batch) gets one message naming the highest, filed under
    that threshold's notice. The customer's email always goes per org. Fixed receivers (support's
    Slack) get one line per org while the round tells at most `digest_after_orgs` orgs, and one
    digest for the whole round above that: tens of thousands of Slack lines would take Slack
    hours at its rate limit, and pages share that webhook.
    """

    def __init__(self, evaluator: BudgetEvaluator, *, orgs: int, now: datetime) -> None:
        self.evaluator = evaluator
        self.now = now
        self.digest = orgs > evaluator.digest_after_orgs
        self.digests: dict[str, Digest] = {}

    def org_messages(self, crossings: Sequence[BudgetCrossing]) -> list[OutboxEntry]:
        crossing = max(crossings, key=lambda c: c.threshold)
        evaluator = self.evaluator
        catalog = evaluator.catalog
        plan = catalog.get(crossing.plan) or catalog.plans[catalog.default_plan]
        labels = budget_labels(crossing, plan)
        key = notice_key(crossing.org_id, crossing.period, crossing.threshold)
        entries = []
        for destination in evaluator.routing.route(labels, kind="budget"):
            receiver = destination.receiver
            if self.digest and receiver.channel == "slack":
                digest = self.digests.setdefault(receiver.name, Digest(receiver.name))
                digest.add(crossing)
                continue
            recipients = receiver.recipients(labels) if receiver.channel == "email" else ()
            message = budget_message(crossing, plan=plan, recipients=recipients, now=self.now,
                                     links=evaluator.links)
            entries.append(OutboxEntry(kind="budget", receiver=receiver.name,
                                       channel=receiver.channel, payload=message_to_json(message),
                                       notice_key=key, priority=BULK))
        return entries

    def closing_messages(self) -> list[OutboxEntry]:
        return [OutboxEntry(kind="budget", receiver=digest.receiver, channel="slack",
                            payload=message_to_json(digest.message(now=self.now,
                                                                   links=self.evaluator.links)),
                            priority=BULK)
                for digest in self.digests.values()]


@dataclass
class Digest:
    """One receiver's summary of a round: orgs per highest threshold, the furthest over."""

    receiver: str
    counts: Counter[int] = field(default_factory=Counter)
    periods: set[str] = field(default_factory=set)
    top: list[BudgetCrossing] = field(default_factory=list)

    def add(self, crossing: BudgetCrossing) -> None:
        self.counts[crossing.threshold] += 1
        self.periods.add(crossing.period)
        self.top.append(crossing)
        if len(self.top) > 2 * DIGEST_TOP:  # keep memory bounded: trim to the furthest over
            self.top = sorted(self.top, key=lambda c: -c.percent_used)[:DIGEST_TOP]

    def message(self, *, now: datetime, links: LinkSettings) -> Message:
        top = sorted(self.top, key=lambda c: -c.percent_used)[:DIGEST_TOP]
        return budget_digest_message(counts=dict(self.counts), periods=sorted(self.periods),
                                     top=top, now=now, links=links)
