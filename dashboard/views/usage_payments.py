"""Usage and payments: who uses what, is usage reaching Stripe, and are payments coming in."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from billing_core.access import Role
from dashboard import charts, data
from dashboard.formatting import (
    breaker_state_words,
    format_duration,
    format_hours,
    format_money,
    format_percent,
)
from dashboard.signin import require

RANGES = {"1 hour": (60, "1m"), "6 hours": (360, "5m"), "24 hours": (1440, "15m"),
          "7 days": (10080, "1h")}
# Usage trend: label -> (span in minutes, PromQL bucket, bucket name); one bar per bucket.
TRENDS = {"per hour, last 48 hours": (2880, "1h", "hour"),
          "per day, last 30 days": (43200, "1d", "day")}
# The expressions of PaymentSuccessRateLow and RefundRateHigh (prometheus/rules/symptoms.yml),
# without their comparisons, so the panels show what the alerts compare.
SUCCESS_RATE = ('(sum(rate(payments_total{outcome="succeeded"}[15m])) or vector(0))'
                " / sum(rate(payments_total[15m]))")
ATTEMPTS_15M = "sum(increase(payments_total[15m]))"
REFUND_RATE = 'sum(rate(refunds_total[1h])) / sum(rate(payments_total{outcome="succeeded"}[1h]))'
SUCCEEDED_1H = 'sum(increase(payments_total{outcome="succeeded"}[1h]))'
REVENUE_1H = 'sum(increase(payment_amount_cents_total{outcome="succeeded"}[1h]))'
# Each ingested heartbeat opened one billable instance-minute.
USAGE_HOURS = 'sum(increase(heartbeats_ingested_total{{job="billing-engine"}}[{bucket}])) / 60'


def top_orgs_frame(orgs: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{
        "Org": f"{o['name']} ({o['org_id']})",
        "Plan": o["plan"],
        "Used": format_hours(o["used_hours"]),
        "Included": format_hours(o["included_hours"]),
        "Overage": format_hours(o["overage_hours"]),
        "Used %": f"{o['percent_used']:.1f} %",
        "Estimated total": format_money(o["estimated_total_cents"]),
    } for o in orgs])


def _against(share: float, threshold: float) -> str:
    """The distance to an alert line in percentage points, signed so st.metric colours it."""
    return f"{(share - threshold) * 100:+.2f} pts vs the {threshold * 100:g} % alert line"


def last(minutes: int) -> charts.Span:
    now = datetime.now(UTC)
    return now - timedelta(minutes=minutes), now


def series(query: str, *, minutes: int, step: str, name: str) -> pd.DataFrame | None:
    """Finite points of a one-series query as columns time and `name`; None when Prometheus is
    down (its banner is shown once, by the page)."""
    result = data.prom_range(query, minutes=minutes, step=step)
    if isinstance(result, data.BackendDown):
        return None
    frame = data.finite(data.matrix_frame(result, labels=()))
    return frame.rename(columns={"value": name})[["time", name]]


def scalar(query: str) -> float | None:
    """The value, or None for no series, NaN (0/0), Inf (x/0) or Prometheus down."""
    value = data.prom_scalar(query)
    if isinstance(value, data.BackendDown) or value is None or not math.isfinite(value):
        return None
    return value


person = require(Role.viewer)
st.title("Usage and payments")
range_label = st.selectbox("Time range of the charts", list(RANGES), index=1)
minutes, step = RANGES[range_label]


def top_orgs_section() -> None:
    if not person.may(Role.support):
        return  # names customers: support and above
    st.subheader("Top orgs by usage this period")
    top = data.engine("/v1/usage/top", limit=10)
    if isinstance(top, data.BackendDown):
        data.show_down(top)
    elif not top or not top.get("orgs"):
        st.info("No org has billed usage this period yet.")
    else:
        st.caption(f"Period {top['period']['key']}, from the engine's daily rollups.")
        st.dataframe(top_orgs_frame(top["orgs"]), hide_index=True)


def usage_section() -> None:
    over = data.prom_instant("billing_orgs_over_threshold")
    st.subheader("Orgs over their usage thresholds this period")
    frame = (data.vector_frame(over, labels=("threshold",))
             if not isinstance(over, data.BackendDown) else pd.DataFrame())
    if frame.empty:
        st.info("The engine has not exported billing_orgs_over_threshold yet.")
    else:
        cols = st.columns(len(frame))
        ordered = frame.sort_values("threshold", key=lambda s: s.astype(float))
        for col, row in zip(cols, ordered.itertuples(), strict=True):
            col.metric(f"At or over {row.threshold} % of included hours", f"{row.value:.0f} orgs")

    top_orgs_section()

    st.subheader("Usage trend")
    trend = st.radio("Buckets", list(TRENDS), horizontal=True, key="usage_trend")
    span, bucket, per = TRENDS[trend]
    hours = series(USAGE_HOURS.format(bucket=bucket), minutes=span, step=bucket, name="hours")
    if hours is None or hours.empty or hours["hours"].sum() == 0:
        st.info("No heartbeats ingested in this span, as far as Prometheus remembers.")
    else:
        st.plotly_chart(charts.usage_trend_chart(hours, per=per, span=last(span)))
    st.caption("Instance-hours opened by heartbeat ingest across all orgs, from the engine's "
               "heartbeats_ingested_total counter in Prometheus (as far back as it keeps data). "
               "Per-org numbers come from the engine's rollups: see top orgs above.")

    st.subheader("Heartbeat ingest")
    ingest = series('sum(rate(heartbeats_ingested_total{job="billing-engine"}[1m])) * 60',
                    minutes=60, step="30s", name="rate")
    if ingest is None or ingest.empty:
        st.info("No heartbeats ingested in the last hour.")
    else:
        frame = ingest.assign(endpoint="billable minutes opened")
        fig = charts.rate_by_endpoint_chart(frame, title="Billable instance-minutes opened")
        fig.update_layout(yaxis_title="instance-minutes per minute")
        st.plotly_chart(fig)


def meter_section() -> None:
    st.subheader("Usage meter (reporting usage to Stripe)")
    queue, oldest = scalar("max(usage_meter_queue)"), scalar("max(usage_meter_oldest_age_seconds)")
    failed, breaker = scalar("max(usage_meter_failed)"), scalar("max(stripe_circuit_breaker_state)")
    if queue is None and breaker is None:
        st.info("The engine exports no usage-meter gauges yet (no scrape of it in Prometheus).")
        return
    cols = st.columns(4)
    cols[0].metric("Records waiting", "no data" if queue is None else f"{queue:,.0f}")
    cols[1].metric("Oldest waiting", "no data" if oldest is None else format_duration(oldest))
    cols[2].metric("Refused by Stripe", "no data" if failed is None else f"{failed:,.0f}")
    cols[3].metric("Stripe circuit breaker", breaker_state_words(breaker))
    errors = data.prom_instant("sum by (reason) (increase(meter_errors_total[1h])) > 0")
    if not isinstance(errors, data.BackendDown):
        found = data.vector_frame(errors, labels=("reason",))
        st.caption("Submission errors, last hour: " + (", ".join(
            f"{r.reason.replace('_', ' ')} {r.value:.0f}" for r in found.itertuples())
            if not found.empty else "none") + ". Records refused for good wait for an admin "
            "requeue (POST /admin/meters/requeue-failed).")
    waiting = series("max(usage_meter_queue)", minutes=minutes, step=step, name="records")
    if waiting is not None and not waiting.empty:
        st.plotly_chart(charts.meter_queue_chart(waiting, span=last(minutes)))


def payments_section() -> None:
    st.subheader("Payments")
    success, attempts = scalar(SUCCESS_RATE), scalar(ATTEMPTS_15M)
    refund, succeeded = scalar(REFUND_RATE), scalar(SUCCEEDED_1H)
    revenue = scalar(REVENUE_1H)
    cols = st.columns(4)
    cols[0].metric(
        "Payment success rate, 15 min",
        "no attempts" if success is None else format_percent(success, 2),
        delta=None if success is None else _against(success, charts.PAYMENT_SUCCESS_THRESHOLD),
        help="PaymentSuccessRateLow fires below 95 % held for 5 minutes, with at least 20 "
        "attempts in the 15 minutes.")
    cols[1].metric("Payment attempts, 15 min", "none" if attempts is None else f"{attempts:,.0f}")
    cols[2].metric(
        "Refund rate, 1 h",
        "no payments" if refund is None else format_percent(refund, 2),
        delta=None if refund is None else _against(refund, charts.REFUND_RATE_THRESHOLD),
        delta_color="inverse",
        help="Refunds per successful payment. RefundRateHigh fires above 5 % held for 15 "
        "minutes, with at least 20 successful payments in the hour.")
    cols[3].metric("Revenue, last hour", "no data" if revenue is None else format_money(revenue))
    st.caption(f"Successful payments in the last hour: "
               f"{'none' if succeeded is None else f'{succeeded:,.0f}'}. Counted from Stripe's "
               "invoice and charge events as the engine handles them; Prometheus' increase() "
               "extrapolates, so counts over a window can be fractional.")

    left, right = st.columns(2)
    with left:
        rates = series(SUCCESS_RATE, minutes=minutes, step=step, name="share")
        if rates is None or rates.empty:
            st.info(f"No payment attempt in the last {range_label}: no success rate to draw.")
        else:
            st.plotly_chart(charts.payment_success_rate_chart(rates, span=last(minutes)))
    with right:
        refunds = series(REFUND_RATE, minutes=minutes, step=step, name="share")
        if refunds is None or refunds.empty:
            st.info(f"No successful payment in the last {range_label}: no refund rate to draw.")
        else:
            st.plotly_chart(charts.refund_rate_chart(refunds, span=last(minutes)))

    left, right = st.columns(2)
    with left:
        reasons = data.prom_instant(
            f"sum by (reason) (increase(payment_failures_total[{minutes}m]))")
        frame = (data.finite(data.vector_frame(reasons, labels=("reason",)))
                 if not isinstance(reasons, data.BackendDown) else pd.DataFrame())
        if frame.empty or frame["value"].sum() == 0:
            st.info(f"No failed payment in the last {range_label}.")
        else:
            st.plotly_chart(charts.failure_reasons_chart(
                frame.rename(columns={"value": "count"}), window=range_label))
    with right:
        hours = max(minutes, 1440)
        cents = series(REVENUE_1H, minutes=hours, step="1h", name="cents")
        if cents is None or cents.empty or cents["cents"].sum() == 0:
            st.info("No successful payment in the last 24 hours: no revenue to draw.")
        else:
            st.plotly_chart(charts.revenue_chart(cents, span=last(hours)))
    st.caption("Money attempted in every currency is added as minor units; we bill in USD.")


@st.fragment(run_every=30)
def live_usage_and_payments() -> None:
    up = data.prom_instant("up")
    if isinstance(up, data.BackendDown):
        data.show_down(up)  # one banner; the engine's own table still renders
        top_orgs_section()
        return
    usage_section()
    meter_section()
    payments_section()


live_usage_and_payments()
