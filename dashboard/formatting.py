"""Numbers as people read them (hours to two decimals, money as currency from cents), and the
engine's and alerts API's billing answers as the tables support reads. Pure: no Streamlit, no I/O.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pandas as pd

CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}
_LINE_BREAKS = re.compile(r"[\r\n\t\x0b\x0c]+")
# stripe_circuit_breaker_state: 0 closed, 1 open, 2 half-open (docs/metrics.md).
BREAKER_STATES = {0: "closed", 1: "open", 2: "half-open"}


def plain(value: object) -> str:
    """Text a customer, a caller or a URL controls, for Streamlit markdown: a code span, the one
    markdown construct whose content is never read as markup. Escaping with backslashes is not
    enough: Streamlit still turns a bare URL or address in escaped text into a link. Line breaks
    become spaces, so a value cannot start a block of its own."""
    text = _LINE_BREAKS.sub(" ", str(value))
    if not text.strip():
        return ""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def format_hours(hours: float) -> str:
    return f"{hours:,.2f} h"


def format_money(cents: int | float, currency: str = "usd") -> str:
    """Cents as currency; a negative amount (a credit) reads '-$5.00'."""
    symbol = CURRENCY_SYMBOLS.get(currency.lower())
    sign = "-" if cents < 0 else ""
    amount = f"{abs(cents) / 100:,.2f}"
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency.upper()}"


def format_percent(share: float, digits: int = 3) -> str:
    """`share` is a fraction (0.999 -> '99.900 %')."""
    return f"{share * 100:.{digits}f} %"


def format_minutes(minutes: float) -> str:
    return f"{minutes:,.1f} min"


def format_duration(seconds: float) -> str:
    """A wait as people say it: '45 s', '12.5 min', '3.2 h'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_time(iso: str | None) -> str:
    """'2026-11-23T13:49:05.123+00:00' -> '2026-11-23 13:49 UTC'; '' when absent."""
    if not iso:
        return ""
    return f"{iso[:16].replace('T', ' ')} UTC"


def breaker_state_words(value: float | None) -> str:
    if value is None:
        return "unknown"
    return BREAKER_STATES.get(int(value), f"unknown ({value:g})")


# -- tables for the customer card -----------------------------------------------------------------

def invoice_lines_frame(lines: list[dict[str, Any]], currency: str) -> pd.DataFrame:
    rows = [{
        "Line": line["description"],
        "Quantity": f"{line['quantity']:g} {line['unit']}",
        "Unit price": format_money(line["unit_amount_cents"], currency),
        "Amount": format_money(line["amount_cents"], currency),
    } for line in lines]
    return pd.DataFrame(rows, columns=["Line", "Quantity", "Unit price", "Amount"])


def invoices_frame(invoices: list[dict[str, Any]]) -> pd.DataFrame:
    """Our invoices, each beside what Stripe billed for it (number, status, amount paid and the
    customer's invoice page, once one of Stripe's invoice events named it)."""
    rows = []
    for i in invoices:
        stripe = i.get("stripe_invoice") or {}
        paid = stripe.get("amount_paid_cents")
        rows.append({
            "Period": i["period"]["key"],
            "Status": i["status"],
            "Subtotal": format_money(i["subtotal_cents"], i["currency"]),
            "Credits": format_money(-i["credits_applied_cents"], i["currency"]),
            "Total": format_money(i["total_cents"], i["currency"]),
            "Closed": format_time(i.get("closed_at")),
            "Stripe invoice": stripe.get("number") or i.get("stripe_invoice_id") or "",
            "Stripe status": stripe.get("status") or "",
            "Paid in Stripe": "" if paid is None else format_money(
                paid, stripe.get("currency") or i["currency"]),
            "Stripe page": stripe.get("hosted_invoice_url") or None,
        })
    return pd.DataFrame(rows, columns=INVOICE_COLUMNS)


INVOICE_COLUMNS = ["Period", "Status", "Subtotal", "Credits", "Total", "Closed",
                   "Stripe invoice", "Stripe status", "Paid in Stripe", "Stripe page"]


def stripe_invoices_frame(invoices: list[dict[str, Any]]) -> pd.DataFrame:
    """Stripe's invoices for the org as its events described them, newest first."""
    rows = [{
        "Number": i.get("number") or i["id"],
        "Status": i.get("status") or "",
        "Period": i.get("period") or "",
        "Due": "" if i.get("amount_due_cents") is None else format_money(
            i["amount_due_cents"], i.get("currency") or "usd"),
        "Paid": "" if i.get("amount_paid_cents") is None else format_money(
            i["amount_paid_cents"], i.get("currency") or "usd"),
        "Updated": format_time(i.get("updated_by_event_at")),
        "Stripe page": i.get("hosted_invoice_url") or None,
    } for i in invoices]
    return pd.DataFrame(rows, columns=["Number", "Status", "Period", "Due", "Paid", "Updated",
                                       "Stripe page"])


