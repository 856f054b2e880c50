"""The only page served before sign-in: what the console is, and the sign-in button.

It shows no data. Three other states land here too: sign-in not configured (what to set),
a sign-in that has expired (sign in again), and a person in no group the console knows.
"""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboard.data import current_settings
from dashboard.formatting import plain
from dashboard.signin import current_person

st.title("Billing ops console")
settings = current_settings()

if not settings.sign_in_configured:
    st.error("Sign-in is not configured, so the console shows nothing. Set OIDC_ISSUER_URL, "
             "OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, CONSOLE_URL and CONSOLE_COOKIE_SECRET and start "
             "the console with `python -m dashboard` (docs/security.md).")
    st.stop()

person = current_person(settings)
if person is None:
    st.write("SLOs, alerts, customers' billing and runbooks for the billing engine. Sign in with "
             "your organisation's account; what you see follows your role.")
    st.button("Sign in", key="sign_in", type="primary", on_click=st.login)
elif person.expired(datetime.now(UTC)):
    st.warning(f"Your sign-in as {plain(person.label)} has expired. Sign in again to go on.")
    st.button("Sign in again", key="sign_in", type="primary", on_click=st.login)
else:  # signed in, with no role
    st.warning(f"You are signed in as {plain(person.label)}, but your account is in none of "
               "the groups that give a role in this console. Ask an admin to add you to one "
               "(docs/security.md, Roles).")
    st.button("Sign out", key="sign_out", on_click=st.logout)
