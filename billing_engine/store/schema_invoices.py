"""Invoices, lines, credits, audit log (migration 0005)."""

from __future__ import annotations

from billing_engine.store.schema import metadata  # noqa: F401
