"""ASGI factory for uvicorn workers: settings from the environment, built once per worker."""

from __future__ import annotations

from fastapi import FastAPI

from billing_core.logs import configure_logging
from billing_core.tracing import configure_tracing
from billing_engine import __version__
from billing_engine.api import create_app
from billing_engine.settings import Settings


def app_from_env() -> FastAPI:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.secret_values())
    # Off (nothing imported) unless OTEL_EXPORTER_OTLP_ENDPOINT is set; once per worker.
    configure_tracing("billing-engine", version=__version__, instrument=("httpx", "redis"))
    return create_app(settings)
