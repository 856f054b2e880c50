"""Cached fetchers for the console. Each returns data or a BackendDown naming what failed.

Failures raise inside the cached functions, so st.cache_data never keeps them: a backend that
comes back is seen on the next rerun, while good answers are reused for a few seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import streamlit as st
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from dashboard.formatting import plain
from dashboard.settings import ConsoleSettings

TIMEOUT_SECONDS = 3.0
ENGINE = "billing engine"
PROMETHEUS = "Prometheus"
ALERTS = "alerts API"


@dataclass(frozen=True)
class BackendDown:
    name: str
    url: str
    error: str

    @property
    def message(self) -> str:
        return f"The {self.name} at {self.url} cannot be reached ({self.error})."


def current_settings() -> ConsoleSettings:
    """Built by app.py on each run; read from the environment when a page runs on its own."""
    settings = st.session_state.get("console_settings")
    return settings if isinstance(settings, ConsoleSettings) else ConsoleSettings.from_env()


def show_down(down: BackendDown) -> None:
    st.error(f"**{down.name} unreachable** at {down.url}: {plain(down.error)}. "
             "Other pages keep working.", icon="🚫")


# -- HTTP APIs (engine, alerts) -----------------------------------------------------------------

def _person_token() -> str:
    """The signed-in person's ID token: the console's only credential for both APIs. Read here,
    never passed in, so it is never a cache key."""
    person = st.session_state.get("console_person")
    return str(getattr(person, "token", "") or "")


def _role() -> str:
    """The part of the caller a cached answer depends on: the APIs answer every person of one
    role alike, so answers are shared within a role and never across roles."""
    person = st.session_state.get("console_person")
    role = getattr(person, "role", None)
    return role.name if role is not None else ""


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    token = _person_token()
    return {**({"Authorization": f"Bearer {token}"} if token else {}), **(extra or {})}


@st.cache_data(ttl=5, show_spinner=False)
def _get_json(base_url: str, path: str, params: tuple[tuple[str, Any], ...], role: str) -> Any:
    response = httpx.get(f"{base_url}{path}", params=dict(params), timeout=TIMEOUT_SECONDS,
                         headers=_headers())
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


def _error_text(error: Exception) -> str:
    if isinstance(error, httpx.HTTPStatusError):
        status = error.response.status_code
        if status == 401:
            return "HTTP 401: your sign-in was not accepted; sign out and in again"
        if status == 403:
            return "HTTP 403: your role may not read this"
        return f"HTTP {status}"
    return type(error).__name__


def get_json(name: str, base_url: str, path: str, **params: Any) -> Any | BackendDown:
    """The JSON body (None on 404), or BackendDown when the backend cannot answer."""
    try:
        return _get_json(base_url, path, tuple(sorted(params.items())), _role())
    except (httpx.HTTPError, ValueError) as error:
        return BackendDown(name, base_url, _error_text(error))


def engine(path: str, **params: Any) -> Any | BackendDown:
    return get_json(ENGINE, current_settings().engine_url, path, **params)


def alerts_api(path: str, **params: Any) -> Any | BackendDown:
    return get_json(ALERTS, current_settings().alerts_url, path, **params)


def _send(name: str, base_url: str, method: str, path: str, *,
          json_body: dict[str, Any] | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, Any] | BackendDown:
    """A change (or an uncached read), as the signed-in person: the status and body, whatever
    they are, or BackendDown when nothing answered. The API records the person as its actor."""
    try:
        response = httpx.request(method, f"{base_url}{path}", json=json_body,
                                 headers=_headers(headers), timeout=TIMEOUT_SECONDS * 3)
    except httpx.HTTPError as error:
        return BackendDown(name, base_url, _error_text(error))
    try:
        body = response.json()
    except ValueError:
        body = {"message": response.text[:200]}
    return response.status_code, body


def engine_post(path: str, *, json_body: dict[str, Any] | None = None,
                idempotency_key: str | None = None) -> tuple[int, Any] | BackendDown:
    """An engine action (never cached). `idempotency_key` goes out as the Idempotency-Key
    header, so a double submit is one grant."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    return _send(ENGINE, current_settings().engine_url, "POST", path, json_body=json_body,
                 headers=headers)


def alerts_get(path: str) -> tuple[int, Any] | BackendDown:
    """An alerts API read whose status matters to the page (the budget alert history)."""
    return _send(ALERTS, current_settings().alerts_url, "GET", path)


