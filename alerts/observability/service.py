"""Readiness: the database answers; and, for the reader, whether this replica leads and the
last rule round reached Prometheus."""

from __future__ import annotations

from collections.abc import Callable

from alerts.observability.schemas import NotReady, Ready
from alerts.store.database import Store
from billing_core.errors import DatabaseUnavailable


class Readiness:
    def __init__(self, *, store: Store, leading: Callable[[], bool],
                 prometheus_up: Callable[[], bool | None]) -> None:
        self.store = store
        self.leading = leading
        self.prometheus_up = prometheus_up

    def check(self) -> Ready | NotReady:
        leading = self.leading()
        try:
            self.store.ping()
        except DatabaseUnavailable as error:
            reason = str(error)[:200]
            return NotReady(error=error.code, message="the database is unreachable", errors=[],
                            status="not_ready", database="unreachable", reason=reason,
                            leader=leading)
        return Ready(status="ready", database="ok", leader=leading,
                     prometheus_up=self.prometheus_up())
