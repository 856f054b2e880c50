"""Overview: is the SLO burning? Availability, budget, burn rates, errors, latency, alerts."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import streamlit as st

from billing_core.access import Role
from dashboard import charts, data
from dashboard.formatting import format_minutes, format_percent
from dashboard.signin import require

OBJECTIVE = 0.999
PERIOD_MINUTES = 30 * 24 * 60
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")

require(Role.viewer)
st.title("Overview")


@st.fragment(run_every=30)
def live_overview() -> None:
    ratio = data.prom_scalar("slo:http_availability_error_ratio:rate30d")
    if isinstance(ratio, data.BackendDown):
        data.show_down(ratio)
        return
    budget = data.prom_scalar("slo:http_availability_error_budget_remaining:ratio30d")
    error_rate = data.prom_scalar("slo:http_availability_error_ratio:rate5m")
    p95 = data.prom_scalar('histogram_quantile(0.95, sum by (le) (rate('
                           'http_request_duration_seconds_bucket{job="billing-engine"}[5m])))')
    requests = data.prom_scalar("slo:http_availability_requests:rate5m")

    cols = st.columns(5)
    cols[0].metric("Availability, 30 d (objective 99.9 %)",
                   "no traffic" if ratio is None else format_percent(1 - ratio))
    if isinstance(budget, float):
        budget_minutes = budget * (1 - OBJECTIVE) * PERIOD_MINUTES
        cols[1].metric("Error budget remaining", format_percent(budget, 1),
                       help="Share of the 30-day budget left; minutes of full outage it buys.")
        cols[1].caption(f"≈ {format_minutes(budget_minutes)} of full outage")
    else:
        cols[1].metric("Error budget remaining", "no traffic")
    cols[2].metric("Error rate, 5 m", "no traffic" if not isinstance(error_rate, float)
                   else format_percent(error_rate, 2))
    cols[3].metric("p95 latency, 5 m (objective 150 ms)",
                   "no traffic" if not isinstance(p95, float) else f"{p95 * 1000:.0f} ms",
                   delta=None if not isinstance(p95, float)
                   else ("within" if p95 <= 0.15 else "over") + " objective",
                   delta_color="normal" if isinstance(p95, float) and p95 <= 0.15 else "inverse")
    cols[4].metric("Request rate, 5 m",
                   "no traffic" if not isinstance(requests, float) else f"{requests:.2f} req/s")

    rows = []
    for window in WINDOWS:
        value = data.prom_scalar(f"slo:http_availability_burn_rate:rate{window}")
        if isinstance(value, float):
            rows.append({"window": window, "burn_rate": value})
    left, right = st.columns(2)
    with left:
        if rows:
            st.plotly_chart(charts.burn_rate_chart(pd.DataFrame(rows)))
        else:
            st.info("No burn rate yet: the engine has served no counted requests in any window.")
    with right:
        alerts, source, down = data.active_alerts()
        for backend in down:
            data.show_down(backend)
        firing = [a for a in alerts if a.get("state", "firing") == "firing"
                  and a.get("labels", {}).get("alertname") != "Watchdog"]
        if source and not firing:
            st.success(f"No alert is firing (Watchdog left out), per {source}.")
        elif source:
            counts = Counter(a.get("labels", {}).get("severity", "?") for a in firing)
            frame = pd.DataFrame({"severity": list(counts), "count": list(counts.values())})
            st.plotly_chart(charts.alerts_by_severity_chart(frame))
            st.caption(f"{len(firing)} firing alert(s) (Watchdog left out), from {source}.")


live_overview()
