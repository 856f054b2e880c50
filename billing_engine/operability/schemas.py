"""Probe answers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from billing_core.http import ResponseModel


class AliveOut(ResponseModel):
    status: Literal["ok"]


class ChecksOut(ResponseModel):
    database: Literal["ok", "unreachable"]


class ReadyOut(ResponseModel):
    status: Literal["ready", "not_ready"]
    reason: str | None = Field(default=None, description="Why not, when not ready")
    checks: ChecksOut
    payment_provider: str = Field(description="stripe, or simulated without STRIPE_SECRET_KEY")
