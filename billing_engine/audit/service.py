"""Who did what with the admin key: named keys, and an audit entry for every admin mutation.

The rule: every POST, PUT, PATCH or DELETE to a route under /admin/ or /debug/ that passes the
access check is written ahead: its row (who, what, outcome `started`) is committed before the
route runs, and if it cannot be written the action is refused with 503 `audit_unavailable` and
nothing is done. When the status is known, before the response leaves, the row gets its status,
outcome (succeeded: 2xx/3xx; failed: any other, including 500) and the request summarised. A
crash in between leaves `started`: the action may or may not have happened, and the row says
someone tried. Many actions span several transactions or call Stripe, so the row cannot share
their transaction; written first, no action goes unrecorded.

Requests without a valid credential (401, 429, or a 413 before the credential was read) get
no row: they are counted (`auth_failures_total`), so a scanner or a guesser cannot fill the
table with bodies of its choosing. A known caller refused for its role or scope (403) gets a
row with only the refusal's reason (outcome `refused`), not the body or query.
Reads (GET) and requests that match no route are not recorded. The entry names the key by its
name, never its value; the summary has secret-looking fields and every configured secret
redacted, and control characters (a NUL cannot be stored) written as escapes.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from billing_core.errors import AuditUnavailable
from billing_engine.audit.store import AuditEntry, AuditStore
from billing_engine.operability.metrics import EngineMetrics

log = logging.getLogger("billing_engine.audit")

AUDITED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUDITED_PREFIXES = ("/admin/", "/debug/")
REFUSED_STATUSES = frozenset({401, 403, 429})

MAX_BODY_CAPTURE = 16 * 1024
MAX_STRING = 200
MAX_ITEMS = 20
MAX_DEPTH = 4
MAX_SUMMARY = 4000
REDACTED = "[redacted]"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SECRET_FIELD = re.compile(
    r"key|secret|token|passw|authori[sz]ation|signature|cookie|card|cvc|iban|account_number",
    re.IGNORECASE,
)


def _redact(value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return "{...}"
        out: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= MAX_ITEMS:
                out["..."] = f"{len(value) - MAX_ITEMS} more fields"
                break
            key = str(key)[:MAX_STRING]
            out[key] = REDACTED if _SECRET_FIELD.search(key) else _redact(item, depth + 1)
        return out
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            return "[...]"
        items = [_redact(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"... {len(value) - MAX_ITEMS} more items")
        return items
    if isinstance(value, str) and len(value) > MAX_STRING:
        return value[: MAX_STRING - 3] + "..."
    return value


def summarise(
    *,
    body: bytes,
    body_bytes: int,
    content_type: str | None,
    query: str,
    secrets: Sequence[str] = (),
    refusal: str | None = None,
) -> dict[str, Any]:
    """What the request asked for, small and without secrets."""
    summary: dict[str, Any] = {}
    if query:
        summary["query"] = _redact(dict(parse_qsl(query, keep_blank_values=True)))
    if body_bytes:
        parsed: Any = None
        if content_type is None or "json" in content_type:
            try:
                parsed = json.loads(body) if body_bytes <= MAX_BODY_CAPTURE else None
            except ValueError:
                parsed = None
        if parsed is not None:
            summary["body"] = _redact(parsed)
        else:
            summary["body"] = {"bytes": body_bytes, "content_type": content_type}
    if refusal:
        summary["refused"] = refusal
    return summary


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _target(path_params: dict[str, Any], summary: dict[str, Any]) -> tuple[str | None, str | None]:
    """(target, org_id): the path parameters, else the body's org_id, else the query."""
    body = summary.get("body")
    body_org = body.get("org_id") if isinstance(body, dict) else None
    query = summary.get("query") or {}
    org_id = path_params.get("org_id") or body_org or query.get("org_id")
    if path_params:
        target = ", ".join(f"{k}={v}" for k, v in path_params.items())
    elif body_org:
        target = f"org_id={body_org}"
    elif query:
        target = ", ".join(f"{k}={v}" for k, v in query.items())
    else:
        target = None
    org_id = str(org_id)[:64] if isinstance(org_id, str) and org_id else None
    return target, org_id


def outcome_of(status: int) -> str:
    if status in REFUSED_STATUSES:
        return "refused"
    return "succeeded" if status < 400 else "failed"


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    try:
        summary = json.loads(entry.summary)
    except ValueError:
        summary = {"text": entry.summary}
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "method": entry.method,
        "path": entry.path,
        "target": entry.target,
        "org_id": entry.org_id,
        "summary": summary,
        "status": entry.status,
        "outcome": entry.outcome,
        "request_id": entry.request_id,
    }


