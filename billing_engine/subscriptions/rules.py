"""Stripe subscriptions, as the engine understands them.

Pure rules: which subscription state wins when Stripe delivers out of order, what a Stripe status
means for entitlements and which plan a price stands for. Time only ever comes in as a value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from billing_core.plans import Plan, PlanCatalog
from billing_engine.entitlements.rules import SubscriptionStatus

# Stripe subscription statuses (https://docs.stripe.com/api/subscriptions/object#subscription_object-status)
# and what each one means for what the org may use.
_ENTITLEMENT_STATUS: Mapping[str, SubscriptionStatus] = {
    "active": SubscriptionStatus.ACTIVE,
    "trialing": SubscriptionStatus.TRIALING,
    "past_due": SubscriptionStatus.PAST_DUE,
    # Stripe keeps an unpaid or paused subscription, but nobody is paying for it: free limits.
    "unpaid": SubscriptionStatus.CANCELED,
    "paused": SubscriptionStatus.CANCELED,
    "canceled": SubscriptionStatus.CANCELED,
    # The first payment never went through: the paid plan never started.
    "incomplete": SubscriptionStatus.NONE,
    "incomplete_expired": SubscriptionStatus.NONE,
}
# Statuses under which the subscription still pays for its plan.
LIVE_STATUSES = frozenset({"active", "trialing", "past_due"})
# A Stripe subscription in one of these never changes status again.
TERMINAL_STATUSES = frozenset({"canceled", "incomplete_expired"})
# Where a status sits in a subscription's life; only used to order two states stamped with the
# same second, where the further-along one is the later one.
_LIFECYCLE_RANK: Mapping[str, int] = {
    "incomplete": 0,
    "trialing": 1,
    "active": 2,
    "past_due": 3,
    "unpaid": 4,
    "paused": 4,
    "canceled": 5,
    "incomplete_expired": 5,
}


def entitlement_status(stripe_status: str) -> SubscriptionStatus:
    """Unknown statuses (a new one Stripe adds) pay for nothing until we decide otherwise."""
    return _ENTITLEMENT_STATUS.get(stripe_status, SubscriptionStatus.NONE)


def is_known_status(stripe_status: str) -> bool:
    return stripe_status in _ENTITLEMENT_STATUS


@dataclass(frozen=True)
class SubscriptionState:
    """One Stripe subscription as an event described it, stamped with that event's `created`."""

    subscription_id: str
    customer_id: str | None
    status: str
    price_ids: tuple[str, ...]
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    event_created: datetime

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Verdict(StrEnum):
    APPLY = "apply"
    STALE = "stale"  # an older state than the one we hold
    UNCHANGED = "unchanged"  # the same state again


def compare(stored: SubscriptionState | None, incoming: SubscriptionState) -> Verdict:
    """Whether `incoming` replaces what we hold for the same subscription.

    1. A canceled (or expired) subscription stays so: Stripe never revives one, so a live state
       arriving after it can only be an older delivery.
    2. Otherwise the state from the later event wins (event `created`, whole seconds).
    3. Two events from the same second: the further-along status wins, then the later current
       period end; a state equal on both is the same state again.
    """
    if stored is None:
        return Verdict.APPLY
    if stored.terminal and not incoming.terminal:
        return Verdict.STALE
    if incoming.event_created != stored.event_created:
        return Verdict.APPLY if incoming.event_created > stored.event_created else Verdict.STALE
    rank_in = _LIFECYCLE_RANK.get(incoming.status, 0)
    rank_stored = _LIFECYCLE_RANK.get(stored.status, 0)
    if rank_in != rank_stored:
        return Verdict.APPLY if rank_in > rank_stored else Verdict.STALE
    end_in, end_stored = incoming.current_period_end, stored.current_period_end
    if end_in is not None and (end_stored is None or end_in > end_stored):
        return Verdict.APPLY
    if end_stored is not None and (end_in is None or end_in < end_stored):
        return Verdict.STALE
    if incoming == stored:
        return Verdict.UNCHANGED
    # Same second, same status, same period: fields such as cancel_at_period_end changed, and
    # Stripe has no finer clock to tell which came last; take the newer delivery.
    return Verdict.APPLY


def current_subscription(states: Iterable[SubscriptionState]) -> SubscriptionState | None:
    """The subscription that speaks for the org: the most recently changed live one, else the
    most recently changed one of any status."""
    ordered = sorted(states, key=lambda s: (s.event_created, s.subscription_id), reverse=True)
    for state in ordered:
        if state.live:
            return state
    return ordered[0] if ordered else None


def org_status(states: Iterable[SubscriptionState]) -> SubscriptionStatus | None:
    """None when the org has no Stripe subscription at all (its plan was set by an admin)."""
    current = current_subscription(states)
    return None if current is None else entitlement_status(current.status)


def plan_for_prices(catalog: PlanCatalog, price_ids: Iterable[str]) -> Plan | None:
    """The plan of the first price the catalogue maps (a subscription may also carry a metered
    usage price beside its plan price)."""
    by_price = {p.stripe_price_id: p for p in catalog.plans.values() if p.stripe_price_id}
    for price_id in price_ids:
        if price_id in by_price:
            return by_price[price_id]
    return None


def plan_after_change(
    catalog: PlanCatalog, states: Iterable[SubscriptionState]
) -> str | None:
    """The plan code an org should be on given its subscriptions; None to leave it alone.

    A live subscription puts the org on its price's plan; when no subscription is live any more
    the org goes back to the default plan, since nobody pays for the old one."""
    current = current_subscription(states)
    if current is None:
        return None
    if current.live:
        plan = plan_for_prices(catalog, current.price_ids)
        return None if plan is None else plan.code
    return catalog.default_plan
