"""The engine's HTTP API."""

from billing_engine.api.app import create_app

__all__ = ["create_app"]
