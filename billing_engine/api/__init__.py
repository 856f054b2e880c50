"""The engine's HTTP API: the app factory, its dependencies and its middleware.

`create_app` is imported on first use, so route and schema modules can import `api.deps`
without pulling in the whole app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from billing_engine.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from billing_engine.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
