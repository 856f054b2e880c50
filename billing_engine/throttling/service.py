"""Use cases of throttling: tell each instance to run or pause, explain why, reset counters.

Decisions are made after the heartbeats they follow are committed (a failure to decide never
loses usage); each instance's run state is kept so a decision never scans raw slots, and a pause
is counted once per episode.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from billing_core.clock import Clock, utc_now
from billing_core.errors import NotFound
from billing_engine.customers.service import Customers
from billing_engine.entitlements.service import EntitlementsService
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.throttling.rules import (
    RUN_GAP,
    Action,
    InstanceActivity,
    ThrottleDecision,
    decide,
    observe_all,
)
from billing_engine.throttling.store import ThrottleRecord, ThrottleStore
from billing_engine.usage.rules import HeartbeatLike

log = logging.getLogger("billing_engine.enforcement")


class Throttling:
    def __init__(
        self,
        *,
        store: ThrottleStore,
        entitlements: EntitlementsService,
        customers: Customers,
        metrics: EngineMetrics,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.entitlements = entitlements
        self.customers = customers
        self.metrics = metrics
        self.clock = clock


    def decide_batch(
        self, heartbeats: Sequence[HeartbeatLike], rejected: Collection[int]
    ) -> list[dict[str, Any]]:
        """One decision per instance with at least one accepted heartbeat, in batch order."""
        now = self.clock()
        per_instance: dict[str, list[HeartbeatLike]] = {}
        for index, hb in enumerate(heartbeats):
            if index not in rejected:
                per_instance.setdefault(hb.instance_id, []).append(hb)
        if not per_instance:
            return []
        org_of = {iid: hbs[0].org_id for iid, hbs in per_instance.items()}
        states, minutes = self.store.throttle_inputs(
            per_instance, set(org_of.values()), day=now.date()
        )
        limits = {
            org: entitlements.limits
            for org, entitlements in self.entitlements.lookup_many(set(org_of.values())).items()
        }
        records: list[ThrottleRecord] = []
        out: list[dict[str, Any]] = []
        episodes_changed = False
        for instance_id, hbs in per_instance.items():
            previous = states.get(instance_id)
            activity = previous.activity if previous else InstanceActivity()
            # Oldest first; heartbeats of the same instant keep their batch order.
            beats = sorted(((hb.ts, hb.state) for hb in hbs), key=itemgetter(0))
            activity = observe_all(activity, beats)
            org_id = org_of[instance_id]
            decision = decide(
                activity=activity,
                limits=limits[org_id],
                org_minutes_today=minutes.get(org_id, 0),
                now=now,
            )
            record = self._settle(previous, instance_id, org_id, activity, decision, now=now)
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
        self.store.save_throttle(records)
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
        *,
        now: datetime,
    ) -> ThrottleRecord:
        """Count a pause once per episode: a new reason starts a new episode. `now` is the
        instant the decision was made for (one per batch)."""
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
        record = self.store.get_throttle(instance_id)
        if record is None:
            raise NotFound("instance_id", f"no throttle state for {instance_id!r}: no heartbeat")
        now = self.clock()
        _, minutes = self.store.throttle_inputs((), (record.org_id,), day=now.date())
        entitlements = self.entitlements.lookup(record.org_id).entitlements
        decision = decide(
            activity=record.activity,
            limits=entitlements.limits,
            org_minutes_today=minutes.get(record.org_id, 0),
            now=now,
        )
        settled = record
        if persist:
            settled = self._settle(record, instance_id, record.org_id, record.activity, decision,
                                   now=now)
            self.store.save_throttle([settled])
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
        self.customers.require(org_id)
        now = self.clock()
        used, offset = self.store.reset_daily_counter(org_id, day=now.date(), now=now)
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
        seen_since = self.clock() - RUN_GAP
        self.metrics.throttle_over_limit.set(
            self.store.count_paused_still_seen(seen_since=seen_since)
        )





def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()
