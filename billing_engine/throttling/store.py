"""Throttle state per instance and the daily counter per org. Every statement is parameterised."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, func, select, text

from billing_core.sql import array_literal, utc, utc_or_none
from billing_engine.db.database import Store
from billing_engine.throttling.rules import InstanceActivity
from billing_engine.throttling.tables import daily_counter_resets, instance_throttle
from billing_engine.usage.tables import daily_usage


@dataclass(frozen=True)
class ThrottleRecord:
    instance_id: str
    org_id: str
    activity: InstanceActivity
    paused_reason: str | None
    paused_since: datetime | None
    checked_at: datetime



def _throttle(row: Any) -> ThrottleRecord:
    """A stored state from a row of `instance_throttle`'s columns in table order, unpacked by
    position (a batch reads a thousand of them; a lookup by name costs more than the rest)."""
    (instance_id, org_id, run_started_at, last_running_at, idle_since, last_seen,
     paused_reason, paused_since, checked_at) = row
    return ThrottleRecord(
        instance_id=instance_id,
        org_id=org_id,
        activity=InstanceActivity(
            run_started_at=utc_or_none(run_started_at),
            last_running_at=utc_or_none(last_running_at),
            idle_since=utc_or_none(idle_since),
            last_seen=utc_or_none(last_seen),
        ),
        paused_reason=paused_reason,
        paused_since=utc_or_none(paused_since),
        checked_at=utc(checked_at),
    )


# PostgreSQL: the throttle state of a batch's instances by one array (a 1,000-id IN list is a
# new query text for the driver to parse each time), and saved by one statement of arrays in
# instance order, instead of a statement per instance.
_PG_STATES = text(
    "SELECT t.* FROM unnest(CAST(:ids AS text[])) AS w(instance_id)"
    " JOIN instance_throttle AS t ON t.instance_id = w.instance_id"
)
_PG_SAVE = text(
    """
    INSERT INTO instance_throttle AS t (instance_id, org_id, run_started_at, last_running_at,
        idle_since, last_seen, paused_reason, paused_since, checked_at)
    SELECT * FROM unnest(
        CAST(:instance_id AS text[]), CAST(:org_id AS text[]),
        CAST(:run_started_at AS timestamptz[]), CAST(:last_running_at AS timestamptz[]),
        CAST(:idle_since AS timestamptz[]), CAST(:last_seen AS timestamptz[]),
        CAST(:paused_reason AS text[]), CAST(:paused_since AS timestamptz[]),
        CAST(:checked_at AS timestamptz[])
    ) AS s(instance_id, org_id, run_started_at, last_running_at, idle_since, last_seen,
           paused_reason, paused_since, checked_at)
    ORDER BY instance_id
    ON CONFLICT (instance_id) DO UPDATE
    SET org_id = EXCLUDED.org_id, run_started_at = EXCLUDED.run_started_at,
        last_running_at = EXCLUDED.last_running_at, idle_since = EXCLUDED.idle_since,
        last_seen = EXCLUDED.last_seen, paused_reason = EXCLUDED.paused_reason,
        paused_since = EXCLUDED.paused_since, checked_at = EXCLUDED.checked_at
    """
)


class ThrottleStore(Store):
    def throttle_inputs(
        self, instance_ids: Iterable[str], org_ids: Iterable[str], *, day: date
    ) -> tuple[dict[str, ThrottleRecord], dict[str, int]]:
        """Stored throttle state of these instances, and each org's throttle minutes on `day`
        (its usage that day less any admin reset), in one transaction."""
        wanted = sorted(set(instance_ids))
        org_list = sorted(set(org_ids))

        def work(conn: Connection) -> tuple[dict[str, ThrottleRecord], dict[str, int]]:
            states: dict[str, ThrottleRecord] = {}
            if wanted:
                rows = conn.execute(
                    _PG_STATES.bindparams(ids=array_literal(wanted)) if self.db.is_postgres
                    else select(instance_throttle).where(
                        instance_throttle.c.instance_id.in_(wanted)
                    )
                )
                states = {r[0]: _throttle(r) for r in rows.all()}  # fetched at once
            minutes: dict[str, int] = dict.fromkeys(org_list, 0)
            if org_list:
                query = (
                    select(
                        daily_usage.c.org_id,
                        daily_usage.c.minutes,
                        func.coalesce(daily_counter_resets.c.offset_minutes, 0).label("offset"),
                    )
                    .select_from(
                        daily_usage.outerjoin(
                            daily_counter_resets,
                            (daily_counter_resets.c.org_id == daily_usage.c.org_id)
                            & (daily_counter_resets.c.day == daily_usage.c.day),
                        )
                    )
                    .where(daily_usage.c.org_id.in_(org_list), daily_usage.c.day == day)
                )
                for r in conn.execute(query):
                    minutes[r.org_id] = max(0, int(r.minutes) - int(r.offset))
            return states, minutes

        return self._run(work)

    def get_throttle(self, instance_id: str) -> ThrottleRecord | None:
        row = self._run(
            lambda c: c.execute(
                select(instance_throttle).where(instance_throttle.c.instance_id == instance_id)
            ).first()
        )
        return None if row is None else _throttle(row)

    def save_throttle(self, records: Iterable[ThrottleRecord]) -> None:
        ordered = sorted(records, key=lambda r: r.instance_id)
        if not ordered:
            return
        if self.db.is_postgres:
            activities = [r.activity for r in ordered]
            arrays = {
                "instance_id": array_literal([r.instance_id for r in ordered]),
                "org_id": array_literal([r.org_id for r in ordered]),
                "run_started_at": array_literal([a.run_started_at for a in activities]),
                "last_running_at": array_literal([a.last_running_at for a in activities]),
                "idle_since": array_literal([a.idle_since for a in activities]),
                "last_seen": array_literal([a.last_seen for a in activities]),
                "paused_reason": array_literal([r.paused_reason for r in ordered]),
                "paused_since": array_literal([r.paused_since for r in ordered]),
                "checked_at": array_literal([r.checked_at for r in ordered]),
            }
            self._run(lambda c: c.execute(_PG_SAVE, arrays), write=True)
            return
        values = [
            {
                "instance_id": r.instance_id,
                "org_id": r.org_id,
                "run_started_at": r.activity.run_started_at,
                "last_running_at": r.activity.last_running_at,
                "idle_since": r.activity.idle_since,
                "last_seen": r.activity.last_seen,
                "paused_reason": r.paused_reason,
                "paused_since": r.paused_since,
                "checked_at": r.checked_at,
            }
            for r in ordered
        ]
        stmt = self._insert(instance_throttle)
        stmt = stmt.on_conflict_do_update(
            index_elements=[instance_throttle.c.instance_id],
            set_={k: stmt.excluded[k] for k in values[0] if k != "instance_id"},
        )
        self._run(lambda c: c.execute(stmt, values), write=True)

    def reset_daily_counter(self, org_id: str, *, day: date, now: datetime) -> tuple[int, int]:
        """Start the org's daily throttle counter again from zero; returns (usage minutes that
        day, which stay billed, and the new offset). Clears daily-cap pauses of its instances."""

        def work(conn: Connection) -> tuple[int, int]:
            used = conn.execute(
                select(func.coalesce(func.sum(daily_usage.c.minutes), 0)).where(
                    daily_usage.c.org_id == org_id, daily_usage.c.day == day
                )
            ).scalar_one()
            stmt = self._insert(daily_counter_resets).values(
                org_id=org_id, day=day, offset_minutes=int(used), reset_at=now
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[daily_counter_resets.c.org_id, daily_counter_resets.c.day],
                    set_={"offset_minutes": stmt.excluded.offset_minutes, "reset_at": now},
                )
            )
            conn.execute(
                instance_throttle.update()
                .where(
                    instance_throttle.c.org_id == org_id,
                    instance_throttle.c.paused_reason == "daily_cap",
                )
                .values(paused_reason=None, paused_since=None)
            )
            return int(used), int(used)

        return self._run(work, write=True)

    def count_paused_still_seen(self, *, seen_since: datetime) -> int:
        """Instances told to pause that still sent a heartbeat since `seen_since`."""
        query = select(func.count()).where(
            instance_throttle.c.paused_reason.is_not(None),
            instance_throttle.c.last_seen >= seen_since,
        )
        return int(self._run(lambda c: c.execute(query).scalar_one()))