def alerts_send(method: str, path: str, *,
                json_body: dict[str, Any] | None = None) -> tuple[int, Any] | BackendDown:
    """An alerts API change (acknowledge, add or expire a silence); never cached."""
    return _send(ALERTS, current_settings().alerts_url, method, path, json_body=json_body)


def field_errors(body: Any) -> list[tuple[str, str]]:
    """(field, reason) pairs of an error answer `{"error","message","errors":[...]}`."""
    if not isinstance(body, dict):
        return []
    return [(str(e.get("field", "")), str(e.get("reason", "")))
            for e in body.get("errors") or [] if isinstance(e, dict)]


# -- Prometheus -----------------------------------------------------------------------------------

def _prometheus(url: str) -> PrometheusConnect:
    return PrometheusConnect(url=url, disable_ssl=True, retry=Retry(total=0),
                             timeout=int(TIMEOUT_SECONDS))


@st.cache_data(ttl=10, show_spinner=False)
def _instant(url: str, query: str) -> list[dict[str, Any]]:
    return list(_prometheus(url).custom_query(query))


@st.cache_data(ttl=15, show_spinner=False)
def _range(url: str, query: str, minutes: int, step: str) -> list[dict[str, Any]]:
    end = datetime.now(UTC)
    return list(_prometheus(url).custom_query_range(
        query, start_time=end - timedelta(minutes=minutes), end_time=end, step=step))


def prom_instant(query: str) -> list[dict[str, Any]] | BackendDown:
    url = current_settings().prometheus_url
    try:
        return _instant(url, query)
    except Exception as error:  # the client raises requests' and its own exception types
        return BackendDown(PROMETHEUS, url, type(error).__name__)


def prom_range(query: str, *, minutes: int, step: str) -> list[dict[str, Any]] | BackendDown:
    url = current_settings().prometheus_url
    try:
        return _range(url, query, minutes, step)
    except Exception as error:
        return BackendDown(PROMETHEUS, url, type(error).__name__)


def prom_scalar(query: str) -> float | None | BackendDown:
    """The first sample's value, or None when the query has no series (e.g. no traffic)."""
    result = prom_instant(query)
    if isinstance(result, BackendDown):
        return result
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value  # NaN is "no data"


def vector_frame(result: list[dict[str, Any]], *, labels: tuple[str, ...]) -> pd.DataFrame:
    rows = [{**{k: r["metric"].get(k, "") for k in labels}, "value": float(r["value"][1])}
            for r in result]
    return pd.DataFrame(rows, columns=[*labels, "value"])


def matrix_frame(result: list[dict[str, Any]], *, labels: tuple[str, ...]) -> pd.DataFrame:
    rows = [{**{k: r["metric"].get(k, "") for k in labels},
             "time": datetime.fromtimestamp(float(ts), UTC), "value": float(v)}
            for r in result for ts, v in r["values"]]
    return pd.DataFrame(rows, columns=[*labels, "time", "value"])


def finite(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows whose value is a number: Prometheus answers NaN for 0/0 and Inf for x/0."""
    if frame.empty:
        return frame
    return frame[frame["value"].map(math.isfinite)].reset_index(drop=True)


@st.cache_data(ttl=10, show_spinner=False)
def _prometheus_alerts(url: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/alerts", timeout=TIMEOUT_SECONDS)
    response.raise_for_status()
    return list(response.json()["data"]["alerts"])


def active_alerts() -> tuple[list[dict[str, Any]], str, list[BackendDown]]:
    """Alerts from the alerts API, else Prometheus' own (labels + annotations, as ALERTS has).

    Returns the alerts, where they came from, and the backends that could not be reached.
    """
    down: list[BackendDown] = []
    answer = alerts_api("/v1/alerts", state="active")
    if not isinstance(answer, BackendDown) and answer is not None:
        items = answer.get("alerts", answer) if isinstance(answer, dict) else answer
        return list(items), ALERTS, down
    if isinstance(answer, BackendDown):
        down.append(answer)
    url = current_settings().prometheus_url
    try:
        return _prometheus_alerts(url), PROMETHEUS, down
    except (httpx.HTTPError, ValueError, KeyError) as error:
        down.append(BackendDown(PROMETHEUS, url, type(error).__name__))
        return [], "", down
