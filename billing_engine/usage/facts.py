"""Billing facts the engine publishes to other processes, as queries it owns.

The alerts process decides which budget emails to send from these, and lists the orgs whose
heartbeats were refused in an incident's post-mortem, without knowing the engine's
tables: the columns of each query are the contract, and the engine may change the tables under
them. Each query is a SQLAlchemy selectable, so a reader can join it with its own tables and
still make one round trip (the alerts process anti-joins its notices to find new crossings).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, and_, case, func, literal, select, true, union_all

from billing_core.periods import BillingPeriod, minute_of
from billing_core.plans import PlanCatalog
from billing_core.quota import BUDGET_THRESHOLDS
from billing_engine.customers.tables import orgs
from billing_engine.usage.rules import MINUTES_PER_HOUR
from billing_engine.usage.tables import heartbeat_refusals, period_usage

# The columns of `thresholds_reached`, in order.
THRESHOLD_COLUMNS = (
    "org_id", "org_name", "billing_email", "plan", "used_minutes", "included_minutes",
    "threshold",
)


def _included_minutes(catalog: PlanCatalog) -> Any:
    """An org's included minutes from its plan code; a plan that left the catalogue bills as
    the default plan, as everywhere else in the engine."""
    whens = {code: plan.included_minutes for code, plan in sorted(catalog.plans.items())}
    return case(whens, value=orgs.c.plan, else_=literal(catalog.default.included_minutes, Integer))


def thresholds_reached(period: BillingPeriod, catalog: PlanCatalog) -> Any:
    """One row per (org, budget threshold) the org's usage in `period` has reached so far.

    The rule is `thresholds_crossed` of `billing_core.quota`, in SQL: used * 100 >= threshold *
    included, so an org with no included hours reaches every threshold with its first minute.
    Orgs without usage in the period have no rows. Columns: THRESHOLD_COLUMNS.

    It reads one row per org, the period total the ingest keeps beside the daily rollups, so
    its cost follows the number of orgs with usage, not the days they have used.
    """
    used = (
        select(period_usage.c.org_id, period_usage.c.minutes)
        .where(period_usage.c.first_day == period.first_day)
        .subquery("used")
    )
    thresholds = union_all(
        *(select(literal(t, Integer).label("threshold")) for t in BUDGET_THRESHOLDS)
    ).subquery("thresholds")
    included = _included_minutes(catalog)
    return (
        select(
            orgs.c.id.label("org_id"),
            orgs.c.name.label("org_name"),
            orgs.c.billing_email.label("billing_email"),
            orgs.c.plan.label("plan"),
            used.c.minutes.label("used_minutes"),
            included.label("included_minutes"),
            thresholds.c.threshold.label("threshold"),
        )
        .select_from(used.join(orgs, orgs.c.id == used.c.org_id).join(thresholds, true()))
        .where(and_(
            used.c.minutes > 0,
            # Implied by the next line, but said per org: PostgreSQL then drops the orgs below
            # every threshold while joining them, before making a row per threshold (a third
            # off the steady budget round at 1,000,000 orgs).
            used.c.minutes * 100 >= min(BUDGET_THRESHOLDS) * included,
            used.c.minutes * 100 >= thresholds.c.threshold * included,
        ))
    )


# The columns of `refused_orgs`, in order.
REFUSAL_COLUMNS = ("org_id", "org_name", "reason", "heartbeats")


def refused_orgs(starts: datetime, ends: datetime) -> Any:
    """One row per (org, reason) with heartbeats refused in the UTC hours that overlap
    [starts, ends], most refused first. The tally is kept by hour, so the window widens to
    whole hours. Batches naming unknown orgs are not in it. Columns: REFUSAL_COLUMNS."""
    r = heartbeat_refusals.c
    first, last = minute_of(starts) // MINUTES_PER_HOUR, minute_of(ends) // MINUTES_PER_HOUR
    total = func.sum(r.heartbeats)
    return (
        select(r.org_id.label("org_id"), orgs.c.name.label("org_name"),
               r.reason.label("reason"), total.label("heartbeats"))
        .select_from(heartbeat_refusals.outerjoin(orgs, orgs.c.id == r.org_id))
        .where(r.hour >= first, r.hour <= last)
        .group_by(r.org_id, orgs.c.name, r.reason)
        .order_by(total.desc(), r.org_id, r.reason)
    )
