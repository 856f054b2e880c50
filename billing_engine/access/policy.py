"""Who may call each route of the engine: one table, enforced by `api.deps.authorize` on every
route, and walked by `tests/api/test_access_policy.py` against the app's route table.

A route missing here answers 403 (default deny) and fails that test by name. Roles, lowest
first: viewer (SLO and metrics views, no customer personal data), support (customer search, the
billing card, usage, invoices, payments), operator (debug views, webhook replay, meter requeue
and flush, repairs), admin (orgs, keys, credits, closing a period: everything). Org keys reach
only their own org's data: `billing:read` the reads, `usage:write` the heartbeats.
"""

from __future__ import annotations

from billing_core.access import OrgScope, Policy, Public, Role, Scope, StaffRole

PUBLIC = Public()
OWN_BILLING = OrgScope(Scope.billing_read, staff=Role.support)
SUPPORT = StaffRole(Role.support)
OPERATOR = StaffRole(Role.operator)
ADMIN = StaffRole(Role.admin)

ENGINE_POLICY: Policy = {
    # Probes, scrapes and the API's own description.
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/live"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    # Stripe signs its deliveries; the signature is the credential.
    ("POST", "/webhooks/stripe"): PUBLIC,
    ("POST", "/webhooks/stripe/thin"): PUBLIC,
    # A fleet sends its own org's heartbeats; the route refuses a batch naming another org.
    ("POST", "/v1/heartbeats"): OrgScope(Scope.usage_write, staff=None),
    # An org's own billing, for its key with billing:read, or for support.
    ("GET", "/v1/billing"): OWN_BILLING,
    ("GET", "/v1/usage/{org_id}/daily"): OWN_BILLING,
    ("GET", "/v1/invoices"): OWN_BILLING,
    ("GET", "/v1/credits"): OWN_BILLING,
    ("GET", "/v1/payments"): OWN_BILLING,
    ("GET", "/v1/entitlements/{org_id}"): OWN_BILLING,
    ("GET", "/v1/orgs/{org_id}/instances"): OWN_BILLING,
    # The catalogue holds no customer data: any org key that reads billing, any staff.
    ("GET", "/v1/plans"): OrgScope(Scope.billing_read, staff=Role.viewer),
    # Across orgs: customer data, support only.
    ("GET", "/v1/customers"): SUPPORT,
    ("GET", "/v1/usage/top"): SUPPORT,
    ("GET", "/v1/instances/{instance_id}"): SUPPORT,
    # The troubleshooting guide's "sync subscription data": support pulls an org from Stripe.
    ("POST", "/v1/customers/{org_id}/resync"): SUPPORT,
    # Debug views and repairs.
    ("GET", "/debug/usage/{org_id}/daily"): OPERATOR,
    ("GET", "/debug/meters/pending"): OPERATOR,
    ("GET", "/debug/webhooks/failing"): OPERATOR,
    ("GET", "/debug/reconciliation/last"): OPERATOR,
    ("GET", "/debug/reconciliation/runs"): OPERATOR,
    ("GET", "/debug/reconciliation/runs/{run_id}"): OPERATOR,
    ("GET", "/debug/throttle/{instance_id}"): OPERATOR,
    ("GET", "/admin/webhooks/{event_id}"): OPERATOR,
    ("POST", "/admin/webhooks/{event_id}/replay"): OPERATOR,
    ("POST", "/admin/meters/flush"): OPERATOR,
    ("POST", "/admin/meters/requeue-failed"): OPERATOR,
    ("POST", "/admin/reconciliation/run"): OPERATOR,
    ("POST", "/admin/quota/{org_id}/refresh"): OPERATOR,
    ("POST", "/admin/entitlements/{org_id}/recompute"): OPERATOR,
    ("POST", "/admin/throttle/{org_id}/reset-daily"): OPERATOR,
    ("POST", "/admin/throttle/instances/{instance_id}/check"): OPERATOR,
    # Orgs, money, keys and the audit log.
    ("PUT", "/admin/orgs/{org_id}"): ADMIN,
    ("POST", "/admin/credits"): ADMIN,
    ("POST", "/admin/credits/{org_id}"): ADMIN,
    ("POST", "/admin/credits/{credit_id}/stripe-retry"): ADMIN,
    ("POST", "/admin/invoices/close"): ADMIN,
    ("GET", "/admin/audit"): ADMIN,
    # The demo's scripted incident (404 outside the demo).
    ("GET", "/admin/demo/fault"): ADMIN,
    ("POST", "/admin/demo/fault"): ADMIN,
    ("POST", "/admin/orgs/{org_id}/keys"): ADMIN,
    ("GET", "/admin/orgs/{org_id}/keys"): ADMIN,
    ("DELETE", "/admin/orgs/{org_id}/keys/{key_id}"): ADMIN,
    ("POST", "/admin/staff-keys"): ADMIN,
    ("GET", "/admin/staff-keys"): ADMIN,
    ("DELETE", "/admin/staff-keys/{key_id}"): ADMIN,
}
