"""Usage and payments: usage-side health now; payment panels once the engine exports them."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, data
from dashboard.formatting import format_hours, format_money


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


st.title("Usage and payments")


@st.fragment(run_every=30)
def live_usage() -> None:
    over = data.prom_instant("billing_orgs_over_threshold")
    if isinstance(over, data.BackendDown):
        data.show_down(over)
        return
    st.subheader("Orgs over their usage thresholds this period")
    frame = data.vector_frame(over, labels=("threshold",))
    if frame.empty:
        st.info("The engine has not exported billing_orgs_over_threshold yet.")
    else:
        cols = st.columns(len(frame))
        for col, row in zip(cols, frame.sort_values("threshold").itertuples(), strict=True):
            col.metric(f"At or over {row.threshold} % of included hours", f"{row.value:.0f} orgs")

    st.subheader("Top orgs by usage this period")
    top = data.engine("/v1/usage/top", limit=10)
    if isinstance(top, data.BackendDown):
        data.show_down(top)
    elif not top or not top.get("orgs"):
        st.info("No org has billed usage this period yet.")
    else:
        st.caption(f"Period {top['period']['key']}, from the engine's daily rollups.")
        st.dataframe(top_orgs_frame(top["orgs"]), hide_index=True)

    st.subheader("Heartbeat ingest")
    ingest = data.prom_range(
        'sum(rate(heartbeats_ingested_total{job="billing-engine"}[1m])) * 60',
        minutes=60, step="30s")
    frame = (data.matrix_frame(ingest, labels=()) if not isinstance(ingest, data.BackendDown)
             else pd.DataFrame())
    if frame.empty:
        st.info("No heartbeats ingested in the last hour.")
    else:
        frame = frame.assign(endpoint="billable minutes opened").rename(columns={"value": "rate"})
        fig = charts.rate_by_endpoint_chart(frame, title="Billable instance-minutes opened")
        fig.update_layout(yaxis_title="instance-minutes per minute")
        st.plotly_chart(fig)

    st.subheader("Payments")
    panels = {
        "Payment success rate": 'sum(rate(payments_total{outcome="succeeded"}[1h])) '
                                "/ sum(rate(payments_total[1h]))",
        "Refund rate": "sum(rate(refunds_total[1h])) / sum(rate(payments_total[1h]))",
        "Failure reasons": "sum by (reason) (increase(payment_failures_total[1h]))",
        "Revenue per hour": 'sum(increase(payment_amount_cents_total{outcome="succeeded"}[1h]))',
        "Meter queue": "usage_meter_queue",
    }
    for title, query in panels.items():
        result = data.prom_instant(query)
        if isinstance(result, data.BackendDown) or not result:
            st.info(f"{title}: payment and metering metrics are not exported by the engine yet.")
        else:
            st.write(f"{title}: " + ", ".join(
                f"{r['metric'].get('reason', '')} {float(r['value'][1]):.4g}".strip()
                for r in result))


live_usage()
