"""Alerts: what is firing, since when, and the runbook section to follow."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, data
from dashboard.runbooks import console_runbook_link

st.title("Alerts")


@st.fragment(run_every=15)
def live_alerts() -> None:
    alerts, source, down = data.active_alerts()
    for backend in down:
        data.show_down(backend)
    if not source:
        return
    if source == data.PROMETHEUS:
        st.caption("Showing Prometheus' own active alerts; delivery status, acknowledge and "
                   "silence need the alerts API.")
    if not alerts:
        st.success("No active alerts.")
        return
    order = {s: i for i, s in enumerate(charts.SEVERITY_ORDER)}
    alerts = sorted(alerts, key=lambda a: order.get(a.get("labels", {}).get("severity"), 9))
    for alert in alerts:
        labels = alert.get("labels", {})
        annotations = alert.get("annotations", {})
        name = labels.get("alertname", "?")
        severity = labels.get("severity", "?")
        colour = charts.SEVERITY_COLOURS.get(severity, charts.NEUTRAL_COLOUR)
        link = console_runbook_link(annotations.get("runbook_url"),
                                    service=labels.get("service", ""), alertname=name)
        value = alert.get("value")
        with st.container(border=True):
            st.markdown(
                f'<span style="background:{colour};color:white;padding:2px 8px;'
                f'border-radius:4px">{severity}</span> **{name}** · {alert.get("state", "")}'
                f' · since {alert.get("activeAt", "?")}'
                + (f" · value {float(value):.4g}" if value not in (None, "") else ""),
                unsafe_allow_html=True)
            if annotations.get("summary"):
                st.write(annotations["summary"])
            st.markdown(f"[Runbook section]({link})")


live_alerts()
