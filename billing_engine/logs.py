"""Moved to billing_core.logs (shim)."""

from billing_core.logs import *  # noqa: F403
from billing_core.logs import request_id_var  # noqa: F401
