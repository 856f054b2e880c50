"""Audit entries as the API shows them."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from billing_core.http import ResponseModel, Timestamp


class AuditEntryOut(ResponseModel):
    id: int | None
    at: Timestamp
    actor: str | None = Field(
        description="Who: the key's name or the signed-in person's email; null when refused")
    method: str
    path: str
    target: str | None = Field(description="What it acted on: the path parameters, or org_id")
    org_id: str | None
    summary: dict[str, Any] = Field(description="The query and body, secrets redacted")
    status: int
    outcome: str = Field(description="succeeded, failed or refused")
    request_id: str | None
