"""Who may call each route of the alerts API: one table, enforced by `alerts.api.deps.authorize`
on every route and walked by `tests/alerts/test_access_policy.py` against the app's routes.

A route missing here answers 403 to everyone (default deny) and fails that test by name. Roles
are the engine's (`billing_core.access.Role`), lowest first: viewer reads alerts and silences,
support reads an org's budget alert history (it names the customer's billing email, which
support sees on the billing card anyway), operator acknowledges, silences and sends test
messages, admin may do everything. Org keys reach nothing here.
"""

from __future__ import annotations

from billing_core.access import Policy, Public, Role, StaffRole

PUBLIC = Public()
VIEWER = StaffRole(Role.viewer)
SUPPORT = StaffRole(Role.support)
OPERATOR = StaffRole(Role.operator)

ALERTS_POLICY: Policy = {
    # Probes, scrapes and the API's own description.
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    # On-call views: no customer personal data.
    ("GET", "/v1/alerts"): VIEWER,
    ("GET", "/v1/alerts/history"): VIEWER,
    ("GET", "/v1/silences"): VIEWER,
    ("GET", "/v1/silences/{silence_id}"): VIEWER,
    ("GET", "/v1/oncall"): VIEWER,
    ("GET", "/v1/incidents"): VIEWER,
    ("GET", "/v1/incidents/{incident_id}"): VIEWER,
    ("GET", "/v1/incidents/{incident_id}/postmortem"): VIEWER,
    # A customer's budget alerts: what support answers "did they warn me?" with.
    ("GET", "/debug/alerts/{org_id}"): SUPPORT,
    # Changes and delivery tests.
    ("POST", "/v1/alerts/{fingerprint}/ack"): OPERATOR,
    ("POST", "/v1/silences"): OPERATOR,
    # Incidents: whoever may acknowledge may declare and run one.
    ("POST", "/v1/incidents"): OPERATOR,
    ("POST", "/v1/incidents/{incident_id}/updates"): OPERATOR,
    ("POST", "/v1/incidents/{incident_id}/resolve"): OPERATOR,
    ("POST", "/v1/incidents/{incident_id}/tasks/{key}/done"): OPERATOR,
    ("PUT", "/v1/incidents/{incident_id}/postmortem"): OPERATOR,
    ("DELETE", "/v1/silences/{silence_id}"): OPERATOR,
    ("POST", "/admin/test-email"): OPERATOR,
    ("POST", "/admin/test-slack"): OPERATOR,
}