class AuditLog:
    def __init__(
        self,
        store: AuditStore,
        *,
        metrics: EngineMetrics,
        clock: Callable[[], datetime],
        secrets: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.secrets = tuple(s for s in secrets if s)

    def begin(self, *, actor: str | None, method: str, path: str, path_params: dict[str, Any],
              query: str, request_id: str | None) -> int:
        """Write the row of an action about to run; raises AuditUnavailable if it cannot."""
        summary = summarise(body=b"", body_bytes=0, content_type=None, query=query)
        entry = self._entry(actor=actor, method=method, path=path, path_params=path_params,
                            summary=summary, status=0, outcome="started",
                            request_id=request_id)
        try:
            return self.store.append(entry)
        except Exception as exc:
            self.metrics.audit_write_failures.inc()
            log.error("audit entry not written: action refused",
                      extra={"method": method, "endpoint": entry.path,
                             "reason": str(exc)[:200]})
            raise AuditUnavailable("the audit log cannot be written; nothing was done, "
                                   "try again") from exc

    def refused(self, *, actor: str, method: str, path: str, path_params: dict[str, Any],
                reason: str, request_id: str | None) -> None:
        """A known caller refused for its role or scope: who, what, why; never the body or
        query. Nothing ran, so a failure to write is logged and counted, not raised."""
        entry = self._entry(actor=actor, method=method, path=path, path_params=path_params,
                            summary={"refused": reason}, status=403, outcome="refused",
                            request_id=request_id)
        try:
            self.store.append(entry)
        except Exception as exc:
            self.metrics.audit_write_failures.inc()
            log.error("audit entry not written", extra={"method": method, "status": 403,
                                                        "reason": str(exc)[:200]})

    def complete(self, entry_id: int, *, path_params: dict[str, Any], summary: dict[str, Any],
                 status: int) -> None:
        """The outcome of an action begun. A failure is logged and counted, not raised: the
        action has happened, its row exists (outcome `started`) and its answer must leave."""
        done = self._entry(actor=None, method="", path="", path_params=path_params,
                           summary=summary, status=status, outcome=outcome_of(status),
                           request_id=None)
        try:
            self.store.complete(entry_id, target=done.target, org_id=done.org_id,
                                summary=done.summary, status=status, outcome=done.outcome)
        except Exception as exc:
            self.metrics.audit_write_failures.inc()
            log.error("audit outcome not written", extra={"status": status,
                                                          "reason": str(exc)[:200]})

    def _summary_text(self, summary: dict[str, Any]) -> str:
        text = _scrub(json.dumps(summary, separators=(",", ":"), default=str), self.secrets)
        if len(text) > MAX_SUMMARY:
            text = json.dumps({"truncated": True, "text": text[: MAX_SUMMARY - 100]})
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)

    def _entry(self, *, actor: str | None, method: str, path: str,
               path_params: dict[str, Any], summary: dict[str, Any], status: int,
               outcome: str, request_id: str | None) -> AuditEntry:
        target, org_id = _target(path_params, summary)

        def clean(value: str) -> str:
            return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}",
                                _scrub(value, self.secrets))

        return AuditEntry(
            at=self.clock(), actor=actor, method=method, path=clean(path),
            target=None if target is None else clean(target),
            org_id=None if org_id is None else clean(org_id),
            summary=self._summary_text(summary), status=status, outcome=outcome,
            request_id=request_id)

    def record(
        self,
        *,
        actor: str | None,
        method: str,
        path: str,
        path_params: dict[str, Any],
        summary: dict[str, Any],
        status: int,
        request_id: str | None,
    ) -> None:
        """Append one entry. A failure to write is logged and counted, never raised: the action
        itself has already happened and its answer must reach the caller."""
        target, org_id = _target(path_params, summary)
        text = _scrub(json.dumps(summary, separators=(",", ":"), default=str), self.secrets)
        if len(text) > MAX_SUMMARY:
            text = json.dumps({"truncated": True, "text": text[: MAX_SUMMARY - 100]})
        entry = AuditEntry(
            at=self.clock(),
            actor=actor,
            method=method,
            path=_scrub(path, self.secrets),
            target=None if target is None else _scrub(target, self.secrets),
            org_id=org_id,
            summary=text,
            status=status,
            outcome=outcome_of(status),
            request_id=request_id,
        )
        try:
            self.store.append(entry)
        except Exception as exc:
            self.metrics.audit_write_failures.inc()
            log.error(
                "audit entry not written",
                extra={"method": method, "endpoint": path, "status": status,
                       "reason": str(exc)[:200]},
            )

    def recent(
        self, *, limit: int, org_id: str | None = None, actor: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            entry_json(e) for e in self.store.recent(limit=limit, org_id=org_id, actor=actor)
        ]