def _failure(payment: dict[str, Any]) -> str:
    if payment["outcome"] != "failed":
        return ""
    reason = (payment.get("failure_reason") or "other").replace("_", " ")
    message = payment.get("failure_message")
    return f"{reason}: {message}" if message else reason


def payments_frame(payments: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{
        "Date": format_time(p["attempted_at"]),
        "Amount": format_money(p["amount_cents"], p["currency"]),
        "Outcome": p["outcome"],
        "Method": p["method"].replace("_", " "),
        "Attempt": p["attempt_number"],
        "Failure reason": _failure(p),
        "Refunded": format_money(p["refunded_cents"], p["currency"]) if p["refunded_cents"]
        else "",
        "Stripe invoice": p.get("invoice_id") or "",
    } for p in payments]
    return pd.DataFrame(rows, columns=["Date", "Amount", "Outcome", "Method", "Attempt",
                                       "Failure reason", "Refunded", "Stripe invoice"])


def refunds_frame(refunds: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{
        "Date": format_time(r["refunded_at"]),
        "Amount": format_money(r["amount_cents"], r["currency"]),
        "Reason": (r.get("reason") or "").replace("_", " "),
        "Charge": r.get("charge_id") or "",
    } for r in refunds]
    return pd.DataFrame(rows, columns=["Date", "Amount", "Reason", "Charge"])


def credits_frame(credits: list[dict[str, Any]], currency: str) -> pd.DataFrame:
    rows = [{
        "Granted": format_time(c["granted_at"]),
        "Amount": format_money(c["amount_cents"], currency),
        "Remaining": format_money(c["remaining_cents"], currency),
        "Reason": c["reason"],
        "Granted by": c.get("granted_by") or "",
        "Applied to": ", ".join(f"{a['period']} ({format_money(a['amount_cents'], currency)})"
                                for a in c.get("applications", [])),
        "In Stripe": stripe_credit_state(c),
    } for c in credits]
    return pd.DataFrame(rows, columns=["Granted", "Amount", "Remaining", "Reason", "Granted by",
                                       "Applied to", "In Stripe"])


def stripe_credit_state(credit: dict[str, Any]) -> str:
    """Where the credit stands in Stripe: its balance transaction, or why it is not there."""
    status = credit.get("stripe_status") or ""
    if status == "sent":
        return f"applied ({credit.get('stripe_balance_transaction_id') or '?'})"
    if status == "failed":
        return f"refused: {credit.get('stripe_last_error') or '?'}"
    if status == "pending" and credit.get("stripe_last_error"):
        return f"retrying: {credit['stripe_last_error']}"
    if status == "pending":
        return "waiting (sent once the org has a Stripe customer)"
    return {"legacy": "not sent (granted before credits went to Stripe)"}.get(status, status)


def _deliveries(notice: dict[str, Any]) -> str:
    parts = []
    for d in notice.get("deliveries", []):
        when = f" {format_time(d['sent_at'])}" if d.get("sent_at") else ""
        why = f" ({d['last_reason']})" if d.get("last_reason") and d["status"] != "sent" else ""
        parts.append(f"{d['channel']} via {d['receiver']}: {d['status']}{when}{why}")
    return "; ".join(parts) or "no message queued"


def budget_alerts_frame(notices: list[dict[str, Any]]) -> pd.DataFrame:
    """The alerts API's /debug/alerts/{org_id} `budget_alerts`, one row per threshold."""
    rows = [{
        "Period": n["period"],
        "Threshold": f"{n['threshold']} %",
        "Reached": format_time(n.get("reached_at")),
        "Usage then": f"{format_hours(n['used_hours'])} of {format_hours(n['included_hours'])}",
        "Sent to": n.get("email") or "",
        "Delivery": _deliveries(n),
    } for n in notices]
    return pd.DataFrame(rows, columns=["Period", "Threshold", "Reached", "Usage then", "Sent to",
                                       "Delivery"])


# -- alerts page ----------------------------------------------------------------------------------

