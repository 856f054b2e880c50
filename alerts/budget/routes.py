"""An org's budget alert history over HTTP: GET /debug/alerts/{org_id} (operator)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from alerts.api.contract import identifier
from alerts.api.deps import BudgetNotices
from alerts.budget.schemas import BudgetHistory
from billing_core.http import error_responses

router = APIRouter(tags=["support"])
OrgId = Annotated[str, identifier("The org's id (an org never alerted has an empty history)")]


@router.get("/debug/alerts/{org_id}", response_model=BudgetHistory,
            responses=error_responses(422, 503))
def budget_history(org_id: OrgId, notices: BudgetNotices) -> BudgetHistory:
    """An org's budget alerts: each threshold reached per period, and how each of its
    messages (customer email, support Slack line) was delivered."""
    return notices.history(org_id)
