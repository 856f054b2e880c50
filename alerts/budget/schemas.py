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
    deliveries: list[NoticeDeliveryOut]


class BudgetHistory(BaseModel):
    org_id: str
    budget_alerts: list[BudgetAlertOut] = Field(description="newest period first")
