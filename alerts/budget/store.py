"""Budget notices (`alert_budget_notices`): one row per org, billing period and threshold, ever.

The primary key is the "once per threshold per period" guarantee. The thresholds an org has
reached come from the query the engine publishes for it
(`billing_engine.usage.facts.thresholds_reached`): this process never reads the engine's tables.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, exists, literal, select

from alerts.budget.rules import BudgetCrossing
from alerts.delivery.store import NoticeDelivery, OutboxEntry, deliveries_by_notice, enqueue_many
from alerts.store.database import Store, metadata
from billing_core.periods import BillingPeriod
from billing_core.plans import PlanCatalog
from billing_core.sql import utc
from billing_engine.usage.facts import thresholds_reached

alert_budget_notices = sa.Table(
    "alert_budget_notices",
    metadata,
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("period", sa.String(7), nullable=False),  # 2026-11
    sa.Column("threshold", sa.Integer, nullable=False),  # 50 | 90 | 100
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("org_name", sa.String(200), nullable=False),
    sa.Column("plan", sa.String(64), nullable=False),
    sa.Column("used_minutes", sa.Integer, nullable=False),
    sa.Column("included_minutes", sa.Integer, nullable=False),
    sa.Column("round_id", sa.String(36), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("org_id", "period", "threshold"),
    sa.Index("ix_alert_budget_notices_round", "round_id"),
)


def notice_key(org_id: str, period: str, threshold: int) -> str:
    """What the outbox files a notice's messages under."""
    return f"{org_id}/{period}/{threshold}"


@dataclass(frozen=True)
class BudgetNotice:
    """One threshold an org reached in one period, and how each of its messages went."""

    period: str
    threshold: int
    email: str
    plan: str
    used_minutes: int
    included_minutes: int
    reached_at: datetime
    deliveries: tuple[NoticeDelivery, ...]


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


class BudgetNoticeStore(Store):
    def record_crossings(
        self, period: BillingPeriod, catalog: PlanCatalog, *, now: datetime,
        messages: Callable[[BudgetCrossing], Sequence[OutboxEntry]],
    ) -> tuple[list[BudgetCrossing], int]:
        """In one transaction: note each threshold reached in `period` and not noted yet, and
        queue the messages `messages` makes for it. Returns the new crossings and how many
        messages were queued; a crossing another replica noted first is not returned."""

        def work(conn: Connection) -> tuple[list[BudgetCrossing], int]:
            rows = conn.execute(crossings_query(period, catalog)).all()
            if not rows:
                return [], 0
            candidates = [
                BudgetCrossing(org_id=r.id, org_name=r.name, email=r.billing_email,
                               plan=r.plan, period=period.key, threshold=int(r.threshold),
                               used_minutes=int(r.minutes), included_minutes=int(r.included))
                for r in rows
            ]
            crossings = self._note(conn, candidates, now)
            entries = [entry for crossing in crossings for entry in messages(crossing)]
            return crossings, enqueue_many(conn, entries, now=now)

        return self.run(work, write=True)

    def _note(self, conn: Connection, candidates: list[BudgetCrossing], now: datetime
              ) -> list[BudgetCrossing]:
        round_id = str(uuid.uuid4())
        statement = self.insert(alert_budget_notices).on_conflict_do_nothing(
            index_elements=["org_id", "period", "threshold"]
        ).returning(alert_budget_notices.c.org_id, alert_budget_notices.c.threshold)
        inserted = conn.execute(statement, [{
            "org_id": c.org_id, "period": c.period, "threshold": c.threshold, "email": c.email,
            "org_name": c.org_name, "plan": c.plan, "used_minutes": c.used_minutes,
            "included_minutes": c.included_minutes, "round_id": round_id, "created_at": now,
        } for c in candidates]).all()
        new = {(r.org_id, int(r.threshold)) for r in inserted}
        return [c for c in candidates if (c.org_id, c.threshold) in new]

    def budget_history(self, org_id: str) -> list[BudgetNotice]:
        """An org's notices, newest period first, each with its messages' delivery."""
        b = alert_budget_notices
        query = (
            select(b.c.period, b.c.threshold, b.c.email, b.c.plan, b.c.used_minutes,
                   b.c.included_minutes, b.c.created_at)
            .where(b.c.org_id == org_id)
            .order_by(b.c.period.desc(), b.c.threshold)
        )

        def work(conn: Connection) -> list[BudgetNotice]:
            rows = conn.execute(query).all()
            keys = [notice_key(org_id, r.period, int(r.threshold)) for r in rows]
            deliveries = deliveries_by_notice(conn, keys)
            return [BudgetNotice(
                period=r.period, threshold=int(r.threshold), email=r.email, plan=r.plan,
                used_minutes=int(r.used_minutes), included_minutes=int(r.included_minutes),
                reached_at=utc(r.created_at), deliveries=tuple(deliveries.get(key, ())),
            ) for r, key in zip(rows, keys, strict=True)]

        return self.run(work)
