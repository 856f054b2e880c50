"""Use cases of entitlements: what an org's plan and subscription allow, cached in Redis.

The database is the truth; the cache is dropped for an org whenever the org changes (its plan,
its subscription, its Stripe link), and read through on a miss.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

from billing_core.plans import PlanCatalog
from billing_engine.customers.service import Customers
from billing_engine.customers.store import OrgRecord
from billing_engine.entitlements.cache import EntitlementsCache
from billing_engine.entitlements.rules import (
    Entitlements,
    SubscriptionStatus,
    compute_entitlements,
)
from billing_engine.subscriptions.rules import org_status
from billing_engine.subscriptions.store import SubscriptionStore

log = logging.getLogger("billing_engine.enforcement")


@dataclass(frozen=True)
class Lookup:
    entitlements: Entitlements
    source: str  # "cache" or "database"


class EntitlementsService:
    def __init__(
        self,
        *,
        cache: EntitlementsCache,
        customers: Customers,
        catalog: PlanCatalog,
        subscriptions: SubscriptionStore,
    ) -> None:
        self.cache = cache
        self.customers = customers
        self.catalog = catalog
        self.subscriptions = subscriptions
        customers.on_change(self.invalidate)

    def _compute(self, org: OrgRecord, status: SubscriptionStatus) -> Entitlements:
        return compute_entitlements(
            org_id=org.id,
            plan=self.catalog.plan_or_default(org.plan),
            free_plan=self.catalog.free,
            status=status,
        )

    def _status(self, org_id: str) -> SubscriptionStatus:
        # An org without a Stripe subscription is served as active on the plan an admin gave it.
        states = self.subscriptions.subscriptions_of([org_id]).get(org_id, [])
        return org_status(states) or SubscriptionStatus.ACTIVE

    def _from_database(self, org_id: str) -> Entitlements:
        org = self.customers.require(org_id)
        return self._compute(org, self._status(org.id))

    def _cached(self, org_id: str) -> Entitlements | None:
        cached = self.cache.get(org_id)
        if cached is None:
            return None
        try:
            return Entitlements.from_json(cached)
        except (KeyError, TypeError, ValueError):
            log.warning("unreadable cached entitlements dropped")
            self.cache.invalidate(org_id)
            return None

    def lookup(self, org_id: str) -> Lookup:
        cached = self._cached(org_id)
        if cached is not None:
            return Lookup(cached, "cache")
        entitlements = self._from_database(org_id)
        self.cache.put(org_id, entitlements.as_json())
        return Lookup(entitlements, "database")

    def lookup_many(self, org_ids: Collection[str]) -> dict[str, Entitlements]:
        """Entitlements of known orgs; cache misses are read from the database in one query."""
        found: dict[str, Entitlements] = {}
        for org_id in org_ids:
            cached = self._cached(org_id)
            if cached is not None:
                found[org_id] = cached
        missing = [o for o in org_ids if o not in found]
        for org, states in self.subscriptions.orgs_with_subscriptions(missing).values():
            status = org_status(states) or SubscriptionStatus.ACTIVE
            found[org.id] = entitlements = self._compute(org, status)
            self.cache.put(org.id, entitlements.as_json())
        return found

    def invalidate(self, org_id: str) -> None:
        self.cache.invalidate(org_id)

    def recompute(self, org_id: str) -> Entitlements:
        self.cache.invalidate(org_id)
        entitlements = self._from_database(org_id)
        self.cache.put(org_id, entitlements.as_json())
        return entitlements
