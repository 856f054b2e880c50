"""Usage-meter outbox (migration 0004)."""

from __future__ import annotations

from billing_engine.store.schema import metadata  # noqa: F401
