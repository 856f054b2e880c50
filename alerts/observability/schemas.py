"""What the probes answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from billing_core.http import ErrorBody


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    database: Literal["ok"]
    leader: bool = Field(description="whether this replica evaluates and sends")
    prometheus_up: bool | None = Field(description="whether the last round reached Prometheus "
                                                   "(null before the first, or when this "
                                                   "process does not evaluate)")


class NotReady(ErrorBody):
    """The error body (code database_unavailable), and the probe's own fields."""

    status: Literal["not_ready"]
    database: Literal["unreachable"]
    reason: str
    leader: bool
