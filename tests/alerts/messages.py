"""Messages as the outbox hands them to channels, built from the shipped rule files."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from alerts.delivery.links import LinkSettings, console_alert_url, rewrite_annotations
from alerts.delivery.message import Message

ROOT = Path(__file__).resolve().parents[2]
STARTS_AT = datetime(2026, 11, 3, 14, 5, tzinfo=UTC)
LINKS = LinkSettings(
    runbook_base_url="https://console.example.com/runbooks",
    grafana_url="https://grafana.example.com",
    console_url="https://console.example.com",
)


def shipped_rules() -> dict[str, dict[str, Any]]:
    """Every alerting rule in prometheus/rules/*.yml by name."""
    rules = {}
    for path in sorted((ROOT / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rules[rule["alert"]] = rule
    return rules


def rule_message(
    alertname: str = "BillingAvailabilityFastBurn",
    *,
    value: float = 20.04,
    links: LinkSettings = LINKS,
    **overrides: Any,
) -> Message:
    """A firing message for a shipped rule, its annotations rendered roughly as Prometheus would
    and its links rewritten for `links`."""
    rule = shipped_rules()[alertname]
    labels = {"alertname": alertname, **rule["labels"], "instance": "engine-1:8006"}
    annotations = rewrite_annotations(rule["annotations"], links=links)
    description = " ".join(annotations["description"].split())
    for template in (
        "{{ $value | humanize }}",
        "{{ $value | humanizePercentage }}",
        "{{ $value }}",
    ):
        description = description.replace(template, f"{value:.4g}")
    description = description.replace("{{ $labels.instance }}", labels["instance"])
    fingerprint = f"fp-{alertname.lower()}"
    message = Message(
        kind="rule",
        fingerprint=fingerprint,
        alertname=alertname,
        state="firing",
        severity=rule["labels"]["severity"],
        summary=annotations["summary"],
        description=description,
        starts_at=STARTS_AT,
        value=value,
        labels=labels,
        annotations=annotations,
        recipients=("oncall@example.com",),
        runbook_url=annotations["runbook_url"],
        dashboard_url=annotations["dashboard_url"],
        console_url=console_alert_url(fingerprint, console_url=links.console_url),
    )
    return replace(message, **overrides)


def budget_message(
    threshold: int = 90,
    *,
    plan: str = "base_usage",
    used_hours: float = 91.5,
    included_hours: float = 100.0,
    **overrides: Any,
) -> Message:
    """A budget alert for org_acme on a plan of billing_core/plans.yaml."""
    plans = yaml.safe_load((ROOT / "billing_core" / "plans.yaml").read_text())["plans"]
    chosen = plans[plan]
    labels = {
        "org_id": "org_acme",
        "org_name": "Acme Robotics",
        "billing_email": "billing@acme.example",
        "threshold": str(threshold),
        "period": "2026-11",
        "plan": plan,
        "plan_name": chosen["name"],
        "overage_allowed": "true" if chosen["overage_allowed"] else "false",
    }
    values = {
        "used_hours": used_hours,
        "included_hours": included_hours,
        "overage_cents_per_hour": float(chosen["overage_cents_per_hour"]),
    }
    message = Message(
        kind="budget",
        fingerprint=f"budget-org_acme-2026-11-{threshold}",
        alertname="BudgetThresholdReached",
        state="firing",
        severity="P3",
        summary=f"Acme Robotics used {threshold} % of its included hours",
        description="",
        starts_at=STARTS_AT,
        value=used_hours,
        labels=labels,
        values=values,
        recipients=("billing@acme.example",),
    )
    return replace(message, **overrides)