def parse_time(iso: str | None) -> datetime | None:
    """An ISO time from the alerts API (microseconds) or Prometheus (nanoseconds, 'Z') as an
    aware UTC datetime; None when absent or unreadable."""
    if not iso:
        return None
    text = iso.strip().replace("Z", "+00:00")
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    fraction = (fraction or "")[:7]  # at most microseconds: Python reads no more
    try:
        moment = datetime.fromisoformat(f"{whole}{fraction}{zone or '+00:00'}")
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_age(seconds: float) -> str:
    """How long something has lasted: '45 s', '12 min', '3 h 5 min', '2 d 4 h'."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def format_since(iso: str | None, now: datetime) -> str:
    """'2026-11-23 14:25:03 UTC, for 12 min'; 'unknown' when the time is absent."""
    moment = parse_time(iso)
    if moment is None:
        return "unknown"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC, for {format_age((now - moment).total_seconds())}"


def alert_sort_key(alert: dict[str, Any], severities: tuple[str, ...],
                   now: datetime) -> tuple[int, float]:
    """Most severe first, then the longest-running first (an alert of either source)."""
    labels = alert.get("labels") or {}
    severity = alert.get("severity") or labels.get("severity")
    rank = severities.index(severity) if severity in severities else len(severities)
    since = parse_time(alert.get("activeAt"))
    age = (now - since).total_seconds() if since is not None else -1.0
    return rank, -age


def delivery_lines(alert: dict[str, Any]) -> list[str]:
    """One line per channel from the alerts API's `deliveries` (oldest first, so the last of a
    channel is its latest message): 'slack via oncall-slack: sent 2026-11-23 14:25 UTC
    (1 attempt)' or 'email via oncall-email: failed, rejected: 550 ... (3 attempts)'."""
    latest: dict[str, dict[str, Any]] = {}
    for d in alert.get("deliveries") or []:
        latest[str(d.get("channel"))] = d
    if not latest:  # older answers carry only the per-channel summary
        latest = {str(k): v for k, v in (alert.get("delivery") or {}).items()}
    lines = []
    for channel, d in sorted(latest.items()):
        status = str(d.get("status", "?"))
        attempts = d.get("attempts")
        tries = (f" ({attempts} attempt{'s' if attempts != 1 else ''})"
                 if isinstance(attempts, int) else "")
        when = f" {format_time(d.get('sent_at'))}" if status == "sent" and d.get("sent_at") else ""
        why = ""
        if status != "sent" and (d.get("last_reason") or d.get("last_detail")):
            why = ", " + ": ".join(str(p) for p in (d.get("last_reason"), d.get("last_detail"))
                                   if p)
        what = f" ({d['state']} message)" if d.get("state") in ("resolved", "acked") else ""
        lines.append(f"{channel} via {d.get('receiver', '?')}: {status}{when}{why}{tries}{what}")
    return lines


def matcher_text(matcher: dict[str, Any]) -> str:
    return f"{matcher.get('name', '')}{matcher.get('op', '=')}\"{matcher.get('value', '')}\""


def silences_frame(silences: list[dict[str, Any]], now: datetime) -> pd.DataFrame:
    """The alerts API's silences, one row each."""
    rows = []
    for s in silences:
        expires = parse_time(s.get("expires_at"))
        left = (f" (in {format_age((expires - now).total_seconds())})"
                if expires is not None and expires > now else "")
        rows.append({
            "Silence": s["id"],
            "Matchers": ", ".join(matcher_text(m) for m in s.get("matchers", [])),
            "State": s.get("state", ""),
            "Expires": format_time(s.get("expires_at")) + left,
            "Comment": s.get("comment", ""),
            "Created by": s.get("created_by", ""),
            "Created": format_time(s.get("created_at")),
        })
    return pd.DataFrame(rows, columns=["Silence", "Matchers", "State", "Expires", "Comment",
                                       "Created by", "Created"])


# -- on call ----------------------------------------------------------------------------------


def rotations_frame(rotations: list[dict[str, Any]], now: datetime) -> pd.DataFrame:
    """Each rotation's holder now (until when) and next (from when)."""
    rows = []
    for r in rotations:
        current, upcoming = r.get("now") or {}, r.get("next") or {}
        ends = parse_time(current.get("ends"))
        left = f" (in {format_age((ends - now).total_seconds())})" if ends and ends > now else ""
        rows.append({
            "Rotation": r.get("name", ""),
            "On call now": current.get("person", "") + (" (override)"
                                                         if current.get("override") else ""),
            "Until": format_time(current.get("ends")) + left,
            "Next": upcoming.get("person", ""),
            "Members": ", ".join(r.get("members", [])),
        })
    return pd.DataFrame(rows, columns=["Rotation", "On call now", "Until", "Next", "Members"])


def severities_frame(severities: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{"Severity": s.get("severity", ""),
             "Respond within": format_age(float(s.get("response_seconds") or 0)),
             "Repeat every": (format_age(float(s["repeat_seconds"]))
                              if s.get("repeat_seconds") else "never"),
             "Escalates to": " → ".join(s.get("steps", []))} for s in severities]
    return pd.DataFrame(rows, columns=["Severity", "Respond within", "Repeat every",
                                       "Escalates to"])


