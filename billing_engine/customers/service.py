"""Customers (orgs): who may be billed, looked up by id, name or email, and kept current.

Other services never read the orgs table themselves: they ask `Customers` (`require`, `known`)
and subscribe to changes with `on_change`, so one place knows an org exists and when it changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from billing_core.clock import Clock, utc_now
from billing_core.errors import NotFound
from billing_engine.customers.store import (
    INVOICE_ID,
    INVOICE_NUMBER,
    CustomerStore,
    OrgRecord,
)

OrgListener = Callable[[str], None]


@dataclass(frozen=True)
class SearchPage:
    query: str
    page: int
    page_size: int
    total: int
    results: list[OrgRecord]
    note: str | None = None  # how a Stripe reference was resolved, or why it could not be


# Finds the Stripe customer an invoice id or number belongs to by asking Stripe (wiring sets
# it): (customer id or None, a note for support).
StripeInvoiceLookup = Callable[[str], tuple[str | None, str]]


class Customers:
    def __init__(self, *, store: CustomerStore, clock: Clock = utc_now) -> None:
        self.store = store
        self.clock = clock
        # Orgs are never deleted, so a positive cache of known ids is always right.
        self._known: set[str] = set()
        self._known_lock = threading.Lock()
        self._listeners: list[OrgListener] = []
        self.stripe_invoice_lookup: StripeInvoiceLookup | None = None

    def on_change(self, listener: OrgListener) -> None:
        """Call `listener(org_id)` after any change to an org (plan, link to Stripe, ...)."""
        self._listeners.append(listener)

    def changed(self, org_id: str) -> None:
        """Tell the listeners an org changed (a webhook effect changed it in its transaction)."""
        for listener in self._listeners:
            listener(org_id)

    def require(self, org_id: str) -> OrgRecord:
        org = self.store.get_org(org_id)
        if org is None:
            raise NotFound("org_id", f"no org with id {org_id!r}")
        return org

    def known(self, org_ids: Iterable[str]) -> set[str]:
        """Which of these org ids exist (a database read only for ids not seen before)."""
        wanted = set(org_ids)
        with self._known_lock:
            unknown = wanted - self._known
        if unknown:
            found = self.store.existing_org_ids(unknown)
            with self._known_lock:
                self._known |= found
        with self._known_lock:
            return wanted & self._known

    def upsert(self, *, org_id: str, name: str, email: str, plan: str) -> tuple[OrgRecord, bool]:
        record, created = self.store.upsert_org(
            org_id=org_id, name=name, billing_email=email, plan=plan, now=self.clock()
        )
        with self._known_lock:
            self._known.add(org_id)
        self.changed(org_id)
        return record, created

    def search(self, query: str, *, page: int, page_size: int) -> SearchPage:
        """By id, name or email prefix, or by what a customer quotes from Stripe: a customer,
        subscription or invoice id, or an invoice number. An invoice we hold no link for is
        looked up in Stripe (its customer, then the org linked to it)."""
        results, total = self.store.search_orgs(
            query, limit=page_size, offset=(page - 1) * page_size
        )
        quoted = query.strip()
        note = None
        if (total == 0 and self.stripe_invoice_lookup is not None
                and (INVOICE_ID.match(quoted) or INVOICE_NUMBER.match(quoted))):
            customer, note = self.stripe_invoice_lookup(quoted)
            if customer is not None:
                found = self.store.orgs_of_customer(customer)
                total = len(found)
                results = found[(page - 1) * page_size: page * page_size]
                if not found:
                    note += f"; no org here is linked to {customer}"
        return SearchPage(query=query, page=page, page_size=page_size, total=total,
                          results=results, note=note)
