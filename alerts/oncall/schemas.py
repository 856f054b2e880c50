"""What the alerts API answers about who is on call and how an alert escalates."""

from __future__ import annotations

from pydantic import BaseModel, Field

from alerts.api.contract import Timestamp


class ShiftOut(BaseModel):
    person: str
    email: str | None
    starts: Timestamp
    ends: Timestamp = Field(description="the next moment the holder may change")
    override: bool = Field(description="held through an override, not the rotation's order")


class RotationOut(BaseModel):
    name: str
    members: list[str]
    now: ShiftOut
    next: ShiftOut = Field(description="the next holder (the same person for a one-member "
                                       "rotation)")


class SeverityOut(BaseModel):
    severity: str = Field(description="P0 to P3")
    response_seconds: int = Field(description="unacknowledged this long: the next step is told")
    repeat_seconds: int | None = Field(description="how often a firing alert is sent again")
    steps: list[str] = Field(description="the rotations told in turn")


class OnCallOut(BaseModel):
    at: Timestamp
    rotations: list[RotationOut]
    severities: list[SeverityOut]


class EscalationStepOut(BaseModel):
    step: int = Field(description="0 when the alert fired, then one per response time")
    rotation: str
    person: str
    at: Timestamp = Field(description="when it was told (for the next step: when it is due)")


class EscalationOut(BaseModel):
    response_seconds: int
    steps: list[EscalationStepOut] = Field(description="the steps taken this episode")
    next: EscalationStepOut | None = Field(description="the next step if nobody acknowledges; "
                                                       "null once acknowledged, resolved or at "
                                                       "the last step")
