"""On call: who holds each rotation now and next, and the firing alerts with their escalation
countdown; operators acknowledge from here (the alerts API records the signed-in person)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import streamlit as st

from billing_core.access import Role
from dashboard import charts, data
from dashboard.formatting import (
    alert_sort_key,
    escalation_words,
    format_since,
    plain,
    rotations_frame,
    severities_frame,
)
from dashboard.signin import require

OUTCOME = "oncall_outcome"

person = require(Role.viewer)
st.title("On call")


def acknowledge(fingerprint: str, name: str) -> None:
    answer = data.alerts_send("POST", f"/v1/alerts/{fingerprint}/ack")
    if isinstance(answer, data.BackendDown):
        st.session_state[OUTCOME] = ("error", answer.message)
        return
    status, body = answer
    if status == 200:
        st.cache_data.clear()
        st.session_state[OUTCOME] = ("success", f"{name} acknowledged by "
                                                f"{body.get('acked_by', '?')}: escalation stopped.")
    else:
        st.session_state[OUTCOME] = ("error", f"Acknowledge refused: HTTP {status}. "
                                              f"{plain(body.get('message', ''))}")


def show_alert(alert: dict[str, Any], now: datetime) -> None:
    severity = alert.get("severity") or "?"
    colour = charts.SEVERITY_COLOURS.get(severity, charts.NEUTRAL_COLOUR)
    with st.container(border=True):
        st.markdown(f'<span style="background:{colour};color:white;padding:2px 8px;'
                    f'border-radius:4px">{severity}</span> **{alert["alertname"]}** · firing '
                    f'since {format_since(alert.get("fired_at") or alert.get("activeAt"), now)}',
                    unsafe_allow_html=True)
        st.write(escalation_words(alert, now))
        if person.may(Role.operator) and not alert.get("acked"):
            st.button("Acknowledge", key=f"oncall_ack_{alert['fingerprint']}",
                      on_click=acknowledge, args=(alert["fingerprint"], alert["alertname"]))


@st.fragment(run_every=15)
def live() -> None:
    now = datetime.now(UTC)
    outcome = st.session_state.pop(OUTCOME, None)
    if outcome is not None:
        (st.success if outcome[0] == "success" else st.error)(outcome[1])
    oncall = data.alerts_api("/v1/oncall")
    if isinstance(oncall, data.BackendDown):
        data.show_down(oncall)
        return
    st.subheader("Rotations")
    st.dataframe(rotations_frame((oncall or {}).get("rotations", []), now), hide_index=True)
    st.subheader("Firing alerts and their escalation")
    answer = data.alerts_api("/v1/alerts", state="active")
    if isinstance(answer, data.BackendDown):
        data.show_down(answer)
        return
    firing = [a for a in (answer or {}).get("alerts", []) if a.get("state") == "firing"]
    if not firing:
        st.success("Nothing is firing: nobody is being paged.")
    order = tuple(charts.SEVERITY_ORDER)
    for alert in sorted(firing, key=lambda a: alert_sort_key(a, order, now)):
        show_alert(alert, now)
    if not person.may(Role.operator):
        st.caption("Acknowledging needs the operator role.")
    st.subheader("Response times and escalation")
    st.dataframe(severities_frame((oncall or {}).get("severities", [])), hide_index=True)


live()
