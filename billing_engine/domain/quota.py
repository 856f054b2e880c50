"""Moved to billing_core.quota (shim until the engine restructure lands)."""

from billing_core.quota import *  # noqa: F403
