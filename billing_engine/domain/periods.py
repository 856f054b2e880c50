"""Moved to billing_core.periods (shim until the engine restructure lands)."""

from billing_core.periods import *  # noqa: F403
