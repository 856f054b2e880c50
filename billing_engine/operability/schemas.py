"""Probe answers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from billing_core.http import ErrorBody, ResponseModel


class AliveOut(ResponseModel):
    status: Literal["ok"]


class ChecksOut(ResponseModel):
    database: Literal["ok", "unreachable"]


class ReadyOut(ResponseModel):
    status: Literal["ready"]
    checks: ChecksOut
    payment_provider: str = Field(description="stripe, or simulated without STRIPE_SECRET_KEY")


class NotReadyOut(ErrorBody):
    """The error shape, with what was checked."""

    status: Literal["not_ready"]
    reason: str = Field(description="Why not")
    checks: ChecksOut
    payment_provider: str
