"""Customers (support): find an org and read its billing card without asking engineering."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, data
from dashboard.formatting import format_hours, format_money

REASONS = {
    "continuous_run_limit": "ran the plan's continuous-run limit",
    "daily_cap": "org reached its daily instance-hours cap",
    "idle": "idle past the plan's idle-pause limit",
}


def instances_frame(items: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{
        "Instance": i["instance_id"],
        "State": i["state"],
        "Last seen (UTC)": i["last_seen"][:19].replace("T", " "),
        "Hours this period": format_hours(i["hours_this_period"]),
        "Throttle": i["throttle"]["decision"],
        "Reason": REASONS.get(i["throttle"]["reason"] or "", i["throttle"]["reason"] or ""),
        "Paused since (UTC)": (i["throttle"]["paused_since"] or "")[:19].replace("T", " "),
    } for i in items]
    return pd.DataFrame(rows)


st.title("Customers")

with st.sidebar:
    st.text_input("Admin key (enables admin actions for this session)", type="password",
                  key="admin_key")

query = st.text_input("Search by org id, name or billing email", key="customer_query")
if not query:
    st.info("Type the start of an org id, a name or a billing email.")
    st.stop()

found = data.engine("/v1/customers", q=query, page_size=20)
if isinstance(found, data.BackendDown):
    data.show_down(found)
    st.stop()
results = (found or {}).get("results", [])
if not results:
    st.warning(f"No customer matches “{query}”.")
    st.stop()

labels = {f"{o['name']} · {o['id']} · {o['billing_email']}": o["id"] for o in results}
choice = st.selectbox(f"{found.get('total', len(results))} match(es)", list(labels),
                      key="customer_choice")
org_id = labels[choice]

billing = data.engine("/v1/billing", org_id=org_id)
if isinstance(billing, data.BackendDown):
    data.show_down(billing)
    st.stop()
if billing is None:
    st.warning(f"The engine knows no org {org_id}.")
    st.stop()

org, usage, charges = billing["org"], billing["usage"], billing["charges"]
period = billing["period"]
currency = charges.get("currency", "usd")
st.subheader(f"{org['name']} ({org['id']})")
st.caption(f"Billing email {org['billing_email']} · plan **{org['plan']}** · period "
           f"{period['key']} ({period['start'][:10]} to {period['end'][:10]}, end exclusive) · "
           f"as of {billing.get('as_of', '?')[:19]} UTC")

cols = st.columns(4)
cols[0].metric("Included", format_hours(usage["included_hours"]))
cols[1].metric("Used", format_hours(usage["used_hours"]))
cols[2].metric("Remaining", format_hours(usage["remaining_hours"]))
cols[3].metric("Overage", format_hours(usage["overage_hours"]))
money = st.columns(3)
money[0].metric("Base fee", format_money(charges["base_fee_cents"], currency))
money[1].metric("Estimated overage", format_money(charges["estimated_overage_cents"], currency))
money[2].metric("Estimated total", format_money(charges["estimated_total_cents"], currency))
crossed = billing.get("thresholds_crossed", [])
st.write("Thresholds crossed: " + (", ".join(f"{t} %" for t in crossed) if crossed
                                   else "none yet this period"))

left, right = st.columns(2)
with left:
    st.plotly_chart(charts.usage_gauge(included_hours=usage["included_hours"],
                                       used_hours=usage["used_hours"]))
with right:
    daily = data.engine(f"/v1/usage/{org_id}/daily", days=30)
    if isinstance(daily, data.BackendDown):
        data.show_down(daily)
    else:
        frame = pd.DataFrame((daily or {}).get("days", []), columns=["day", "minutes", "hours"])
        if frame.empty or frame["hours"].sum() == 0:
            st.info("No usage recorded in the last 30 days.")
        else:
            st.plotly_chart(charts.daily_usage_chart(frame))

st.subheader("Entitlements")
entitlements = data.engine(f"/v1/entitlements/{org_id}")
if isinstance(entitlements, data.BackendDown):
    data.show_down(entitlements)
else:
    limits = entitlements.get("limits", {})

    def limit(value: Any, unit: str) -> str:
        return "unlimited" if value is None else f"{value} {unit}"

    st.markdown(
        f"Subscription **{entitlements.get('subscription_status', 'unknown')}**, limits of the "
        f"**{entitlements.get('effective_plan', org['plan'])}** plan: "
        f"{limit(limits.get('max_concurrent_instances'), 'concurrent instances')} · "
        f"continuous run {limit(limits.get('continuous_run_hours'), 'h')} · "
        f"daily cap {limit(limits.get('daily_cap_hours'), 'instance-hours')} · "
        f"idle pause after {limit(limits.get('idle_pause_minutes'), 'min')} · overage "
        f"{'allowed' if entitlements.get('features', {}).get('overage_allowed') else 'not allowed'}"
    )

st.subheader("Instances")
listing = data.engine(f"/v1/orgs/{org_id}/instances", limit=100)
if isinstance(listing, data.BackendDown):
    data.show_down(listing)
elif not listing or not listing.get("instances"):
    st.info("No instance of this org has sent a heartbeat.")
else:
    st.caption(f"{listing['total']} instance(s), {listing['paused']} told to pause; the most "
               "recently seen 100 are listed. The throttle column is what the engine last told "
               "the instance.")
    st.dataframe(instances_frame(listing["instances"]), hide_index=True)

st.subheader("Admin actions")
admin_key = st.session_state.get("admin_key", "")
if not admin_key:
    st.info("Read-only: enter an admin key in the sidebar to refresh this org's quota.")
elif st.button("Refresh quota (rebuild rollups from raw minutes)", key="refresh_quota"):
    answer = data.engine_admin_post(f"/admin/quota/{org_id}/refresh", admin_key)
    if isinstance(answer, data.BackendDown):
        data.show_down(answer)
    elif answer[0] == 200:
        st.cache_data.clear()
        st.success(f"Quota refreshed: {answer[1].get('before_minutes', '?')} → "
                   f"{answer[1].get('after_minutes', '?')} minutes.")
    elif answer[0] == 401:
        st.error("The engine refused the admin key (401): refresh not done.")
    else:
        st.error(f"Refresh failed: HTTP {answer[0]} {answer[1].get('message', '')}")
