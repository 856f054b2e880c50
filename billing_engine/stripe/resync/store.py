"""What a resync writes: the org's subscriptions as Stripe lists them now and the plan they put
the org on, in one transaction, through the same row functions the webhook handlers use.
Every statement is parameterised."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from billing_engine.customers import store as org_rows
from billing_engine.db.database import Store
from billing_engine.subscriptions import store as subscription_rows
from billing_engine.subscriptions.rules import SubscriptionState


@dataclass(frozen=True)
class SubscriptionChange:
    subscription_id: str
    status_before: str | None  # None: we did not hold it
    status_after: str
    changed: bool


@dataclass(frozen=True)
class Applied:
    plan_before: str
    plan_after: str
    subscriptions: tuple[SubscriptionChange, ...]


def _same(a: SubscriptionState, b: SubscriptionState) -> bool:
    """Equal in everything Stripe told us (the stamp of the event aside)."""
    return (a.status, a.price_ids, a.current_period_start, a.current_period_end,
            a.cancel_at_period_end, a.customer_id) == (
        b.status, b.price_ids, b.current_period_start, b.current_period_end,
        b.cancel_at_period_end, b.customer_id)


class ResyncStore(Store):
    def apply(
        self,
        org_id: str,
        states: Sequence[SubscriptionState],
        *,
        plan_of: Callable[[SubscriptionState], str | None],
        plan_for_org: Callable[[list[SubscriptionState]], str | None],
        source: str,
        now: datetime,
    ) -> Applied:
        """Store each subscription that differs from what we hold, then put the org on the plan
        its subscriptions call for (`plan_for_org`; None leaves the plan alone)."""

        def work(conn: Connection) -> Applied:
            org = org_rows.org_by_id(conn, org_id)
            assert org is not None, "the service checked the org exists"
            changes = []
            for state in states:
                stored = subscription_rows.subscription_by_id(conn, state.subscription_id,
                                                              org_id=org_id)
                before = None if stored is None else stored[0]
                changed = before is None or not _same(before, state)
                if changed:
                    subscription_rows.save_subscription(
                        conn, state, org_id=org_id, plan=plan_of(state), event_id=source,
                        now=now)
                changes.append(SubscriptionChange(
                    state.subscription_id, None if before is None else before.status,
                    state.status, changed))
            plan = plan_for_org(subscription_rows.subscriptions_of_org(conn, org_id))
            if plan is not None and plan != org.plan:
                org_rows.set_org_plan(conn, org_id, plan, now=now)
            return Applied(org.plan, plan or org.plan, tuple(changes))

        return self._run(work, write=True)
