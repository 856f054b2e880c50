"""The odd input a user could send, to every route of the alerts API, on SQLite and PostgreSQL:
unknown ids, NUL bytes, lone surrogates, huge numbers and strings, the year 9999, wrong types,
bodies that are not JSON, a missing or wrong admin key. Every answer is a status the route
declares in /openapi.json, in the error body when it is not 2xx, and never a 500.

The cases come from the OpenAPI document itself: a new route, parameter or body field is
covered without editing this file (a new request body needs one valid example in VALID_BODIES).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from alerts.access.policy import ALERTS_POLICY
from alerts.api.app import create_app
from alerts.delivery.message import NotificationKey
from alerts.delivery.store import QueuedMessage
from alerts.incidents.rules import checklist
from alerts.process import AlertsProcess, build_process, utc_now
from alerts.rules.model import Alert, AlertStatus, fingerprint
from alerts.settings import Settings
from billing_core.access import Public
from devstack.receivers import closed_port
from tests.alerts.core import *  # noqa: F403
from tests.alerts.core import ADMIN_KEY

ADMIN = {"X-Admin-Key": ADMIN_KEY}
LABELS = {"alertname": "BillingEngineDown", "severity": "P0", "instance": "127.0.0.1:8006"}
COMPONENT = "#/components/schemas/"

# One valid body per request schema; the odd bodies are this with one field made odd.
VALID_BODIES: dict[str, dict[str, Any]] = {
    "AckIn": {"by": "alice"},
    "SilenceIn": {"matchers": ["alertname=BillingEngineDown"], "duration": "1h",
                  "comment": "planned failover", "created_by": "alice"},
    "TestEmailIn": {"to": "me@example.com", "requested_by": "alice"},
    "TestSlackIn": {"receiver": "oncall-slack", "requested_by": "alice"},
    "IncidentIn": {"severity": "P1", "title": "Payments failing", "impact": "card payments "
                   "declined for all customers", "commander": "ana", "fingerprints": []},
    "UpdateIn": {"text": "Rolled back the deploy", "status": "monitoring", "kind": "update"},
    "ResolveIn": {"summary": "Rolled back; payments succeed again"},
    "PostmortemIn": {"text": "# Post-mortem\n\nWhat happened."},
}
ODD_IDS = ["0123456789abcdef", "no-such-thing", "a\x00b", "\x1b[31m", "x" * 5000, "9" * 400,
           "é✓😀", "%00", " ", "'; DROP TABLE alert_states; --", "-1"]
ODD_QUERY = ["", "everything", "ACTIVE", "\x00", "9" * 400, "é✓😀", "active\x00"]
ODD_STRINGS = ["", " ", "a\x00b", "\ud800", "\x07bell", "x" * 100_000, "é✓😀\u202e",
               "9999-12-31T23:59:59Z", "99999999999999999999d", "1000000y", "=~(", "(" * 600,
               "(" * 499 + ")" * 499, "x=~" + "(" * 598 + ")" * 598]
ODD_VALUES: list[Any] = [None, 0, -1, 10**400, 1e308, -1e308, True, [], {}, ["x"], {"a": 1},
                         "9999-12-31T23:59:59Z", "9999-12-31T23:59:59", "0001-01-01T00:00:00Z",
                         "0001-01-01T00:00:00+01:00", "not a time", "2026-13-45T25:61:61Z"]
RAW_BODIES = [b"{", b"[]", b"null", b'"text"', b"123", b"1" * 5000, b'{"a": ' + b"1" * 5000 + b"}",
              b"\xff\xfe\x00", b'{"by": "\\ud800"}', b"{}" * 3, b'{"' + b"k" * 10_000 + b'": 1}']


@dataclass
class Case:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str | bytes] = field(default_factory=lambda: dict(ADMIN))
    body: Any = None
    raw: bytes | None = None
    what: str = ""


def resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"][len(COMPONENT):]]
    return schema


def body_schema_name(operation: dict[str, Any]) -> str | None:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if not content:
        return None
    schema = content["schema"]
    for option in [schema, *schema.get("anyOf", [])]:
        if "$ref" in option:
            return str(option["$ref"][len(COMPONENT):])
    return None


def cases_for(path: str, method: str, operation: dict[str, Any], document: dict[str, Any],
              known: dict[str, str]) -> Iterator[Case]:
    parameters = operation.get("parameters", [])
    path_params = [p["name"] for p in parameters if p["in"] == "path"]
    query_params = [p for p in parameters if p["in"] == "query"]
    admin = not isinstance(ALERTS_POLICY.get((method.upper(), path)), Public)

    def fill(values: dict[str, str]) -> str:
        out = path
        for name in path_params:
            out = out.replace("{" + name + "}", quote(values.get(name, known[name]), safe=""))
        return out

    base = fill({})
    schema_name = body_schema_name(operation)
    valid = VALID_BODIES.get(schema_name, {}) if schema_name else None
    yield Case(method, base, body=valid, what="as valid as it gets")
    if admin:
        yield Case(method, base, headers={}, body=valid, what="no credential")
        yield Case(method, base, headers={"Authorization": "Bearer bks_live_" + "x" * 43},
                   body=valid, what="unknown staff key")
        yield Case(method, base, headers={"Authorization": "Basic abc"}, body=valid,
                   what="not a Bearer credential")
        yield Case(method, base, headers={"X-Admin-Key": "nope"}, body=valid, what="wrong key")
        yield Case(method, base, headers={"X-Admin-Key": "é".encode("latin-1") * 300},
                   body=valid, what="odd key")
    for name in path_params:
        for odd in ODD_IDS:
            yield Case(method, fill({name: odd}), body=valid, what=f"{name}={odd[:20]!r}")
    for param in query_params:
        for odd in ODD_QUERY:
            yield Case(method, base, query={param["name"]: odd}, body=valid,
                       what=f"?{param['name']}={odd[:20]!r}")
    if schema_name is None:
        return
    for raw in RAW_BODIES:
        yield Case(method, base, raw=raw, what=f"raw body {raw[:20]!r}")
    properties = resolve({"$ref": COMPONENT + schema_name}, document).get("properties", {})
    for name in properties:
        for odd in [*ODD_STRINGS, *ODD_VALUES]:
            yield Case(method, base, body={**(valid or {}), name: odd},
                       what=f"{name}={str(odd)[:30]!r}")
            if isinstance((valid or {}).get(name), list):
                yield Case(method, base, body={**(valid or {}), name: [odd]},
                           what=f"{name}=[{str(odd)[:30]!r}]")
        missing = {k: v for k, v in (valid or {}).items() if k != name}
        yield Case(method, base, body=missing, what=f"without {name}")
    if schema_name == "SilenceIn":
        yield Case(method, base, body={**(valid or {}), "starts_at": "9999-12-31T23:00:00Z",
                                       "duration": "2h"}, what="ends after the year 9999")
        yield Case(method, base, body={**(valid or {}), "duration": None,
                                       "expires_at": "9999-12-31T23:59:59Z"},
                   what="ends in the year 9999")
        yield Case(method, base, body={**(valid or {}), "matchers": [
            {"name": "x", "op": "=~", "value": "(" * 499 + ")" * 499}]},
                   what="a regex nested as deep as 1000 characters allow")


@pytest.fixture
def process(alerts_db_url: str) -> Iterator[AlertsProcess]:
    settings = Settings(database_url=alerts_db_url, admin_api_key=ADMIN_KEY, environment="test",
                        smtp_port=closed_port(), oncall_email="oncall@example.com",
                        slack_webhook_url=f"http://127.0.0.1:{closed_port()}/services/T/B/x",
                        slack_timeout_seconds=2, smtp_timeout_seconds=2)
    built = build_process(settings, environ={}, scheduled=False)
    yield built
    built.close()


def seed(process: AlertsProcess) -> dict[str, str]:
    """A firing alert with a queued notification, and a silence: ids that exist."""
    now = utc_now()
    alert = Alert(fingerprint=fingerprint(LABELS), alertname="BillingEngineDown", labels=LABELS,
                  annotations={"summary": "down"}, status=AlertStatus.FIRING, active_at=now,
                  last_evaluated_at=now, value=float("nan"), fired_at=now)
    key = NotificationKey(alert.fingerprint, "oncall-email", "firing", f"{alert.episode}/0")
    process.store.apply_round(alerts=[alert], dropped=[], now=now, messages=[QueuedMessage(
        kind="rule", receiver="oncall-email", channel="email", keys=((key, alert.alertname),),
        build_payload=lambda _keys: "{}")])
    from alerts.silences.rules import Matcher

    silence = process.store.add_silence(matchers=[Matcher("instance", "b")], starts_at=now,
                                        expires_at=now + timedelta(hours=1), comment="c",
                                        created_by="me", now=now)
    incident = process.store.declare(title="t", severity="P2", impact="i", commander="ana",
                                     fingerprints=[], by="me", now=now, audit=None,
                                     messages=lambda _incident: [])
    process.store.resolve(incident.id, by="me", now=now, tasks=checklist(now), summary="s",
                          audit=None, messages=[])
    open_one = process.store.declare(title="t", severity="P2", impact="i", commander="ana",
                                     fingerprints=[], by="me", now=now, audit=None,
                                     messages=lambda _incident: [])
    return {"fingerprint": alert.fingerprint, "silence_id": silence.id, "org_id": "org_acme",
            "incident_id": str(open_one.id), "key": "2h-1"}


def test_odd_input_gets_a_declared_answer_and_never_a_500(process: AlertsProcess):
    app = create_app(process, run_scheduler=False)
    document = app.openapi()
    known = seed(process)
    bodies = {body_schema_name(op) for ops in document["paths"].values() for op in ops.values()}
    assert bodies - {None} <= set(VALID_BODIES), "add a valid example of each request body"
    wrong: list[str] = []
    sent = 0
    with TestClient(app, raise_server_exceptions=False) as client:
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                declared = {int(status) for status in operation["responses"]}
                for case in cases_for(path, method, operation, document, known):
                    content = case.raw if case.raw is not None else (
                        json.dumps(case.body).encode() if case.body is not None else None)
                    headers = {**case.headers, "content-type": "application/json"}
                    response = client.request(case.method.upper(), case.path,
                                              params=case.query, headers=headers,
                                              content=content)
                    sent += 1
                    where = f"{method.upper()} {path} [{case.what}]: {response.status_code}"
                    if response.status_code not in declared or response.status_code >= 500 \
                            and response.status_code not in {502, 503}:
                        wrong.append(f"{where} not declared {sorted(declared)}: "
                                     f"{response.text[:200]}")
                    elif response.status_code >= 400 and not {"error", "message", "errors"} <= \
                            set(response.json()):
                        wrong.append(f"{where} is not the error body: {response.text[:200]}")
    assert sent > 500
    assert wrong == []


NUL_ID = "a%00b"  # as a user types it in a URL: the path carries a NUL byte
NUL_ROUTES = [("GET", "/v1/silences/{id}", "silence_id"), ("DELETE", "/v1/silences/{id}",
              "silence_id"), ("POST", "/v1/alerts/{id}/ack", "fingerprint"),
              ("GET", "/debug/alerts/{id}", "org_id")]


@pytest.mark.parametrize("method, template, field", NUL_ROUTES)
def test_a_nul_byte_in_an_id_is_refused_naming_the_field(process: AlertsProcess, method: str,
                                                         template: str, field: str):
    path = template.replace("{id}", NUL_ID)
    with TestClient(create_app(process, run_scheduler=False),
                    raise_server_exceptions=False) as client:
        without = client.request(method, path)
        assert without.status_code == 401, without.text
        assert without.json()["errors"][0]["field"] == "Authorization"
        answer = client.request(method, path, headers=ADMIN)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == field


@pytest.mark.parametrize("body, field", [
    ({"duration": "100000000d"}, "duration"),
    ({"duration": "99999999999999999999d"}, "duration"),
    ({"duration": "2h", "starts_at": "9999-12-31T22:00:00Z"}, "starts_at"),
    ({"duration": None, "expires_at": "9999-12-31T23:59:59Z"}, "expires_at"),
])
def test_a_silence_ending_past_the_maximum_is_refused_naming_the_field(
        process: AlertsProcess, body: dict[str, Any], field: str):
    sent = {**VALID_BODIES["SilenceIn"], **body}
    with TestClient(create_app(process, run_scheduler=False),
                    raise_server_exceptions=False) as client:
        answer = client.post("/v1/silences", json=sent, headers=ADMIN)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == field
