"""Response pieces both processes' APIs use."""

from __future__ import annotations

from pydantic import Field

from billing_core.http import ResponseModel, Timestamp
from billing_core.periods import BillingPeriod


class PeriodOut(ResponseModel):
    key: str = Field(description="The UTC calendar month, YYYY-MM")
    start: Timestamp
    end: Timestamp = Field(description="Exclusive: the next period's start")


def period_out(period: BillingPeriod) -> PeriodOut:
    return PeriodOut(key=period.key, start=period.start, end=period.end)
