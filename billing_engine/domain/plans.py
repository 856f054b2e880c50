"""Moved to billing_core.plans (shim until the engine restructure lands)."""

from billing_core.plans import *  # noqa: F403
