"""Heartbeats to billable instance-minutes.

The billing unit is the instance-minute: an (instance_id, UTC minute) slot with at least one
heartbeat counts once. Whatever the number, order, batching or lateness of heartbeats, the set of
slots is the same, so the bill is the same. Both running and idle heartbeats are billable: an idle
instance still holds its resources, which is why plans pause idle instances rather than ignore them.

Slots are stored compactly: one instance-hour per row, its minutes as a 60-bit mask (bit m set:
minute m of the hour had a heartbeat). Storing is a bitwise OR, so it is idempotent, commutative
and associative like the set of slots it stands for, and the minutes a batch adds are the bits
it sets that were not set before (`HourMask`, `hour_masks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from billing_core.periods import BillingPeriod, minute_of, period_containing


class InstanceState(StrEnum):
    RUNNING = "running"
    IDLE = "idle"


class RejectReason(StrEnum):
    UNKNOWN_ORG = "unknown_org"
    FUTURE_TIMESTAMP = "future_timestamp"
    CLOSED_PERIOD = "closed_period"
    INSTANCE_ORG_MISMATCH = "instance_org_mismatch"


REJECT_MESSAGES = {
    RejectReason.UNKNOWN_ORG: "org_id does not name a known org",
    RejectReason.FUTURE_TIMESTAMP: "ts is further in the future than the allowed clock skew",
    RejectReason.CLOSED_PERIOD: "ts falls in a billing period that is already closed",
    RejectReason.INSTANCE_ORG_MISMATCH: "instance_id already belongs to another org",
}


@dataclass(frozen=True)
class Heartbeat:
    instance_id: str
    org_id: str
    ts: datetime
    state: InstanceState


class HeartbeatLike(Protocol):
    """Anything shaped like a heartbeat: the domain dataclass or a validated request item."""

    @property
    def instance_id(self) -> str: ...
    @property
    def org_id(self) -> str: ...
    @property
    def ts(self) -> datetime: ...
    @property
    def state(self) -> InstanceState: ...


@dataclass(frozen=True)
class MeteringPolicy:
    clock_skew: timedelta = timedelta(seconds=120)
    close_grace: timedelta = timedelta(hours=1)


class Slot(NamedTuple):
    """A billable instance-minute. Whether the instance was running or idle in it does not
    change the bill and is not kept: the instance's newest state is (`InstanceSighting`).
    A named tuple: a batch makes one per heartbeat, and a frozen dataclass costs three times
    as much to build."""

    instance_id: str
    minute: int
    org_id: str


@dataclass(frozen=True)
class InstanceSighting:
    """What one batch says about one instance: folded into the instance's last-seen record."""

    instance_id: str
    org_id: str
    first_seen: datetime
    last_seen: datetime
    last_state: InstanceState


@dataclass(frozen=True)
class Rejection:
    index: int
    reason: RejectReason


@dataclass(frozen=True)
class BatchPlan:
    slots: tuple[Slot, ...]  # unique within the batch, sorted by (instance_id, minute)
    sightings: tuple[InstanceSighting, ...]  # sorted by instance_id
    in_batch_duplicates: int
    rejections: tuple[Rejection, ...]

    @property
    def valid_count(self) -> int:
        return len(self.slots) + self.in_batch_duplicates


