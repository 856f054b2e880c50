"""What the demo's fault switch answers and takes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from billing_core.http import Timestamp


class FaultWindowOut(BaseModel):
    starts: Timestamp
    ends: Timestamp
    why: str = Field(description="scheduled, or who started it")


class DemoFaultOut(BaseModel):
    active: FaultWindowOut | None = Field(description="the fault in force now, if any")
    next_scheduled: FaultWindowOut | None


class DemoFaultIn(BaseModel):
    minutes: float = Field(default=5, gt=0, le=60, description="how long the fault lasts")
