"""What email and Slack both say about an alert: titles, values, times, labels, budget facts.

Pure functions of a Message, so the two channels never disagree about the words.
"""

from __future__ import annotations

import math
import re
from calendar import monthrange
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from alerts.delivery.message import Message

# Shown elsewhere in the message, or not for the reader's eyes.
HIDDEN_LABELS = frozenset({"alertname", "severity", "__name__", "billing_email"})
_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def format_value(value: float | None) -> str:
    """Like Prometheus' humanize: 4 significant digits, k/M/G/T above a thousand."""
    if value is None:
        return "n/a"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    for scale, suffix in _SI:
        if abs(value) >= scale:
            return f"{value / scale:.4g}{suffix}"
    return f"{value:.4g}"


def format_time(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(duration: timedelta) -> str:
    seconds = max(0, int(duration.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def shown_labels(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """The labels worth showing a reader, sorted by name."""
    return sorted((k, v) for k, v in labels.items() if k not in HIDDEN_LABELS and v != "")


def group_members(message: Message) -> list[str]:
    """One line per alert of a group, by the labels that tell them apart (empty when alone)."""
    if len(message.group) < 2:
        return []
    names = sorted({name for member in message.group for name in member} - HIDDEN_LABELS)
    varying = [n for n in names if len({m.get(n, "") for m in message.group}) > 1] or names
    return [", ".join(f"{n}={m.get(n, '')}" for n in varying) for m in message.group]


def state_word(message: Message) -> str:
    return "RESOLVED" if message.state == "resolved" else "FIRING"


def rule_title(message: Message) -> str:
    """`[P1] FIRING BillingAvailabilityFastBurn: <summary>` / `[RESOLVED] ...`."""
    count = f" ({len(message.group)} alerts)" if len(message.group) > 1 else ""
    summary = one_line(message.summary)
    if message.state == "resolved":
        return f"[RESOLVED] {message.alertname}{count}: {summary}"
    return f"[{message.severity}] FIRING {message.alertname}{count}: {summary}"


def active_for(message: Message, now: datetime | None = None) -> str:
    """How long the alert fired (resolved) or has been firing so far."""
    end = message.ends_at or now
    if end is None:
        return ""
    start = message.starts_at
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return format_duration(end - start)


# ---------------------------------------------------------------------------- budget


@dataclass(frozen=True)
class BudgetFacts:
    """What a budget message tells: read from the Message's labels and values.

    Required: labels org_id, threshold ("50", "90", "100"), period ("2026-11"); values
    used_hours, included_hours. Optional: labels org_name, plan, plan_name, overage_allowed
    ("true"/"false"); values overage_cents_per_hour.
    """

    org_id: str
    org_name: str
    threshold: int
    period: str
    period_label: str  # "November 2026"
    period_end: str  # "30 November 2026"
    used_hours: float
    included_hours: float
    percent_used: float
    plan: str
    plan_name: str
    overage_allowed: bool | None  # None: not known
    overage_price: str  # "$0.25", "" when not known or not allowed

    @property
    def used_text(self) -> str:
        return _hours(self.used_hours)

    @property
    def included_text(self) -> str:
        return _hours(self.included_hours)

    @property
    def remaining_text(self) -> str:
        return _hours(max(0.0, self.included_hours - self.used_hours))


def _hours(value: float) -> str:
    text = f"{value:,.1f}"
    return text[:-2] if text.endswith(".0") else text


def _period_words(period: str) -> tuple[str, str]:
    match = re.fullmatch(r"(\d{4})-(\d{2})", period)
    if not match:
        return period, ""
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12:
        return period, ""
    first = datetime(year, month, 1)
    last_day = monthrange(year, month)[1]
    return first.strftime("%B %Y"), f"{last_day} {first.strftime('%B %Y')}"


def budget_facts(message: Message) -> BudgetFacts:
    """The budget numbers of a message; KeyError or ValueError when a required one is missing."""
    labels, values = message.labels, message.values
    used = float(values["used_hours"])
    included = float(values["included_hours"])
    period = labels["period"]
    label, end = _period_words(period)
    allowed_text = labels.get("overage_allowed", "").lower()
    allowed = {"true": True, "false": False}.get(allowed_text)
    cents = values.get("overage_cents_per_hour")
    price = f"${cents / 100:,.2f}" if cents is not None and allowed is not False else ""
    return BudgetFacts(
        org_id=labels["org_id"],
        org_name=labels.get("org_name", "") or labels["org_id"],
        threshold=int(labels["threshold"]),
        period=period,
        period_label=label,
        period_end=end,
        used_hours=used,
        included_hours=included,
        percent_used=round(used * 100 / included, 1) if included else 0.0,
        plan=labels.get("plan", ""),
        plan_name=labels.get("plan_name", "") or labels.get("plan", ""),
        overage_allowed=allowed,
        overage_price=price,
    )


def budget_title(facts: BudgetFacts) -> str:
    """The customer email's subject."""
    if facts.threshold >= 100:
        return f"You have used all the included hours of your plan for {facts.period_label}"
    return f"You have used {facts.threshold} % of your included hours for {facts.period_label}"


def budget_support_line(facts: BudgetFacts) -> str:
    """The one line support reads in Slack."""
    plan = f", plan {facts.plan}" if facts.plan else ""
    return (
        f"Budget: {facts.org_name} ({facts.org_id}) crossed {facts.threshold} % of included "
        f"hours for {facts.period}: {facts.used_text} h of {facts.included_text} h used "
        f"({facts.percent_used:g} %){plan}"
    )