def escalation_words(alert: dict[str, Any], now: datetime) -> str:
    """Who was told, and what happens next: 'told chloe (primary) 09:14 UTC; escalates to ana
    (secondary) in 6 min unless acknowledged'."""
    escalation = alert.get("escalation")
    if not escalation:
        return "not escalated by the on-call policy (its severity has no steps, or it is excluded)"
    parts = [f"told {s['person']} ({s['rotation']}) {format_time(s['at'])[11:]}"
             for s in escalation.get("steps", [])]
    upcoming = escalation.get("next")
    if alert.get("acked"):
        parts.append(f"acknowledged by {alert.get('acked_by') or '?'}: escalation stopped")
    elif upcoming:
        due = parse_time(upcoming.get("at"))
        wait = (due - now).total_seconds() if due is not None else 0
        when = f"in {format_age(wait)}" if wait > 0 else "now"
        parts.append(f"escalates to {upcoming['person']} ({upcoming['rotation']}) {when} "
                     "unless acknowledged")
    elif alert.get("state") == "firing":
        parts.append("last step reached")
    return "; ".join(parts) or "nobody told yet"


def _age_or_dash(seconds: float | None) -> str:
    return format_age(seconds) if seconds is not None else "-"


def history_frame(episodes: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{"Fired (UTC)": format_time(e["fired_at"]), "Severity": e["severity"],
             "Alert": e["alertname"], "Summary": e.get("summary", ""),
             "Acknowledged by": e.get("acked_by") or "",
             "To acknowledge": _age_or_dash(e.get("seconds_to_ack")),
             "To resolve": (_age_or_dash(e.get("seconds_to_resolve"))
                            if e.get("resolved_at") else "still firing")} for e in episodes]
    return pd.DataFrame(rows, columns=["Fired (UTC)", "Severity", "Alert", "Summary",
                                       "Acknowledged by", "To acknowledge", "To resolve"])


def history_stats_frame(stats: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{"Alert": s["alertname"], "Severity": s["severity"], "Fired": s["fired"],
             "Acknowledged": s["acknowledged"],
             "Median to acknowledge": _age_or_dash(s.get("median_seconds_to_ack")),
             "Median to resolve": _age_or_dash(s.get("median_seconds_to_resolve"))}
            for s in stats]
    return pd.DataFrame(rows, columns=["Alert", "Severity", "Fired", "Acknowledged",
                                       "Median to acknowledge", "Median to resolve"])


# What each reconciliation mismatch kind says (runbooks/reconciliation.md#mismatch-kinds).
MISMATCH_KINDS = {
    "missing_at_stripe": "we invoiced an amount, Stripe has no invoice for the customer",
    "missing_here": "Stripe invoiced a customer we have no invoice for",
    "amount_differs": "our total after credits is not what Stripe asks after the balance",
    "usage_not_reported": "our invoice bills more minutes than Stripe accepted from us",
    "usage_over_reported": "Stripe accepted more minutes from us than we billed",
    "usage_not_aggregated": "Stripe's meter holds fewer minutes than it accepted from us",
    "usage_over_aggregated": "Stripe's meter holds more minutes than we sent",
}


def reconciliation_runs_frame(runs: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{
        "Run": r["id"],
        "Period": r["period"],
        "Ran (UTC)": format_time(r["ran_at"]),
        "Trigger": r["trigger"],
        "Against": r["provider"],
        "Mismatches": r["mismatch_count"],
        "By kind": ", ".join(f"{k} {n}" for k, n in sorted(r.get("by_kind", {}).items())),
    } for r in runs]
    return pd.DataFrame(rows, columns=["Run", "Period", "Ran (UTC)", "Trigger", "Against",
                                       "Mismatches", "By kind"])


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def reconciliation_mismatches_frame(mismatches: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per mismatch, ordered by org: the three usage numbers and both amounts."""
    rows = [{
        "Org": m.get("org_id") or "(no org)",
        "Stripe customer": m.get("stripe_customer_id") or "",
        "Kind": m["kind"],
        "Billed min": _count(m.get("billed_minutes")),
        "Sent min": _count(m.get("sent_minutes")),
        "Stripe min": _count(m.get("stripe_minutes")),
        "Our amount": ("" if m.get("our_cents") is None else format_money(m["our_cents"])),
        "Stripe amount": ("" if m.get("stripe_cents") is None
                          else format_money(m["stripe_cents"])),
        "Stripe invoices": " ".join(m.get("stripe_invoice_ids") or []),
        "Detail": m.get("detail", ""),
    } for m in sorted(mismatches, key=lambda m: (m.get("org_id") or "", m["kind"]))]
    return pd.DataFrame(rows, columns=["Org", "Stripe customer", "Kind", "Billed min",
                                       "Sent min", "Stripe min", "Our amount", "Stripe amount",
                                       "Stripe invoices", "Detail"])
