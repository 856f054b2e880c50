"""The Message a budget crossing becomes: the customer email and the support Slack line (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from alerts.budget.rules import BudgetCrossing
from alerts.delivery.links import LinkSettings
from alerts.delivery.message import Message
from alerts.rules.model import fingerprint
from billing_core.plans import Plan

BUDGET_ALERTNAME = "BudgetThresholdReached"


def budget_labels(crossing: BudgetCrossing, plan: Plan | None) -> dict[str, str]:
    labels = {
        "alertname": BUDGET_ALERTNAME,
        "org_id": crossing.org_id,
        "org_name": crossing.org_name,
        "billing_email": crossing.email,
        "plan": crossing.plan,
        "period": crossing.period,
        "threshold": str(crossing.threshold),
    }
    if plan is not None:
        labels["plan_name"] = plan.name
        labels["overage_allowed"] = "true" if plan.overage_allowed else "false"
    return labels


def budget_fingerprint(org_id: str, period: str, threshold: int) -> str:
    return fingerprint({"alertname": BUDGET_ALERTNAME, "org_id": org_id, "period": period,
                        "threshold": str(threshold)})


def budget_message(crossing: BudgetCrossing, *, plan: Plan | None, recipients: tuple[str, ...],
                   now: datetime, links: LinkSettings) -> Message:
    labels = budget_labels(crossing, plan)
    values: dict[str, float] = {"used_hours": crossing.used_hours,
                                "included_hours": crossing.included_hours}
    if plan is not None and plan.overage_allowed:
        values["overage_cents_per_hour"] = float(plan.overage_cents_per_hour)
    summary = (f"{crossing.org_name} used {crossing.threshold} % of the included hours for "
               f"{crossing.period}")
    return Message(
        kind="budget",
        fingerprint=budget_fingerprint(crossing.org_id, crossing.period, crossing.threshold),
        alertname=BUDGET_ALERTNAME,
        state="firing",
        severity="P3",
        summary=summary,
        description=(f"{crossing.used_hours:g} h of {crossing.included_hours:g} h included "
                     f"hours used ({crossing.percent_used:g} %)."),
        starts_at=now,
        value=crossing.percent_used,
        labels=labels,
        values=values,
        recipients=recipients,
        console_url=f"{links.console_url}/customers?{_query({'org_id': crossing.org_id})}",
    )


def _query(params: Mapping[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(params)
