"""The console's one settings object, read from the environment at the entry point."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_ENGINE_URL = "http://127.0.0.1:8006"
DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"
DEFAULT_ALERTS_URL = "http://127.0.0.1:8007"
# The development admin key `make run` starts the engine with (billing_core.settings).
DEFAULT_ENGINE_API_KEY = "dev-admin-key"


@dataclass(frozen=True)
class ConsoleSettings:
    engine_url: str = DEFAULT_ENGINE_URL
    prometheus_url: str = DEFAULT_PROMETHEUS_URL
    alerts_url: str = DEFAULT_ALERTS_URL
    # The console's own staff credential for the engine's reads (customers, billing, usage).
    engine_api_key: str = field(default=DEFAULT_ENGINE_API_KEY, repr=False)

    @classmethod
    def from_env(cls) -> ConsoleSettings:
        return cls(
            engine_url=os.environ.get("ENGINE_URL", DEFAULT_ENGINE_URL).rstrip("/"),
            prometheus_url=os.environ.get("PROMETHEUS_URL", DEFAULT_PROMETHEUS_URL).rstrip("/"),
            alerts_url=os.environ.get("ALERTS_URL", DEFAULT_ALERTS_URL).rstrip("/"),
            engine_api_key=(os.environ.get("ENGINE_API_KEY") or os.environ.get("ADMIN_API_KEY")
                            or DEFAULT_ENGINE_API_KEY).strip(),
        )