def classify(
    heartbeats: Sequence[HeartbeatLike],
    *,
    now: datetime,
    policy: MeteringPolicy,
    known_orgs: Iterable[str] | Mapping[str, object],
    instance_owners: Mapping[str, str],
) -> BatchPlan:
    """Split a batch into the slots it may open and the heartbeats it must refuse.

    `instance_owners` maps already-known instances to their org; an instance first seen in this
    batch belongs to the org of its first valid heartbeat.
    """
    known = known_orgs if isinstance(known_orgs, Mapping) else frozenset(known_orgs)
    owners = dict(instance_owners)
    latest_future = now + policy.clock_skew
    earliest_open = earliest_open_instant(now=now, grace=policy.close_grace)
    slots: dict[tuple[str, int], Slot] = {}
    # instance -> [org, first_seen, last_seen, last_state]; frozen once at the end.
    seen: dict[str, list[Any]] = {}
    rejections: list[Rejection] = []
    duplicates = 0
    for index, hb in enumerate(heartbeats):
        ts = hb.ts
        if hb.org_id not in known:
            rejections.append(Rejection(index, RejectReason.UNKNOWN_ORG))
            continue
        if ts > latest_future:
            rejections.append(Rejection(index, RejectReason.FUTURE_TIMESTAMP))
            continue
        if ts < earliest_open:
            rejections.append(Rejection(index, RejectReason.CLOSED_PERIOD))
            continue
        if owners.setdefault(hb.instance_id, hb.org_id) != hb.org_id:
            rejections.append(Rejection(index, RejectReason.INSTANCE_ORG_MISMATCH))
            continue
        key = (hb.instance_id, int(ts.timestamp()) // 60)
        if key in slots:
            duplicates += 1
        else:
            slots[key] = Slot(hb.instance_id, key[1], hb.org_id)
        record = seen.get(hb.instance_id)
        if record is None:
            seen[hb.instance_id] = [hb.org_id, ts, ts, hb.state]
        else:
            if ts < record[1]:
                record[1] = ts
            if ts >= record[2]:
                record[2] = ts
                record[3] = hb.state
    return BatchPlan(
        slots=tuple(slots[k] for k in sorted(slots)),
        sightings=tuple(InstanceSighting(iid, *seen[iid]) for iid in sorted(seen)),
        in_batch_duplicates=duplicates,
        rejections=tuple(rejections),
    )


MINUTES_PER_HOUR = 60
FULL_HOUR_MASK = (1 << MINUTES_PER_HOUR) - 1


@dataclass(frozen=True)
class HourMask:
    """The minutes of one instance-hour, as stored: bit m of `minute_mask` is minute m."""

    org_id: str
    instance_id: str
    hour: int  # hours since the Unix epoch, UTC
    minute_mask: int

    @property
    def minutes(self) -> int:
        return self.minute_mask.bit_count()


def hour_masks(slots: Iterable[Slot]) -> tuple[HourMask, ...]:
    """Fold minute slots into instance-hours, sorted by (org_id, instance_id, hour): the order
    rows are written in, so overlapping batches lock rows in the same order."""
    masks: dict[tuple[str, str, int], int] = {}
    for slot in slots:
        hour, offset = divmod(slot.minute, MINUTES_PER_HOUR)
        key = (slot.org_id, slot.instance_id, hour)
        masks[key] = masks.get(key, 0) | (1 << offset)
    return tuple(HourMask(o, i, h, masks[(o, i, h)]) for o, i, h in sorted(masks))


def minutes_added(stored: int, sent: int) -> int:
    """How many minutes `sent` adds to an instance-hour that already holds `stored`."""
    return (sent & ~stored).bit_count()


def earliest_open_instant(*, now: datetime, grace: timedelta) -> datetime:
    """The start of the oldest period still taking usage: last month's during its grace."""
    current = period_containing(now)
    previous = current.previous()
    return previous.start if previous.is_open(now=now, grace=grace) else current.start


def billable_minutes_by_org(heartbeats: Iterable[Heartbeat]) -> dict[str, int]:
    """The reference definition of the bill: distinct (instance, minute) slots per org."""
    slots: dict[tuple[str, int], str] = {}
    for hb in heartbeats:
        slots.setdefault((hb.instance_id, minute_of(hb.ts)), hb.org_id)
    totals: dict[str, int] = {}
    for org_id in slots.values():
        totals[org_id] = totals.get(org_id, 0) + 1
    return totals


def first_month_kept(*, now: datetime, keep_months: int) -> BillingPeriod:
    """Raw usage retention: the oldest month whose raw usage is still kept, `keep_months`
    complete months before the current one. Older months may be archived and dropped once
    they are invoiced; their daily rollups and invoices stay."""
    return period_containing(now).shifted(-keep_months)
