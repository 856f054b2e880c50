"""Errors and latency: where errors come from and which endpoints are slow."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from billing_core.access import Role
from dashboard import charts, data
from dashboard.signin import require

RANGES = {"15 minutes": (15, "15s"), "1 hour": (60, "30s"), "6 hours": (360, "2m"),
          "24 hours": (1440, "10m"), "7 days": (10080, "1h")}
JOB = 'job="billing-engine"'

require(Role.viewer)
st.title("Errors and latency")
choice = st.selectbox("Time range", list(RANGES), index=1)
minutes, step = RANGES[choice]


def _series(query: str, labels: tuple[str, ...]) -> pd.DataFrame | data.BackendDown:
    result = data.prom_range(query, minutes=minutes, step=step)
    if isinstance(result, data.BackendDown):
        return result
    return data.matrix_frame(result, labels=labels)


@st.fragment(run_every=30)
def live_errors() -> None:
    requests = _series(f"sum by (endpoint) (rate(http_requests_total{{{JOB}}}[1m]))",
                       ("endpoint",))
    if isinstance(requests, data.BackendDown):
        data.show_down(requests)
        return
    errors = _series(f'sum by (endpoint) (rate(http_requests_total{{{JOB},status=~"5.."}}[1m]))',
                     ("endpoint",))
    left, right = st.columns(2)
    with left:
        if requests.empty:
            st.info("No requests in this range.")
        else:
            st.plotly_chart(charts.rate_by_endpoint_chart(
                requests.rename(columns={"value": "rate"}), title="Request rate by endpoint"))
    with right:
        if isinstance(errors, data.BackendDown) or errors.empty:
            st.info("No 5xx errors in this range.")
        else:
            st.plotly_chart(charts.rate_by_endpoint_chart(
                errors.rename(columns={"value": "rate"}), title="5xx rate by endpoint"))

    window = f"{minutes}m"
    status = data.prom_instant(f"sum by (status) (rate(http_requests_total{{{JOB}}}[{window}]))")
    top5xx = data.prom_instant(
        f'topk(10, sum by (endpoint) (increase(http_requests_total{{{JOB},status=~"5.."}}'
        f"[{window}])) > 0)")
    left, right = st.columns(2)
    with left:
        frame = (data.vector_frame(status, labels=("status",))
                 if not isinstance(status, data.BackendDown) else pd.DataFrame())
        if frame.empty:
            st.info("No responses in this range.")
        else:
            st.plotly_chart(charts.status_code_chart(frame.rename(columns={"value": "rate"})))
    with right:
        st.subheader("Top 10 endpoints by 5xx")
        frame = (data.vector_frame(top5xx, labels=("endpoint",))
                 if not isinstance(top5xx, data.BackendDown) else pd.DataFrame())
        if frame.empty:
            st.info("No endpoint answered 5xx in this range.")
        else:
            frame = frame.rename(columns={"value": "5xx responses"}).sort_values(
                "5xx responses", ascending=False)
            st.dataframe(frame.round(0), hide_index=True)

    bucket = f"rate(http_request_duration_seconds_bucket{{{JOB}}}[1m])"
    frames = []
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        frame = _series(f"histogram_quantile({q}, sum by (le) ({bucket}))", ())
        if not isinstance(frame, data.BackendDown) and not frame.empty:
            frames.append(frame.assign(quantile=name))
    latency = pd.concat(frames) if frames else pd.DataFrame()
    latency = latency.dropna(subset=["value"]) if not latency.empty else latency
    if latency.empty:
        st.info("No latency samples in this range.")
    else:
        st.plotly_chart(charts.latency_chart(latency.rename(columns={"value": "seconds"})))

    st.subheader("Slowest endpoints (p95)")
    slow = data.prom_instant(
        f"topk(10, histogram_quantile(0.95, sum by (endpoint, le) "
        f"(rate(http_request_duration_seconds_bucket{{{JOB}}}[{window}]))))")
    frame = (data.vector_frame(slow, labels=("endpoint",))
             if not isinstance(slow, data.BackendDown) else pd.DataFrame())
    frame = frame.dropna() if not frame.empty else frame
    if frame.empty:
        st.info("No latency samples in this range.")
    else:
        frame["p95 (ms)"] = (frame.pop("value") * 1000).round(1)
        st.dataframe(frame.sort_values("p95 (ms)", ascending=False), hide_index=True)


live_errors()
