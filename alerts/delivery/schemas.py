"""What the API answers about delivery: a notification's status, and the delivery tests."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from alerts.api.contract import Text, Timestamp
from billing_core.http import ErrorBody


class LatestDelivery(BaseModel):
    """The last notification of an alert's episode on one channel."""

    status: str = Field(description="pending, sent or failed")
    state: str = Field(description="the alert state it announced: firing, resolved or acked "
                                   "(an acknowledgement told to PagerDuty)")
    receiver: str
    sent_at: Timestamp | None
    last_reason: str | None = Field(description="why the last attempt failed, if it did")


class DeliveryOut(BaseModel):
    """One notification of an alert's episode: its log key and how its message went."""

    receiver: str
    channel: str
    state: str
    repeat_bucket: str = Field(description="<episode>/<n>, <episode>/resolved or "
                                           "<episode>/acked")
    status: str = Field(description="pending, sent or failed")
    attempts: int
    queued_at: Timestamp
    sent_at: Timestamp | None
    last_reason: str | None
    last_detail: str | None


class NoticeDeliveryOut(BaseModel):
    """One message of a budget notice (the customer email, the support Slack line)."""

    channel: str
    receiver: str
    status: str = Field(description="pending, sent or failed")
    attempts: int
    sent_at: Timestamp | None
    last_reason: str | None
    last_detail: str | None


class TestEmailIn(BaseModel):
    to: Text | None = Field(default=None, max_length=320, description="default: ONCALL_EMAIL")
    requested_by: Text = Field(default="api", max_length=200)


class TestSlackIn(BaseModel):
    receiver: Text | None = Field(default=None, max_length=100,
                                  description="a Slack receiver of the routes file "
                                              "(default: the first)")
    requested_by: Text = Field(default="api", max_length=200)


class EmailTestResult(BaseModel):
    ok: Literal[True]
    channel: Literal["email"]
    detail: str = Field(description="what the SMTP server said")
    to: list[str]


class SlackTestResult(BaseModel):
    ok: Literal[True]
    channel: Literal["slack"]
    detail: str = Field(description="what Slack said")
    receiver: str


class DeliveryTestFailure(ErrorBody):
    """The error body (code delivery_failed), and how the attempt failed."""

    ok: Literal[False]
    channel: Literal["email", "slack"]
    reason: str = Field(description="timeout, rate_limited, server_error, rejected or "
                                    "connection")
    permanent: bool = Field(description="true: retrying the same message cannot help")
    retry_after: float | None = Field(description="seconds the receiver asked us to wait")


class EmailTestFailure(DeliveryTestFailure):
    to: list[str]


class SlackTestFailure(DeliveryTestFailure):
    receiver: str
