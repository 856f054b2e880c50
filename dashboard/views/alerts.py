"""Alerts: what is firing, since when, who was told, and the runbook section to follow.

The list refreshes itself every 15 s in a fragment; the acknowledge and silence forms and the
silences table sit outside it, so a refresh never resets what someone is typing. Everyone signed
in reads; acknowledging and silencing are offered from the operator role up, and the alerts API
records the signed-in person as who did it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from billing_core.access import Role
from dashboard import charts, data
from dashboard.formatting import (
    alert_sort_key,
    delivery_lines,
    format_since,
    format_time,
    history_frame,
    history_stats_frame,
    matcher_text,
    silences_frame,
)
from dashboard.runbooks import console_runbook_link
from dashboard.signin import Person, require

OUTCOME = "alerts_outcome"  # session key: the last change's result, shown once
STATES = {"active": "Active (pending and firing)", "recent": "Recent (also resolved, last 24 h)"}
DURATIONS = {"30m": "30 minutes", "1h": "1 hour", "2h": "2 hours", "4h": "4 hours",
             "8h": "8 hours", "1d": "1 day", "3d": "3 days", "7d": "7 days"}
# Form labels for the alerts API's field names, so a refusal points at the right input.
FIELDS = {"by": "By", "matchers": "Matchers", "comment": "Comment", "created_by": "By",
          "duration": "Expires after", "expires_at": "Expires after",
          "fingerprint": "Alert", "silence_id": "Silence"}


def load_alerts(state: str) -> tuple[list[dict[str, Any]], str, list[data.BackendDown]]:
    """The alerts API's alerts in `state`, else Prometheus' own active alerts."""
    if state == "active":
        return data.active_alerts()
    answer = data.alerts_api("/v1/alerts", state=state)
    if isinstance(answer, dict):
        return list(answer.get("alerts", [])), data.ALERTS, []
    return data.active_alerts()


def load_silences() -> list[dict[str, Any]] | data.BackendDown:
    answer = data.alerts_api("/v1/silences", state="active")
    if isinstance(answer, data.BackendDown):
        return answer
    return list((answer or {}).get("silences", []))


# -- changes: callbacks run before the rerun, so the page shows their effect ----------------------

def _field_text(body: Any) -> str:
    pairs = data.field_errors(body)
    if not pairs:
        return str(body.get("message", "")) if isinstance(body, dict) else ""
    return "; ".join(f"{FIELDS[f]} ({f}): {r}" if f in FIELDS else f"{f}: {r}" for f, r in pairs)


def _send(action: str, method: str, path: str, done: Any,
          body: dict[str, Any] | None = None) -> bool:
    answer = data.alerts_send(method, path, json_body=body)
    if isinstance(answer, data.BackendDown):
        st.session_state[OUTCOME] = ("down", answer)
        return False
    status, reply = answer
    if status in (200, 201):
        st.cache_data.clear()  # the list and the silences are read again on this rerun
        st.session_state[OUTCOME] = ("success", done(reply))
        return True
    if status == 401:
        text = (f"The alerts API did not accept your sign-in (401): {action} not done. Sign out "
                "and in again.")
    else:
        text = f"{action.capitalize()} refused: HTTP {status}. {_field_text(reply)}"
    st.session_state[OUTCOME] = ("error", text)
    return False


def acknowledge(fingerprint: str, name: str) -> None:
    _send("acknowledge", "POST", f"/v1/alerts/{fingerprint}/ack", lambda r: (
        f"{name} acknowledged by {r.get('acked_by', '?')} at {format_time(r.get('acked_at'))}: "
        "no more repeats of this episode; it stays listed until its condition clears."))


def add_silence() -> None:
    lines = str(st.session_state.get("silence_matchers") or "").splitlines()
    body = {"matchers": [line.strip() for line in lines if line.strip()],
            "duration": st.session_state.get("silence_duration"),
            "comment": (st.session_state.get("silence_comment") or "").strip()}
    added = _send("silence", "POST", "/v1/silences", lambda r: (
        f"Silence {r.get('id', '?')} added by {r.get('created_by', '?')}: "
        + ", ".join(matcher_text(m) for m in r.get("matchers", []))
        + f", until {format_time(r.get('expires_at'))}."), body=body)
    if added:
        st.session_state["silence_comment"] = ""


def expire_silence(silence_id: str) -> None:
    _send("expire", "DELETE", f"/v1/silences/{silence_id}",
          lambda r: f"Silence {r.get('id', silence_id)} expired: notifications resume.")


# -- the list -------------------------------------------------------------------------------------

def _silence_words(ids: list[str], silences: dict[str, dict[str, Any]]) -> str:
    parts = []
    for sid in ids:
        s = silences.get(sid)
        if s is None:
            parts.append(f"`{sid}`")
        else:
            parts.append(f"`{sid}` ({', '.join(matcher_text(m) for m in s['matchers'])}; "
                         f"“{s['comment']}” by {s['created_by']}, until "
                         f"{format_time(s['expires_at'])})")
    return "Silenced by " + "; ".join(parts)


def show_alert(alert: dict[str, Any], silences: dict[str, dict[str, Any]], now: datetime,
               *, from_api: bool) -> None:
    labels = alert.get("labels") or {}
    annotations = alert.get("annotations") or {}
    name = alert.get("alertname") or labels.get("alertname", "?")
    severity = alert.get("severity") or labels.get("severity", "?")
    colour = charts.SEVERITY_COLOURS.get(severity, charts.NEUTRAL_COLOUR)
    link = console_runbook_link(alert.get("runbook_url") or annotations.get("runbook_url"),
                                service=labels.get("service", ""), alertname=name)
    value = alert.get("value_text") or alert.get("value")
    if value not in (None, "") and not alert.get("value_text"):
        value = f"{float(value):.4g}"
    with st.container(border=True):
        st.markdown(
            f'<span style="background:{colour};color:white;padding:2px 8px;'
            f'border-radius:4px">{severity}</span> **{name}** · {alert.get("state", "")}'
            f' · since {format_since(alert.get("activeAt"), now)}'
            + (f" · value {value}" if value not in (None, "") else ""),
            unsafe_allow_html=True)
        if annotations.get("summary"):
            st.write(annotations["summary"])
        links = [f"[Runbook section]({link})"]
        dashboard = alert.get("dashboard_url") or annotations.get("dashboard_url")
        if dashboard:
            links.append(f"[Dashboard]({dashboard})")
        # The service's logs and traces over the alert's window, when the alerts process has
        # LOGS_BASE_URL and TRACES_BASE_URL (docs/observability.md).
        for label, key in (("Logs", "logs_url"), ("Traces", "traces_url")):
            target = alert.get(key) or annotations.get(key)
            if target:
                links.append(f"[{label}]({target})")
        if from_api and alert.get("state") == "firing" and alert.get("fingerprint"):
            declare = urlencode({"alert": alert["fingerprint"]})
            links.append(f"[Declare an incident](/incidents?{declare})")
        st.markdown(" · ".join(links))
        if not from_api:
            return
        notes = []
        if alert.get("resolved_at"):
            notes.append(f"Resolved {format_time(alert['resolved_at'])}")
        if alert.get("acked"):
            notes.append(f"Acknowledged by {alert.get('acked_by') or '?'} at "
                         f"{format_time(alert.get('acked_at'))}")
        else:
            notes.append("Not acknowledged")
        if alert.get("silenced_by"):
            notes.append(_silence_words(list(alert["silenced_by"]), silences))
        st.markdown(" · ".join(notes))
        deliveries = delivery_lines(alert)
        if deliveries:
            st.markdown("Delivery: " + "; ".join(deliveries))
        elif alert.get("state") == "pending":
            st.markdown("Delivery: none yet; notified once it has held for its rule's `for`.")
        else:
            st.markdown("Delivery: no notification queued (silenced, or no receiver is "
                        "configured for it).")


@st.fragment(run_every=15)
def live_alerts() -> None:
    state = st.session_state.get("alerts_state", "active")
    alerts, source, down = load_alerts(state)
    for backend in down:
        data.show_down(backend)
    if not source:
        return
    if source == data.PROMETHEUS:
        st.caption("Showing Prometheus' own active alerts; delivery status, acknowledge and "
                   "silence need the alerts API.")
    if not alerts:
        st.success("No active alerts." if state == "active" else
                   "No alert active or resolved in the last 24 hours.")
        return
    now = datetime.now(UTC)
    silences = load_silences() if source == data.ALERTS else []
    by_id = {s["id"]: s for s in silences} if isinstance(silences, list) else {}
    order = tuple(charts.SEVERITY_ORDER)
    for alert in sorted(alerts, key=lambda a: alert_sort_key(a, order, now)):
        show_alert(alert, by_id, now, from_api=source == data.ALERTS)


# -- acknowledge and silence ----------------------------------------------------------------------

def show_outcome() -> None:
    outcome = st.session_state.pop(OUTCOME, None)
    if outcome is None:
        return
    kind, payload = outcome
    if kind == "down":
        data.show_down(payload)
    elif kind == "success":
        st.success(payload)
    else:
        st.error(payload)


def show_actions(person: Person) -> None:
    st.subheader("Acknowledge or silence")
    show_outcome()
    answer = data.alerts_api("/v1/alerts", state="active")
    if not isinstance(answer, dict):
        st.info("Acknowledging and silencing need the alerts API.")
        return
    alerts = {a["fingerprint"]: a for a in answer.get("alerts", [])}
    if not person.may(Role.operator):
        st.info("Read-only: acknowledging, silencing and expiring silences need the operator "
                "role.")
        return
    if not alerts:
        st.info("No active alert to acknowledge; a silence can still be added below.")
    choice = st.selectbox(
        "Alert", list(alerts), key="action_alert",
        format_func=lambda fp: (f"{alerts[fp]['severity'] or '?'} · {alerts[fp]['alertname']} · "
                                f"{alerts[fp]['state']} · {fp[:12]}"))
    name = alerts[choice]["alertname"] if choice in alerts else ""
    # Prefill the matchers from the chosen alert, once per choice (so edits are kept).
    if st.session_state.get("silence_prefill_for") != choice:
        st.session_state["silence_prefill_for"] = choice
        st.session_state["silence_matchers"] = f'alertname="{name}"' if name else ""
    left, right = st.columns(2)
    with left:
        if choice in alerts:
            with st.form("ack_form"):
                st.markdown(f"**Acknowledge {name}** (stops repeats of this episode)")
                st.form_submit_button("Acknowledge", key="ack_submit", on_click=acknowledge,
                                      args=(choice, name))
    with right, st.form("silence_form"):
        st.markdown("**Silence** (no notifications while it lasts)")
        st.text_area("Matchers, one per line (name=value, name!=value, name=~regex)",
                     key="silence_matchers")
        st.selectbox("Expires after", list(DURATIONS), format_func=DURATIONS.__getitem__,
                     index=2, key="silence_duration")
        st.text_input("Comment (why, and the ticket)", key="silence_comment")
        st.form_submit_button("Add silence", key="silence_submit", on_click=add_silence)


def show_silences(person: Person) -> None:
    st.subheader("Silences")
    silences = load_silences()
    if isinstance(silences, data.BackendDown):
        st.info("Silences need the alerts API.")
        return
    if not silences:
        st.info("No active silence: every alert is notified.")
        return
    st.dataframe(silences_frame(silences, datetime.now(UTC)), hide_index=True)
    if not person.may(Role.operator):
        return
    for silence in silences:
        st.button(f"Expire silence {silence['id']} "
                  f"({', '.join(matcher_text(m) for m in silence['matchers'])})",
                  key=f"expire_{silence['id']}", on_click=expire_silence, args=(silence["id"],))


def show_history() -> None:
    """Every episode that fired (kept 90 days), searchable, with how fast it was answered."""
    st.subheader("History and response times")
    cols = st.columns(3)
    days = cols[0].selectbox("Window", [1, 7, 30, 90], index=2, key="history_days",
                             format_func=lambda d: f"last {d} day{'s' if d > 1 else ''}")
    severity = cols[1].selectbox("Severity", ["any", "P0", "P1", "P2", "P3"], key="history_sev")
    name = cols[2].text_input("Alert name", key="history_name").strip()
    params: dict[str, Any] = {"days": days}
    if severity != "any":
        params["severity"] = severity
    if name:
        params["alertname"] = name
    answer = data.alerts_api("/v1/alerts/history", **params)
    if isinstance(answer, data.BackendDown):
        st.info("The history needs the alerts API.")  # its banner is at the top already
        return
    if answer is None or not answer.get("episodes"):
        st.info("Nothing fired in that window" + (" matching the search." if name or
                                                   severity != "any" else "."))
        return
    st.dataframe(history_stats_frame(answer["stats"]), hide_index=True)
    st.dataframe(history_frame(answer["episodes"]), hide_index=True)


# -- the page -------------------------------------------------------------------------------------

person = require(Role.viewer)
st.title("Alerts")

st.radio("Show", list(STATES), format_func=STATES.__getitem__, key="alerts_state",
         horizontal=True)
live_alerts()
show_actions(person)
show_silences(person)
show_history()
