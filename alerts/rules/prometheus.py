"""Prometheus HTTP API adapter: instant queries through prometheus-api-client.

Two failures are kept apart because they mean different things for alert state:
`PrometheusUnavailable` (cannot reach it, it times out or answers 5xx: keep every alert as it is)
and `QueryError` (it answered and refused the query: that rule has a problem).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException
from urllib3.util.retry import Retry

from alerts.rules.model import RuleEvaluationError, Sample
from billing_core.errors import UpstreamError


class PrometheusUnavailable(UpstreamError):
    """Prometheus cannot be reached, timed out or answered 5xx: every alert keeps its state."""

    code = "prometheus_unavailable"


class QueryError(RuleEvaluationError):
    """Prometheus answered and refused the query: that rule has a problem."""


_STATUS = re.compile(r"HTTP Status Code (\d{3})")


def _value(raw: Any) -> float:
    text = str(raw)
    return float(text.replace("+Inf", "inf").replace("-Inf", "-inf"))


def parse_vector(result: Any) -> list[Sample]:
    """An instant vector from the API's `data.result`; a scalar or string is a QueryError
    (an alerting rule must return a vector, as Prometheus itself insists)."""
    if not isinstance(result, list) or any(not isinstance(item, dict) for item in result):
        raise QueryError("the query does not return an instant vector")
    samples = []
    for item in result:
        labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        value = item.get("value")
        if not isinstance(value, list) or len(value) != 2:
            raise QueryError("the query does not return an instant vector")
        samples.append(Sample(labels=labels, value=_value(value[1])))
    return samples


class PrometheusClient:
    def __init__(self, url: str, *, timeout_seconds: float = 10.0) -> None:
        from prometheus_api_client import PrometheusConnect

        self.url = url.rstrip("/")
        # No retries inside a round: the next round is the retry, and a dead Prometheus must
        # not hold the round for minutes.
        self._api = PrometheusConnect(url=self.url, disable_ssl=True, retry=Retry(total=0),
                                      timeout=timeout_seconds, method="POST")

    def query(self, expr: str, *, at: datetime) -> list[Sample]:
        try:
            result = self._api.custom_query(expr, params={"time": f"{at.timestamp():.3f}"})
        except PrometheusApiClientException as error:
            match = _STATUS.search(str(error))
            status = int(match.group(1)) if match else 0
            if 400 <= status < 500 and status not in (408, 429):
                raise QueryError(_api_error_text(str(error))) from error
            raise PrometheusUnavailable(f"Prometheus answered HTTP {status or '?'}") from error
        except requests.RequestException as error:
            raise PrometheusUnavailable(f"{type(error).__name__}: {error}"[:300]) from error
        except ValueError as error:  # a body that is not JSON: not a Prometheus we can use
            raise PrometheusUnavailable(f"unreadable answer: {error}"[:300]) from error
        return parse_vector(result)

    def close(self) -> None:
        self._api.close()


def _api_error_text(text: str) -> str:
    found = re.search(r'"error":"((?:[^"\\]|\\.)*)"', text)
    return found.group(1) if found else text[:300]
