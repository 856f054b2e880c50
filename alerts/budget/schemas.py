"""What the API answers about an org's budget alerts (the support view)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from alerts.api.contract import Timestamp
from alerts.delivery.schemas import NoticeDeliveryOut


class BudgetAlertOut(BaseModel):
    """One threshold an org reached in one billing period."""

    period: str = Field(description="2026-11")
    threshold: int = Field(description="50, 90 or 100 (% of the included hours)")
    email: str = Field(description="the billing email the customer message went to")
    plan: str
    used_hours: float
    included_hours: float
    percent_used: float
    reached_at: Timestamp
    told_with: int = Field(description="the threshold whose message told the customer: this "
                                       "one, or a higher one reached in the same round (one "
                                       "message names the highest)")
    deliveries: list[NoticeDeliveryOut] = Field(description="the messages of `told_with`")


class BudgetHistory(BaseModel):
    org_id: str
    budget_alerts: list[BudgetAlertOut] = Field(description="newest period first")
