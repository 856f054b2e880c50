"""An org's budget alerts as support reads them: each threshold reached per period, and how
each of its messages (customer email, support Slack line) was delivered."""

from __future__ import annotations

from alerts.budget.schemas import BudgetAlertOut, BudgetHistory
from alerts.budget.store import BudgetNotice, BudgetNoticeStore
from alerts.delivery.schemas import NoticeDeliveryOut
from billing_core.quota import hours


def notice_view(notice: BudgetNotice) -> BudgetAlertOut:
    used, included = notice.used_minutes, notice.included_minutes
    return BudgetAlertOut(
        period=notice.period, threshold=notice.threshold, email=notice.email, plan=notice.plan,
        used_hours=hours(used), included_hours=hours(included),
        percent_used=round(used * 100 / included, 2) if included else 100.0,
        reached_at=notice.reached_at, told_with=notice.told_with or notice.threshold,
        deliveries=[NoticeDeliveryOut(
            channel=d.channel, receiver=d.receiver, status=d.status, attempts=d.attempts,
            sent_at=d.sent_at, last_reason=d.last_reason, last_detail=d.last_detail)
            for d in notice.deliveries])


class BudgetHistoryService:
    def __init__(self, *, store: BudgetNoticeStore) -> None:
        self.store = store

    def history(self, org_id: str) -> BudgetHistory:
        """Every notice of the org, newest period first (none for an org never alerted)."""
        return BudgetHistory(org_id=org_id, budget_alerts=[
            notice_view(n) for n in self.store.budget_history(org_id)])
