"""Who is using the console: the person signed in with the OIDC provider, and their role.

The role comes from the same claim and group map as the APIs use (`OIDC_ROLE_CLAIM`,
`OIDC_ROLE_MAP`, `billing_core.access.oidc`), so the pages and buttons shown match what the
engine and the alerts API will accept. It only decides what is shown: every call carries the
person's ID token and the APIs check it themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from billing_core.access import Role
from billing_core.access.oidc import role_from_claims
from dashboard.formatting import plain
from dashboard.settings import ConsoleSettings

# Ask for a new sign-in a little before the token expires, so no call is refused half-way.
EXPIRY_MARGIN = timedelta(seconds=30)
# What each role may do in the console, for the words on the pages.
ROLE_TEXT = {
    Role.viewer: "SLOs, alerts, metrics and runbooks",
    Role.support: "also customers, their billing, usage, invoices and payments",
    Role.operator: "also acknowledging and silencing alerts and repairs on a customer",
    Role.admin: "also credits, and everything else",
}


@dataclass(frozen=True)
class Person:
    email: str
    name: str
    role: Role | None  # None: signed in, but in no group the console knows
    token: str = field(repr=False)  # the ID token, sent to the APIs as Bearer
    expires_at: datetime | None = None

    def may(self, role: Role) -> bool:
        return self.role is not None and self.role >= role

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at - EXPIRY_MARGIN

    @property
    def label(self) -> str:
        return self.name or self.email


def person_from_claims(claims: dict[str, Any], token: str,
                       settings: ConsoleSettings) -> Person:
    assert settings.oidc is not None
    role = role_from_claims(claims, claim=settings.oidc.role_claim,
                            mapping=settings.oidc.role_map)
    exp = claims.get("exp")
    expires = (datetime.fromtimestamp(exp, UTC)
               if isinstance(exp, int | float) and 0 < exp < 1e11 else None)
    return Person(email=str(claims.get("email") or claims.get("sub") or ""),
                  name=str(claims.get("name") or ""), role=role, token=token,
                  expires_at=expires)


def current_person(settings: ConsoleSettings) -> Person | None:
    """The signed-in person, or None (sign-in not configured, or nobody signed in)."""
    if not settings.sign_in_configured or st.user.get("is_logged_in") is not True:
        return None
    return person_from_claims(st.user.to_dict(), str(st.user.tokens.get("id") or ""), settings)


def signed_in() -> Person:
    """The person app.py found for this run; pages only run once someone has signed in."""
    person = st.session_state.get("console_person")
    if not isinstance(person, Person):
        st.error("Sign in first.")
        st.stop()
    return person


def require(role: Role) -> Person:
    """Stop the page unless the signed-in person has at least `role`."""
    person = signed_in()
    if not person.may(role):
        st.error(f"This page needs the {role.name} role; you are signed in as "
                 f"{person.role.name if person.role else 'no role'}.")
        st.stop()
    return person


def show_person(person: Person) -> None:
    """The sidebar's who-am-I and sign-out."""
    with st.sidebar:
        role = person.role.name if person.role else "no role"
        st.markdown(f"Signed in as {plain(person.label)}  \nrole: **{role}**")
        if st.button("Sign out", key="sign_out"):
            st.logout()
