"""Use cases of entitlements and throttling: the domain applied to the store and the cache."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from billing_engine.customers.service import BillingService, NotFound
from billing_engine.db.repository import OrgRecord, ThrottleRecord
from billing_engine.entitlements.cache import EntitlementsCache
from billing_engine.entitlements.rules import (
    Entitlements,
    SubscriptionStatus,
    compute_entitlements,
)
from billing_engine.stripe.webhooks.store import StripeStore
from billing_engine.subscriptions.rules import SubscriptionState, org_status
from billing_engine.throttling.rules import (
    RUN_GAP,
    Action,
    InstanceActivity,
    ThrottleDecision,
    decide,
    observe,
)
from billing_engine.usage.rules import HeartbeatLike

log = logging.getLogger("billing_engine.enforcement")


@dataclass(frozen=True)
class Lookup:
    entitlements: Entitlements
    source: str  # "cache" or "database"


class Enforcement:
    def __init__(
        self,
        *,
        service: BillingService,
        cache: EntitlementsCache,
        subscriptions: StripeStore | None = None,
    ) -> None:
        self.service = service
        self.repo = service.repo
        self.metrics = service.metrics
        self.cache = cache
        self.subscriptions = subscriptions
        service.org_listeners.append(self.invalidate)

    # -- entitlements -----------------------------------------------------------------------

    def subscription_status(self, org: OrgRecord) -> SubscriptionStatus:
        # The Stripe webhooks keep subscriptions; an org without one is served as active on the
        # plan an admin gave it.
        if self.subscriptions is None:
            return SubscriptionStatus.ACTIVE
        states = self.subscriptions.subscriptions_of([org.id]).get(org.id, [])
        return org_status(states) or SubscriptionStatus.ACTIVE

    def _compute(self, org: OrgRecord, status: SubscriptionStatus | None = None) -> Entitlements:
        catalog = self.service.catalog
        return compute_entitlements(
            org_id=org.id,
            plan=self.service.plan_for(org),
            free_plan=catalog.get("free") or catalog.plans[catalog.default_plan],
            status=self.subscription_status(org) if status is None else status,
        )

    def _from_database(self, org_id: str) -> Entitlements:
        return self._compute(self.service.require_org(org_id))

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
        rows: dict[str, tuple[OrgRecord, list[SubscriptionState]]]
        if self.subscriptions is None:
            rows = {o.id: (o, []) for o in self.repo.get_orgs(missing).values()}
        else:
            rows = self.subscriptions.orgs_with_subscriptions(missing)
        for org, states in rows.values():
            status = org_status(states) or SubscriptionStatus.ACTIVE
            found[org.id] = entitlements = self._compute(org, status)
            self.cache.put(org.id, entitlements.as_json())
        return found

    def entitlements_view(self, org_id: str) -> dict[str, Any]:
        found = self.lookup(org_id)
        return {**found.entitlements.as_json(), "source": found.source}

    def invalidate(self, org_id: str) -> None:
        self.cache.invalidate(org_id)

    def recompute(self, org_id: str) -> dict[str, Any]:
        self.cache.invalidate(org_id)
        entitlements = self._from_database(org_id)
        self.cache.put(org_id, entitlements.as_json())
        return {**entitlements.as_json(), "source": "database", "recomputed": True}

    # -- throttling -------------------------------------------------------------------------

    def decide_batch(
        self, heartbeats: Sequence[HeartbeatLike], rejected: Collection[int]
    ) -> list[dict[str, Any]]:
        """One decision per instance with at least one accepted heartbeat, in batch order."""
        now = self.service.clock()
        per_instance: dict[str, list[HeartbeatLike]] = {}
        for index, hb in enumerate(heartbeats):
            if index not in rejected:
                per_instance.setdefault(hb.instance_id, []).append(hb)
        if not per_instance:
            return []
        org_of = {iid: hbs[0].org_id for iid, hbs in per_instance.items()}
        states, minutes = self.repo.throttle_inputs(
            per_instance, set(org_of.values()), day=now.date()
        )
        limits = {
            org: entitlements.limits
            for org, entitlements in self.lookup_many(set(org_of.values())).items()
        }
        records: list[ThrottleRecord] = []
        out: list[dict[str, Any]] = []
        episodes_changed = False
        for instance_id, hbs in per_instance.items():
            previous = states.get(instance_id)
            activity = previous.activity if previous else InstanceActivity()
            for hb in sorted(hbs, key=lambda h: h.ts):
                activity = observe(activity, ts=hb.ts, state=hb.state)
            org_id = org_of[instance_id]
            decision = decide(
                activity=activity,
                limits=limits[org_id],
                org_minutes_today=minutes.get(org_id, 0),
                now=now,
            )
            record = self._settle(previous, instance_id, org_id, activity, decision)
            was = previous.paused_reason if previous is not None else None
            episodes_changed |= was != record.paused_reason
            records.append(record)
            out.append(
                {
                    "instance_id": instance_id,
                    "action": decision.action.value,
                    "reason": None if decision.reason is None else decision.reason.value,
                }
            )
        self.repo.save_throttle(records)
        if episodes_changed:
            self.refresh_over_limit()
        return out

    def _settle(
        self,
        previous: ThrottleRecord | None,
        instance_id: str,
        org_id: str,
        activity: InstanceActivity,
        decision: ThrottleDecision,
    ) -> ThrottleRecord:
        """Count a pause once per episode: a new reason starts a new episode."""
        now = self.service.clock()
        reason: str | None = None
        paused_since = None
        if decision.action is Action.PAUSE and decision.reason is not None:
            reason = decision.reason.value
            if previous is not None and previous.paused_reason == reason:
                paused_since = previous.paused_since
            else:
                paused_since = now
                self.metrics.instances_paused.labels(reason).inc()
        return ThrottleRecord(
            instance_id=instance_id,
            org_id=org_id,
            activity=activity,
            paused_reason=reason,
            paused_since=paused_since,
            checked_at=now,
        )

    def _evaluate(self, instance_id: str, *, persist: bool) -> dict[str, Any]:
        record = self.repo.get_throttle(instance_id)
        if record is None:
            raise NotFound("instance_id", f"no throttle state for {instance_id!r}: no heartbeat")
        now = self.service.clock()
        _, minutes = self.repo.throttle_inputs((), (record.org_id,), day=now.date())
        entitlements = self.lookup(record.org_id).entitlements
        decision = decide(
            activity=record.activity,
            limits=entitlements.limits,
            org_minutes_today=minutes.get(record.org_id, 0),
            now=now,
        )
        settled = record
        if persist:
            settled = self._settle(record, instance_id, record.org_id, record.activity, decision)
            self.repo.save_throttle([settled])
            self.refresh_over_limit()
        activity = record.activity
        return {
            "instance_id": instance_id,
            "org_id": record.org_id,
            "plan": entitlements.effective_plan,
            **decision.as_json(),
            "paused_since": _iso(settled.paused_since),
            "last_checked_at": _iso(settled.checked_at),
            "activity": {
                "run_started_at": _iso(activity.run_started_at),
                "last_running_at": _iso(activity.last_running_at),
                "idle_since": _iso(activity.idle_since),
                "last_seen": _iso(activity.last_seen),
            },
            "as_of": now.isoformat(),
        }

    def throttle_view(self, instance_id: str) -> dict[str, Any]:
        return self._evaluate(instance_id, persist=False)

    def check_instance(self, instance_id: str) -> dict[str, Any]:
        return self._evaluate(instance_id, persist=True)

    def reset_daily(self, org_id: str) -> dict[str, Any]:
        self.service.require_org(org_id)
        now = self.service.clock()
        used, offset = self.repo.reset_daily_counter(org_id, day=now.date(), now=now)
        self.refresh_over_limit()
        log.info("daily throttle counter reset", extra={"offset_minutes": offset})
        return {
            "org_id": org_id,
            "day": now.date().isoformat(),
            "billed_minutes_today": used,
            "offset_minutes": offset,
            "throttle_minutes_today": 0,
            "reset_at": now.isoformat(),
        }

    # -- housekeeping -----------------------------------------------------------------------

    def refresh_over_limit(self) -> None:
        seen_since = self.service.clock() - RUN_GAP
        self.metrics.throttle_over_limit.set(
            self.repo.count_paused_still_seen(seen_since=seen_since)
        )

    def refresh_gauges(self) -> None:
        self.cache.ping()
        self.refresh_over_limit()


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()
