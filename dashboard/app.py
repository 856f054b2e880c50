"""Entry point: `python -m dashboard` (or `streamlit run dashboard/app.py`). Declares the settings,
the signed-in person and the navigation only.

Before sign-in only the sign-in page is served. Afterwards each page is listed for the roles
that may use it (viewer: SLOs, alerts and runbooks; support and above: customers; operators:
reconciliation with Stripe).
"""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from billing_core.access import Role
from dashboard.settings import ConsoleSettings
from dashboard.signin import current_person, show_person

# (script, title, url path, the lowest role that sees it); the first is the default page.
PAGES = (
    ("views/overview.py", "Overview", "overview", Role.viewer),
    ("views/errors_latency.py", "Errors and latency", "errors", Role.viewer),
    ("views/alerts.py", "Alerts", "alerts", Role.viewer),
    ("views/oncall.py", "On call", "oncall", Role.viewer),
    ("views/incidents.py", "Incidents", "incidents", Role.viewer),
    ("views/customers.py", "Customers", "customers", Role.support),
    ("views/usage_payments.py", "Usage and payments", "usage", Role.viewer),
    ("views/reconciliation.py", "Reconciliation", "reconciliation", Role.operator),
    ("views/runbooks.py", "Runbooks", "runbooks", Role.viewer),
)

st.set_page_config(page_title="Billing ops console", page_icon="📟", layout="wide")
settings = ConsoleSettings.from_env()
st.session_state["console_settings"] = settings
person = current_person(settings)
st.session_state["console_person"] = person

if person is None or person.role is None or person.expired(datetime.now(UTC)):
    st.session_state["console_person"] = None
    pages = [st.Page("views/signin.py", title="Sign in", url_path="signin", default=True)]
else:
    show_person(person)
    pages = [st.Page(script, title=title, url_path=path, default=index == 0)
             for index, (script, title, path, role) in enumerate(PAGES) if person.may(role)]
st.navigation(pages).run()
