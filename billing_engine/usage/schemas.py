"""Request bodies. Responses are plain JSON built by the service."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from billing_engine.usage.rules import InstanceState

MAX_BATCH = 5000
ORG_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
INSTANCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

OrgId = Annotated[str, StringConstraints(pattern=ORG_ID_PATTERN)]
InstanceId = Annotated[str, StringConstraints(pattern=INSTANCE_ID_PATTERN)]


class HeartbeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_id: InstanceId
    org_id: OrgId
    ts: AwareDatetime = Field(description="When the instance sent it; RFC 3339 with a UTC offset.")
    state: InstanceState


class HeartbeatBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    heartbeats: list[HeartbeatIn] = Field(min_length=1, max_length=MAX_BATCH)


class OrgUpsert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    email: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=320, pattern=EMAIL_PATTERN)
    ]
    plan: Annotated[str, StringConstraints(min_length=1, max_length=64)]
