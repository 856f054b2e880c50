"""Stripe webhook inbox, subscriptions, payments (migration 0003)."""

from __future__ import annotations

from billing_engine.store.schema import metadata  # noqa: F401
