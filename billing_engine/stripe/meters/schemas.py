"""The usage outbox as the API shows it: a flush's result and the records waiting."""

from __future__ import annotations

from pydantic import Field

from billing_core.http import ResponseModel, Timestamp


class RecordOutcomeOut(ResponseModel):
    identifier: str
    org_id: str
    minutes: int
    outcome: str = Field(
        description="sent, retrying, failed, expired, waiting or not_attempted"
    )
    error: str | None = None


class FlushOut(ResponseModel):
    provider: str
    enqueued: int = Field(description="Newly closed hours queued by this run")
    attempted: int
    sent: int
    retrying: int
    failed: int
    expired: int = Field(description="Records given up: their hour left Stripe's 35-day window")
    errors: dict[str, int] = Field(description="Failed attempts by kind")
    stopped: str | None = Field(description="Why the run ended early: circuit_open, "
                                "rate_limited, unauthorized")
    resume_at: Timestamp | None
    records: list[RecordOutcomeOut] = Field(description="The first 100 records handled")


class OutboxRecordOut(ResponseModel):
    id: int
    identifier: str
    org_id: str
    hour: Timestamp
    version: int
    minutes: int
    state: str
    attempts: int
    next_attempt_at: Timestamp
    last_error: str | None
    last_status: int | None
    stripe_customer_id: str | None
    generation: int = Field(description="Bumped by each requeue; part of the sent identifier")
    sent_identifier: str | None = Field(
        description="The identifier Stripe sees for this record with its customer"
    )
    created_at: Timestamp
    age_seconds: int


class PendingOut(ResponseModel):
    provider: str
    simulated: bool
    circuit_breaker: str = Field(description="closed, open or half_open")
    count: int
    failed_count: int
    rejected_count: int = Field(description="Reported by Stripe's asynchronous validation")
    expired_count: int = Field(description="Never sent: outside Stripe's 35-day window")
    sent_count: int
    oldest_age_seconds: int
    oldest: list[OutboxRecordOut]
    failed: list[OutboxRecordOut]
    rejected: list[OutboxRecordOut]
    hint: str


class RequeuedOut(ResponseModel):
    requeued: int
    org_id: str | None


class ThinEventOut(ResponseModel):
    event_id: str
    type: str
    outcome: str = Field(description="handled, ignored (a type we do not act on) or duplicate")
    rejected: int = Field(description="Usage records marked rejected by this error report")
