"""Moved to billing_core.catalogue (shim)."""

from billing_core.catalogue import load_plans  # noqa: F401
