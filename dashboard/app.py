"""Entry point: `streamlit run dashboard/app.py`. Declares the settings and the navigation only."""

from __future__ import annotations

import streamlit as st

from dashboard.settings import ConsoleSettings

st.set_page_config(page_title="Billing ops console", page_icon="📟", layout="wide")
st.session_state["console_settings"] = ConsoleSettings.from_env()

page = st.navigation([
    st.Page("views/overview.py", title="Overview", url_path="overview", default=True),
    st.Page("views/errors_latency.py", title="Errors and latency", url_path="errors"),
    st.Page("views/alerts.py", title="Alerts", url_path="alerts"),
    st.Page("views/customers.py", title="Customers", url_path="customers"),
    st.Page("views/usage_payments.py", title="Usage and payments", url_path="usage"),
    st.Page("views/runbooks.py", title="Runbooks", url_path="runbooks"),
])
page.run()
