"""Incidents: declare one (from an alert or from nothing), post updates, resolve it, tick off
the post-incident checklist and edit the post-mortem. Everyone signed in reads; operators run
them, and the alerts API records the signed-in person for each change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st

from billing_core.access import Role
from dashboard import data
from dashboard.formatting import format_time, plain
from dashboard.signin import require

OUTCOME = "incident_outcome"
STATUSES = ["investigating", "identified", "monitoring"]

person = require(Role.viewer)
operator = person.may(Role.operator)
st.title("Incidents")


def _outcome(kind: str, text: str) -> None:
    st.session_state[OUTCOME] = (kind, text)


def _send(method: str, path: str, body: dict[str, Any] | None, done: str) -> dict[str, Any]:
    answer = data.alerts_send(method, path, json_body=body)
    if isinstance(answer, data.BackendDown):
        _outcome("error", answer.message)
        return {}
    status, reply = answer
    if status in (200, 201):
        st.cache_data.clear()
        _outcome("success", done)
        return reply if isinstance(reply, dict) else {}
    reasons = "; ".join(f"{f}: {r}" for f, r in data.field_errors(reply))
    _outcome("error", f"Refused: HTTP {status}. {reasons or plain(reply.get('message', ''))}")
    return {}


def declare() -> None:
    state = st.session_state
    reply = _send("POST", "/v1/incidents", {
        "severity": state["inc_severity"], "title": state["inc_title"].strip(),
        "impact": state["inc_impact"].strip(), "commander": state["inc_commander"].strip(),
        "fingerprints": list(state.get("inc_alerts") or [])}, "Incident declared: the channel "
        "and the stakeholders are told.")
    if reply.get("id"):
        st.query_params["id"] = str(reply["id"])


def post_update(incident_id: int) -> None:
    state = st.session_state
    status, severity = state.get("upd_status"), state.get("upd_severity")
    commander = (state.get("upd_commander") or "").strip()
    posted = _send("POST", f"/v1/incidents/{incident_id}/updates", {
        "text": state["upd_text"].strip(), "kind": "note" if state.get("upd_note") else "update",
        "status": None if status in (None, "(unchanged)") else status,
        "severity": None if severity in (None, "(unchanged)") else severity,
        "commander": commander or None},
        "Note added." if state.get("upd_note") else "Update posted to the incidents channel.")
    if posted:  # a new form: a second click is not the same update again
        state["upd_text"], state["upd_commander"] = "", ""
        state["upd_status"] = state["upd_severity"] = "(unchanged)"


def resolve(incident_id: int) -> None:
    _send("POST", f"/v1/incidents/{incident_id}/resolve",
          {"summary": st.session_state["res_summary"].strip()},
          "Resolved: everyone told; the checklist has started.")


def tick(incident_id: int, key: str) -> None:
    _send("POST", f"/v1/incidents/{incident_id}/tasks/{key}/done", None, "Checklist item done.")


def save_postmortem(incident_id: int, key: str) -> None:
    _send("PUT", f"/v1/incidents/{incident_id}/postmortem", {"text": st.session_state[key]},
          "Post-mortem saved.")


def incident_frame(incidents: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{"Incident": i["key"], "Severity": i["severity"], "Status": i["status"],
             "Title": i["title"], "Commander": i["commander"],
             "Declared": format_time(i["declared_at"]),
             "Next update due": format_time(i.get("next_update_due")) or "-"}
            for i in incidents]
    return pd.DataFrame(rows, columns=["Incident", "Severity", "Status", "Title", "Commander",
                                       "Declared", "Next update due"])


def declare_form() -> None:
    alerts = data.alerts_api("/v1/alerts", state="active")
    firing = ({a["fingerprint"]: a for a in alerts.get("alerts", [])
               if a.get("state") == "firing"} if isinstance(alerts, dict) else {})
    preset = st.query_params.get("alert")
    with st.form("declare_incident"):
        st.markdown("**Declare an incident**")
        st.selectbox("Severity", ["P0", "P1", "P2"], index=1, key="inc_severity")
        st.text_input("Title", key="inc_title")
        st.text_input("Impact (one line: who is hurt, and how)", key="inc_impact")
        st.text_input("Commander", value=person.email, key="inc_commander")
        st.multiselect("Declared from these firing alerts", list(firing),
                       default=[preset] if preset in firing else [],
                       format_func=lambda fp: f"{firing[fp]['severity']} "
                                              f"{firing[fp]['alertname']}", key="inc_alerts")
        st.form_submit_button("Declare", on_click=declare, type="primary")


def show_incident(incident: dict[str, Any]) -> None:
    incident_id = int(incident["id"])
    st.subheader(f"{incident['key']} · {incident['severity']} · {incident['status']}")
    st.markdown(f"{plain(incident['title'])}  \nImpact: {plain(incident['impact'])}  \n"
                f"Commander: {plain(incident['commander'])} · declared "
                f"{format_time(incident['declared_at'])} by {plain(incident['declared_by'])}"
                + (f" · resolved {format_time(incident['resolved_at'])}"
                   if incident.get("resolved_at") else
                   f" · next update due {format_time(incident.get('next_update_due'))}"))
    timeline = pd.DataFrame([{"Time (UTC)": format_time(e["at"])[:16], "What": e["kind"],
                              "Who": e["who"], "Detail": e["text"]}
                             for e in incident.get("timeline", [])],
                            columns=["Time (UTC)", "What", "Who", "Detail"])
    st.dataframe(timeline, hide_index=True)
    if operator and not incident.get("resolved_at"):
        left, right = st.columns(2)
        with left, st.form(f"update_{incident_id}"):
            st.markdown("**Post an update**")
            st.text_area("What changed, what is next", key="upd_text")
            st.selectbox("Status", ["(unchanged)", *STATUSES], key="upd_status")
            st.selectbox("Severity", ["(unchanged)", "P0", "P1", "P2"], key="upd_severity")
            st.text_input("Hand over to a new commander", key="upd_commander")
            st.checkbox("A note for the timeline only (not posted to the channel)",
                        key="upd_note")
            st.form_submit_button("Post", on_click=post_update, args=(incident_id,))
        with right, st.form(f"resolve_{incident_id}"):
            st.markdown("**Resolve**")
            st.text_area("What fixed it", key="res_summary")
            st.form_submit_button("Resolve", on_click=resolve, args=(incident_id,))
    tasks = incident.get("tasks", [])
    if tasks:
        st.markdown("**Post-incident checklist**")
        for task in tasks:
            done = task.get("done_at")
            line = (f"{'✅' if done else '⬜'} {task['title']} · due "
                    f"{format_time(task['due_at'])}"
                    + (f" · done by {plain(task.get('done_by') or '')}" if done else ""))
            cols = st.columns([5, 1])
            cols[0].markdown(line)
            if operator and not done:
                cols[1].button("Done", key=f"task_{incident_id}_{task['key']}", on_click=tick,
                               args=(incident_id, task["key"]))
    postmortem = data.alerts_api(f"/v1/incidents/{incident_id}/postmortem")
    if isinstance(postmortem, dict):
        st.markdown("**Post-mortem**" + (" (drafted from data; edit and save to keep it)"
                                         if postmortem.get("edited_by") is None else
                                         f" (last saved by {plain(postmortem['edited_by'])})"))
        # One editor per saved version: after a save (or before any), the text shown is the
        # API's, so an old draft is never saved over a newer one.
        version = postmortem.get("edited_at") or f"draft-{incident['last_update_at']}"
        key = f"pm_{incident_id}_{version}"
        st.session_state.setdefault(key, postmortem["markdown"])
        st.text_area("Markdown", key=key, height=400, disabled=not operator)
        buttons = st.columns(2)
        if operator:
            buttons[0].button("Save post-mortem", key=f"save_{key}", on_click=save_postmortem,
                              args=(incident_id, key))
        buttons[1].download_button("Download Markdown", st.session_state[key],
                                file_name=f"{incident['key']}-postmortem.md",
                                mime="text/markdown", key=f"dl_{key}")


def start_demo_fault() -> None:
    answer = data.engine_post("/admin/demo/fault", json_body={"minutes": 6})
    if isinstance(answer, data.BackendDown):
        _outcome("error", answer.message)
    elif answer[0] == 200:
        _outcome("success", "The demo's scripted incident started: errors and slow reads for 6 "
                            "minutes. A page fires within a few minutes.")
    else:
        _outcome("error", f"Refused: HTTP {answer[0]}")


def demo_controls() -> None:
    """Only for admins, and only while the engine runs the demo (outside it: 404)."""
    state = data.engine("/admin/demo/fault")
    if not isinstance(state, dict):
        return
    with st.expander("Demo: the scripted incident"):
        active = state.get("active")
        upcoming = state.get("next_scheduled")
        if active:
            st.write(f"Running until {format_time(active['ends'])} ({active['why']}).")
        elif upcoming:
            st.write(f"Next scheduled at {format_time(upcoming['starts'])}.")
        st.button("Start it now", key="demo_fault", on_click=start_demo_fault)


outcome = st.session_state.pop(OUTCOME, None)
if outcome is not None:
    (st.success if outcome[0] == "success" else st.error)(outcome[1])

listing = data.alerts_api("/v1/incidents")
if isinstance(listing, data.BackendDown):
    data.show_down(listing)
    st.stop()
incidents = (listing or {}).get("incidents", [])
open_ones = [i for i in incidents if not i.get("resolved_at")]
st.caption(f"{len(open_ones)} open, {len(incidents)} in the last 90 days · "
           f"as of {datetime.now(UTC):%H:%M:%S} UTC")
if person.may(Role.admin):
    demo_controls()
if operator:
    declare_form()
if incidents:
    st.dataframe(incident_frame(incidents), hide_index=True)
    labels = {f"{i['key']} · {i['severity']} · {i['title']}": int(i["id"]) for i in incidents}
    wanted = st.query_params.get("id")
    ids = list(labels.values())
    index = ids.index(int(wanted)) if wanted and wanted.isdigit() and int(wanted) in ids else 0
    choice = st.selectbox("Incident", list(labels), index=index, key="incident_choice")
    detail = data.alerts_api(f"/v1/incidents/{labels[choice]}")
    if isinstance(detail, data.BackendDown):
        data.show_down(detail)
    elif detail:
        show_incident(detail)
else:
    st.info("No incident in the last 90 days.")
