"""Customers (support): find an org and read its billing card without asking engineering.

Support and above read and may resync an org from Stripe; operators also get the repairs
(quota refresh, entitlement recompute) and admins the credit grant. The engine records the
signed-in person for each action.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from billing_core.access import Role
from dashboard import charts, data
from dashboard.formatting import (
    budget_alerts_frame,
    credits_frame,
    format_hours,
    format_money,
    invoice_lines_frame,
    invoices_frame,
    payments_frame,
    plain,
    refunds_frame,
    stripe_invoices_frame,
)
from dashboard.signin import Person, require

REASONS = {
    "continuous_run_limit": "ran the plan's continuous-run limit",
    "daily_cap": "org reached its daily instance-hours cap",
    "idle": "idle past the plan's idle-pause limit",
}
# Form labels for the engine's field names, so a refused grant points at the right input.
CREDIT_FIELDS = {"amount_cents": "Amount", "reason": "Reason", "org_id": "Org"}
OUTCOME = "admin_outcome"  # session key: the last admin action's result, shown once
IDEMPOTENCY = "credit_idempotency_key"


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


# -- sections of the card -------------------------------------------------------------------------

def show_subscription(subscription: dict[str, Any] | None, plan: str) -> None:
    st.subheader("Subscription")
    if subscription is None:
        st.info(f"No Stripe subscription: the org is billed on its **{plan}** plan without one, "
                "and its entitlements count as active.")
        return
    cols = st.columns(4)
    cols[0].metric("Subscription status", subscription["status"])
    cols[1].metric("At period end",
                   "cancels" if subscription["cancel_at_period_end"] else "renews")
    start, end = subscription["current_period_start"], subscription["current_period_end"]
    st.markdown(f"Current period **{(start or '?')[:10]} → {(end or '?')[:10]}** · Stripe "
                f"customer `{subscription.get('stripe_customer_id') or 'none'}` · subscription "
                f"`{subscription['id']}` · the engine's entitlements treat it as "
                f"**{subscription.get('entitlement_status', '?')}**")


def show_invoice_preview(preview: dict[str, Any] | None) -> None:
    if preview is None:
        return
    currency = preview["currency"]
    st.subheader(f"Invoice preview, period {preview['period']['key']}")
    st.caption("The open period's invoice as it would be if the period closed now, credits "
               "applied; it changes with usage until the period closes.")
    st.dataframe(invoice_lines_frame(preview["lines"], currency), hide_index=True)
    cols = st.columns(3)
    cols[0].metric("Preview subtotal", format_money(preview["subtotal_cents"], currency))
    cols[1].metric("Credits applied", format_money(-preview["credits_applied_cents"], currency))
    cols[2].metric("Preview total", format_money(preview["total_cents"], currency))


def show_invoices(org_id: str) -> None:
    st.subheader("Invoices")
    answer = data.engine("/v1/invoices", org_id=org_id)
    if isinstance(answer, data.BackendDown):
        data.show_down(answer)
        return
    invoices = (answer or {}).get("invoices", [])
    stripe_invoices = (answer or {}).get("stripe_invoices", [])
    link = {"Stripe page": st.column_config.LinkColumn("Stripe page", display_text="open")}
    if not invoices:
        st.info("No invoice yet: the engine writes one when a billing period closes.")
    else:
        st.dataframe(invoices_frame(invoices), hide_index=True, column_config=link)
    if stripe_invoices:
        st.markdown("**Stripe's invoices** (what the customer was billed and can open)")
        st.dataframe(stripe_invoices_frame(stripe_invoices), hide_index=True,
                     column_config=link)
    if not invoices:
        return
    for invoice in invoices:
        title = (f"{invoice['period']['key']} · {invoice['status']} · "
                 f"{format_money(invoice['total_cents'], invoice['currency'])}")
        with st.expander(f"Lines of {title}"):
            st.dataframe(invoice_lines_frame(invoice["lines"], invoice["currency"]),
                         hide_index=True)


def show_payments(org_id: str) -> None:
    st.subheader("Payments")
    answer = data.engine("/v1/payments", org_id=org_id, limit=100)
    if isinstance(answer, data.BackendDown):
        data.show_down(answer)
        return
    if not answer or not answer.get("payments"):
        st.info("No payment attempt recorded for this org (Stripe's charge and invoice events "
                "record them).")
        return
    totals = answer["totals"]
    cols = st.columns(5)
    cols[0].metric("Payment attempts", f"{totals['attempts']}")
    cols[1].metric("Succeeded", f"{totals['succeeded']}")
    cols[2].metric("Failed", f"{totals['failed']}")
    cols[3].metric("Collected", format_money(totals["succeeded_cents"]))
    cols[4].metric("Refunded", format_money(totals["refunded_cents"]))
    st.caption("Newest first, at most 100; records older than the engine's payment retention "
               "are gone.")
    st.dataframe(payments_frame(answer["payments"]), hide_index=True)
    if answer.get("refunds"):
        st.markdown("**Refunds**")
        st.dataframe(refunds_frame(answer["refunds"]), hide_index=True)


def show_credits(org_id: str) -> None:
    st.subheader("Credits")
    answer = data.engine("/v1/credits", org_id=org_id)
    if isinstance(answer, data.BackendDown):
        data.show_down(answer)
        return
    currency = (answer or {}).get("currency", "usd")
    st.metric("Credit balance", format_money((answer or {}).get("balance_cents", 0), currency))
    credits = (answer or {}).get("credits", [])
    if not credits:
        st.info("No credit granted to this org.")
        return
    st.caption("Credits apply to the next invoice closed after they were granted, oldest first.")
    st.dataframe(credits_frame(credits, currency), hide_index=True)


def show_budget_alerts(org_id: str, crossed: list[int]) -> None:
    st.subheader("Budget alerts sent")
    engine_says = ("Thresholds crossed this period, by the engine's count: "
                   + (", ".join(f"{t} %" for t in crossed) or "none") + ".")
    answer = data.alerts_get(f"/debug/alerts/{org_id}")
    if isinstance(answer, data.BackendDown):
        data.show_down(answer)
        return
    status, body = answer
    if status in (401, 403):
        st.error(f"The alerts API refused your sign-in (HTTP {status}). " + engine_says)
    elif status != 200:
        st.error(f"The alerts API answered HTTP {status}: {plain(body.get('message', ''))}")
    elif not body.get("budget_alerts"):
        st.info("No budget alert sent to this org. " + engine_says)
    else:
        st.dataframe(budget_alerts_frame(body["budget_alerts"]), hide_index=True)


# -- admin actions: callbacks run before the rerun, so the card shows their effect ---------------

def _field_text(body: Any) -> str:
    pairs = data.field_errors(body)
    if not pairs:
        return str(body.get("message", "")) if isinstance(body, dict) else ""
    return "; ".join(f"{CREDIT_FIELDS.get(f, f)} ({f}): {r}" if f in CREDIT_FIELDS else f"{f}: {r}"
                     for f, r in pairs)


def _admin_post(org_id: str, action: str, path: str, done: Callable[[Any], str], *,
                body: dict[str, Any] | None = None, idempotency_key: str | None = None) -> bool:
    answer = data.engine_post(path, json_body=body, idempotency_key=idempotency_key)
    if isinstance(answer, data.BackendDown):
        st.session_state[OUTCOME] = (org_id, "down", answer)
        return False
    status, reply = answer
    if status in (200, 201):
        st.cache_data.clear()
        st.session_state[OUTCOME] = (org_id, "success", done(reply))
        return True
    if status == 401:
        text = (f"The engine did not accept your sign-in (401): {action} not done. Sign out "
                "and in again.")
    else:
        text = f"{action.capitalize()} failed: HTTP {status}. {_field_text(reply)}"
    st.session_state[OUTCOME] = (org_id, "error", text)
    return False


def refresh_quota(org_id: str) -> None:
    _admin_post(org_id, "refresh", f"/admin/quota/{org_id}/refresh", lambda r: (
        f"Quota refreshed: {r.get('before_minutes', '?')} → {r.get('after_minutes', '?')} "
        "minutes."))


def recompute_entitlements(org_id: str) -> None:
    _admin_post(org_id, "recompute", f"/admin/entitlements/{org_id}/recompute", lambda r: (
        f"Entitlements recomputed from the database: plan {r.get('effective_plan', '?')}, "
        f"subscription {r.get('subscription_status', '?')}."))


def grant_credit(org_id: str) -> None:
    amount = st.session_state.get("credit_amount") or 0.0
    reason = st.session_state.get("credit_reason") or ""
    cents = round(float(amount) * 100)
    granted = _admin_post(
        org_id, "grant", "/admin/credits",
        lambda r: (f"Credit #{r.get('id', '?')} of {format_money(r.get('amount_cents', cents))} "
                   f"granted by {r.get('granted_by', '?')}: “{r.get('reason', reason)}”."),
        body={"org_id": org_id, "amount_cents": cents, "reason": reason},
        idempotency_key=st.session_state.get(IDEMPOTENCY))
    if granted:  # a new form: its next submit is a new grant; a double submit was one
        st.session_state[IDEMPOTENCY] = uuid.uuid4().hex
        st.session_state["credit_amount"] = 0.0
        st.session_state["credit_reason"] = ""


def _resynced(reply: Any) -> str:
    changed = [s["id"] for s in reply.get("subscriptions", []) if s.get("changed")]
    text = (f"Resynced from Stripe customer {reply.get('stripe_customer_id', '?')}: plan "
            f"{reply.get('plan_before', '?')} → {reply.get('plan_after', '?')} (limits of "
            f"{reply.get('effective_plan', '?')}), "
            f"{len(changed)} subscription(s) updated, {len(reply.get('invoices', []))} "
            "invoice(s) read.")
    if not reply.get("changed"):
        text += " Nothing differed from what the engine held."
    for warning in reply.get("warnings", []):
        text += f" Warning: {warning}."
    return text


def resync(org_id: str) -> None:
    _admin_post(org_id, "resync", f"/v1/customers/{org_id}/resync", _resynced)


def show_admin_actions(org_id: str, person: Person) -> None:
    st.subheader("Actions")
    outcome = st.session_state.pop(OUTCOME, None)
    if outcome is not None and outcome[0] == org_id:
        kind, payload = outcome[1], outcome[2]
        if kind == "down":
            data.show_down(payload)
        elif kind == "success":
            st.success(payload)
        else:
            st.error(payload)
    st.button("Resync from Stripe (customer, subscriptions, latest invoices)",
              key="resync_from_stripe", on_click=resync, args=(org_id,),
              help="When the card and Stripe disagree: pulls what Stripe holds now, applies it "
                   "and records the change in the audit log.")
    if not person.may(Role.operator):
        st.info("Read-only: refreshing the quota and recomputing entitlements need the operator "
                "role, granting a credit the admin role.")
        return
    left, right = st.columns(2)
    left.button("Refresh quota (rebuild rollups from raw minutes)", key="refresh_quota",
                on_click=refresh_quota, args=(org_id,))
    right.button("Recompute entitlements (drop the cache, read the database)",
                 key="recompute_entitlements", on_click=recompute_entitlements, args=(org_id,))
    if not person.may(Role.admin):
        st.info("Granting a credit needs the admin role.")
        return
    st.session_state.setdefault(IDEMPOTENCY, uuid.uuid4().hex)
    with st.form("grant_credit"):
        st.markdown("**Grant a credit** (applies to the next invoice closed)")
        st.number_input("Amount (USD)", min_value=0.0, step=1.0, format="%.2f",
                        key="credit_amount")
        st.text_input("Reason (e.g. the ticket number and why)", key="credit_reason")
        st.form_submit_button("Grant credit", key="grant_credit_submit", on_click=grant_credit,
                              args=(org_id,))


# -- the page -------------------------------------------------------------------------------------

person = require(Role.support)
st.title("Customers")

query = st.text_input("Search by org id, name or billing email, or a Stripe id or invoice number",
                      key="customer_query")
if not query:
    st.info("Type the start of an org id, a name or a billing email. Or what the customer "
            "quotes from Stripe: a customer (cus_…), subscription (sub_…) or invoice (in_…) id, "
            "or an invoice number such as ABCD-0001.")
    st.stop()

found = data.engine("/v1/customers", q=query, page_size=20)
if isinstance(found, data.BackendDown):
    data.show_down(found)
    st.stop()
results = (found or {}).get("results", [])
if (found or {}).get("note"):
    st.caption(f"Stripe: {plain(found['note'])}")
if not results:
    st.warning(f"No customer matches “{plain(query)}”.")
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
    st.warning(f"The engine knows no org {plain(org_id)}.")
    st.stop()

org, usage, charges = billing["org"], billing["usage"], billing["charges"]
period = billing["period"]
currency = charges.get("currency", "usd")
st.subheader(f"{plain(org['name'])} ({plain(org['id'])})")
st.caption(f"Billing email {plain(org['billing_email'])} · plan **{plain(org['plan'])}** · period "
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

show_subscription(billing.get("subscription"), org["plan"])
show_invoice_preview(billing.get("invoice_preview"))
show_invoices(org_id)
show_payments(org_id)
show_credits(org_id)
show_budget_alerts(org_id, crossed)

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

show_admin_actions(org_id, person)
