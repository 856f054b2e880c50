"""Reconciliation with Stripe (operators): the stored runs, and one run's mismatches per org with
the numbers side by side (billed, sent, Stripe-aggregated minutes; our and Stripe's amounts).

The engine runs it after each period close and daily; runbooks/reconciliation.md explains each
kind and what to do.
"""

from __future__ import annotations

import streamlit as st

from billing_core.access import Role
from dashboard import data
from dashboard.formatting import (
    MISMATCH_KINDS,
    plain,
    reconciliation_mismatches_frame,
    reconciliation_runs_frame,
)
from dashboard.signin import require

require(Role.operator)
st.title("Reconciliation with Stripe")
st.caption("Each closed period is compared with Stripe per customer right after it closes and "
           "daily: minutes on our invoice, minutes Stripe accepted from us, minutes Stripe's "
           "meter aggregated, and both invoice amounts after credits. "
           "[What each kind means](/runbooks?runbook=reconciliation&section=mismatch-kinds)")

listing = data.engine("/debug/reconciliation/runs", limit=60)
if isinstance(listing, data.BackendDown):
    data.show_down(listing)
    st.stop()
runs = (listing or {}).get("runs", [])
if not runs:
    st.info("No reconciliation run yet: the engine runs one when a period closes, then daily. "
            "An operator can run one for any month: POST /admin/reconciliation/run?period=YYYY-MM.")
    st.stop()

st.subheader("Runs")
st.dataframe(reconciliation_runs_frame(runs), hide_index=True)

labels = {f"#{r['id']} · {r['period']} · {r['trigger']} · {r['ran_at'][:16].replace('T', ' ')}"
          f" · {r['mismatch_count']} mismatch(es)": r["id"] for r in runs}
choice = st.selectbox("Open a run", list(labels), key="reconciliation_run")
run_id = labels[choice]
org = st.text_input("Only this org (id)", key="reconciliation_org").strip()
detail = data.engine(f"/debug/reconciliation/runs/{run_id}", **({"org_id": org} if org else {}))
if isinstance(detail, data.BackendDown):
    data.show_down(detail)
    st.stop()
if detail is None:
    st.warning(f"The engine has no run {run_id} (or no org {plain(org)}).")
    st.stop()

cols = st.columns(4)
cols[0].metric("Mismatches", f"{detail['mismatch_count']}")
cols[1].metric("Our invoices compared", f"{detail['our_invoices']}")
cols[2].metric("Stripe invoices", f"{detail['stripe_invoices']}")
cols[3].metric("Meter summaries compared", "yes" if detail["aggregated_checked"] else "no")
if not detail["aggregated_checked"]:
    st.caption("Stripe has no meter with the engine's event name (STRIPE_METER_EVENT_NAME), or "
               "the engine runs without Stripe keys: the Stripe minutes column is empty.")
mismatches = detail.get("mismatches", [])
if not mismatches:
    st.success("Clean: every compared invoice and its usage agree with Stripe.")
    st.stop()
kinds = sorted({m["kind"] for m in mismatches})
shown = st.multiselect("Kinds", kinds, default=kinds, key="reconciliation_kinds")
st.dataframe(reconciliation_mismatches_frame([m for m in mismatches if m["kind"] in shown]),
             hide_index=True)
for kind in shown:
    st.markdown(f"- **{kind}**: {MISMATCH_KINDS.get(kind, '')}")
