"""Budget notices (`alert_budget_notices`): one row per org, billing period and threshold, ever.

The primary key is the "once per threshold per period" guarantee. The thresholds an org has
reached come from the query the engine publishes for it
(`billing_engine.usage.facts.thresholds_reached`): this process never reads the engine's tables.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import Connection, exists, func, literal, select, true

from alerts.budget.rules import BudgetCrossing
from alerts.delivery.store import NoticeDelivery, OutboxEntry, deliveries_by_notice, enqueue_many
from alerts.store.database import Store, metadata
from billing_core.periods import BillingPeriod
from billing_core.plans import PlanCatalog
from billing_core.sql import utc
from billing_engine.usage.facts import thresholds_reached

ROUND_PAGE_ORGS = 500  # orgs whose messages are rendered and queued at a time
MAX_REPORTED_CROSSINGS = 1000  # kept in the round's report; the rest are only counted

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
    sa.Index("ix_alert_budget_notices_round", "round_id", "org_id"),
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
    told_with: int = 0  # the threshold whose message told the org (itself, or a higher one)


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


class RoundRenderer(Protocol):
    """What the budget round turns its new notices into, as the store pages through them."""

    def org_messages(self, crossings: Sequence[BudgetCrossing]) -> Sequence[OutboxEntry]:
        """The messages for one org's new thresholds in one period (all of them, lowest first)."""

    def closing_messages(self) -> Sequence[OutboxEntry]:
        """Anything to queue once every org has been seen (support's digest)."""


@dataclass
class RoundTally:
    """What one round noted: counts, and the first crossings (for the report and the logs)."""

    orgs: int = 0
    notices: int = 0
    queued: int = 0
    crossings: list[BudgetCrossing] = field(default_factory=list)


class BudgetNoticeStore(Store):
    def record_crossings(self, period: BillingPeriod, catalog: PlanCatalog, *, now: datetime,
                         renderer: Callable[[int], RoundRenderer]) -> RoundTally:
        """In one transaction: note each threshold reached in `period` and not noted yet (one
        INSERT ... SELECT, in the database), then read the new notices back org by org, a page
        of orgs at a time, and queue the messages the renderer makes for each org. Memory holds
        one page, whatever the number of orgs. `renderer` is given the number of orgs first.
        A threshold another replica noted first is not noted, nor messaged, again."""

        def work(conn: Connection) -> RoundTally:
            round_id = str(uuid.uuid4())
            tally = RoundTally()
            tally.notices = self._note(conn, period, catalog, round_id=round_id, now=now)
            if not tally.notices:
                return tally
            b = alert_budget_notices
            tally.orgs = int(conn.execute(
                select(func.count(func.distinct(b.c.org_id))).where(b.c.round_id == round_id)
            ).scalar_one())
            render = renderer(tally.orgs)
            after = ""
            while True:
                page = self._page(conn, round_id, period.key, after=after)
                if not page:
                    break
                entries: list[OutboxEntry] = []
                for org_crossings in page:
                    entries.extend(render.org_messages(org_crossings))
                    room = MAX_REPORTED_CROSSINGS - len(tally.crossings)
                    tally.crossings.extend(org_crossings[:max(0, room)])
                tally.queued += enqueue_many(conn, entries, now=now)
                after = page[-1][0].org_id
            tally.queued += enqueue_many(conn, render.closing_messages(), now=now)
            return tally

        return self.run(work, write=True)

    def _note(self, conn: Connection, period: BillingPeriod, catalog: PlanCatalog, *,
              round_id: str, now: datetime) -> int:
        new = crossings_query(period, catalog).subquery("new")
        rows = select(new.c.id, literal(period.key), new.c.threshold, new.c.billing_email,
                      new.c.name, new.c.plan, new.c.minutes, new.c.included,
                      literal(round_id), literal(now, sa.DateTime(timezone=True))
                      ).where(true())  # SQLite parses INSERT ... SELECT ... ON CONFLICT only
        # when the SELECT has a WHERE
        b = alert_budget_notices
        statement = self.insert(b).from_select(
            ["org_id", "period", "threshold", "email", "org_name", "plan", "used_minutes",
             "included_minutes", "round_id", "created_at"], rows,
        ).on_conflict_do_nothing(index_elements=["org_id", "period", "threshold"])
        # psycopg 3.3 forgets a closed cursor's rowcount, and SQLAlchemy closes an INSERT's
        # cursor before it reads the count unless asked to keep it.
        result = conn.execute(statement, execution_options={"preserve_rowcount": True})
        return int(result.rowcount or 0)

    @staticmethod
    def _page(conn: Connection, round_id: str, period: str, *, after: str
              ) -> list[list[BudgetCrossing]]:
        """The next ROUND_PAGE_ORGS orgs (by id, after `after`) of a round, each with its new
        thresholds, lowest first."""
        b = alert_budget_notices
        orgs = (select(b.c.org_id).where(b.c.round_id == round_id, b.c.org_id > after)
                .group_by(b.c.org_id).order_by(b.c.org_id).limit(ROUND_PAGE_ORGS)
                .scalar_subquery())
        rows = conn.execute(
            select(b.c.org_id, b.c.org_name, b.c.email, b.c.plan, b.c.threshold,
                   b.c.used_minutes, b.c.included_minutes)
            .where(b.c.round_id == round_id, b.c.org_id.in_(orgs))
            .order_by(b.c.org_id, b.c.threshold)
        ).all()
        page: list[list[BudgetCrossing]] = []
        for r in rows:
            crossing = BudgetCrossing(
                org_id=r.org_id, org_name=r.org_name, email=r.email, plan=r.plan,
                period=period, threshold=int(r.threshold), used_minutes=int(r.used_minutes),
                included_minutes=int(r.included_minutes))
            if page and page[-1][0].org_id == r.org_id:
                page[-1].append(crossing)
            else:
                page.append([crossing])
        return page

    def budget_history(self, org_id: str) -> list[BudgetNotice]:
        """An org's notices, newest period first, each with its messages' delivery. Thresholds
        reached together in one round share the one message that named the highest."""
        b = alert_budget_notices
        query = (
            select(b.c.period, b.c.threshold, b.c.email, b.c.plan, b.c.used_minutes,
                   b.c.included_minutes, b.c.created_at, b.c.round_id)
            .where(b.c.org_id == org_id)
            .order_by(b.c.period.desc(), b.c.threshold)
        )

        def work(conn: Connection) -> list[BudgetNotice]:
            rows = conn.execute(query).all()
            highest: dict[tuple[str, str], int] = {}
            for r in rows:
                key = (r.period, r.round_id)
                highest[key] = max(highest.get(key, 0), int(r.threshold))
            keys = [notice_key(org_id, r.period, highest[(r.period, r.round_id)]) for r in rows]
            deliveries = deliveries_by_notice(conn, keys)
            return [BudgetNotice(
                period=r.period, threshold=int(r.threshold), email=r.email, plan=r.plan,
                used_minutes=int(r.used_minutes), included_minutes=int(r.included_minutes),
                reached_at=utc(r.created_at), deliveries=tuple(deliveries.get(key, ())),
                told_with=highest[(r.period, r.round_id)],
            ) for r, key in zip(rows, keys, strict=True)]

        return self.run(work)
