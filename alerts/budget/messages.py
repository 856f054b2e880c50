"""The Message a budget crossing becomes: the customer email and the support Slack line (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


DIGEST_ALERTNAME = "BudgetThresholdsDigest"


def budget_digest_message(*, counts: Mapping[int, int], periods: Sequence[str],
                          top: Sequence[BudgetCrossing], now: datetime,
                          links: LinkSettings) -> Message:
    """Support's one line for a round that told many orgs: how many per highest threshold,
    and the orgs furthest over their included hours."""
    total = sum(counts.values())
    by_threshold = ", ".join(f"{counts[t]:,} at {t} %" for t in sorted(counts, reverse=True))
    period_text = ", ".join(periods)
    lines = [f"{c.org_name} ({c.org_id}): {c.percent_used:g} % "
             f"({c.used_hours:g} h of {c.included_hours:g} h), {c.period}" for c in top]
    return Message(
        kind="budget",
        fingerprint=fingerprint({"alertname": DIGEST_ALERTNAME, "period": period_text,
                                 "at": now.isoformat()}),
        alertname=DIGEST_ALERTNAME,
        state="firing",
        severity="P3",
        summary=(f"Budget: {total:,} orgs reached usage thresholds for {period_text} "
                 f"({by_threshold}); each was emailed once, naming its highest"),
        description="\n".join(lines),
        starts_at=now,
        labels={"alertname": DIGEST_ALERTNAME, "digest": "true", "period": period_text},
        values={f"orgs_{t}": float(n) for t, n in counts.items()},
        console_url=f"{links.console_url}/usage",
    )


def _query(params: Mapping[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(params)
