"""The admin audit log: append and read. Every statement is parameterised."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from billing_core.sql import utc
from billing_engine.audit.tables import audit_log
from billing_engine.db.database import Store


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str | None
    method: str
    path: str
    target: str | None
    org_id: str | None
    summary: str  # JSON text
    status: int
    outcome: str
    request_id: str | None
    id: int | None = None


class AuditStore(Store):
    def append(self, entry: AuditEntry) -> int:
        stmt = (
            audit_log.insert()
            .values(
                at=entry.at,
                actor=entry.actor,
                method=entry.method,
                path=entry.path[:500],
                target=None if entry.target is None else entry.target[:300],
                org_id=entry.org_id,
                summary=entry.summary,
                status=entry.status,
                outcome=entry.outcome,
                request_id=entry.request_id,
            )
            .returning(audit_log.c.id)
        )
        return int(self._run(lambda c: c.execute(stmt).scalar_one(), write=True))

    def complete(self, entry_id: int, *, target: str | None, org_id: str | None, summary: str,
                 status: int, outcome: str) -> None:
        stmt = (audit_log.update().where(audit_log.c.id == entry_id)
                .values(target=None if target is None else target[:300], org_id=org_id,
                        summary=summary, status=status, outcome=outcome))
        self._run(lambda c: c.execute(stmt), write=True)

    def recent(
        self, *, limit: int, org_id: str | None = None, actor: str | None = None
    ) -> list[AuditEntry]:
        """Newest first."""
        query = select(audit_log)
        if org_id is not None:
            query = query.where(audit_log.c.org_id == org_id)
        if actor is not None:
            query = query.where(audit_log.c.actor == actor)
        query = query.order_by(audit_log.c.at.desc(), audit_log.c.id.desc()).limit(limit)

        def work(conn: Connection) -> list[AuditEntry]:
            return [
                AuditEntry(
                    id=int(r.id),
                    at=utc(r.at),
                    actor=r.actor,
                    method=r.method,
                    path=r.path,
                    target=r.target,
                    org_id=r.org_id,
                    summary=r.summary,
                    status=int(r.status),
                    outcome=r.outcome,
                    request_id=r.request_id,
                )
                for r in conn.execute(query)
            ]

        return self._run(work)
