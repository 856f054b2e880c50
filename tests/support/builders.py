from __future__ import annotations

import uuid
import weakref
from datetime import datetime
from typing import Any

import httpx
from fastapi.testclient import TestClient

ADMIN_KEY = "test-admin-key-0123456789"
# The `admin` fixture's headers, for module helpers that take no fixtures.
ADMIN_HEADERS = {"X-Admin-Key": ADMIN_KEY}


def new_org(client: TestClient, admin: dict[str, str], *, plan: str = "base_usage",
            name: str | None = None, org_id: str | None = None) -> str:
    org_id = org_id or f"org_{uuid.uuid4().hex[:10]}"
    response = client.put(
        f"/admin/orgs/{org_id}",
        json={"name": name or f"Org {org_id}", "email": f"billing@{org_id}.example",
              "plan": plan},
        headers=admin,
    )
    assert response.status_code in (200, 201), response.text
    return org_id


def hb(instance_id: str, org_id: str, ts: datetime, state: str = "running") -> dict[str, Any]:
    return {"instance_id": instance_id, "org_id": org_id, "ts": ts.isoformat(), "state": state}


# Org keys minted per app, so a test's helpers reuse one key per org and scopes.
_KEYS: weakref.WeakKeyDictionary[Any, dict[tuple[str, tuple[str, ...]], str]] = (
    weakref.WeakKeyDictionary()
)
ALL_SCOPES = ("usage:write", "billing:read")


def create_key(client: TestClient, admin: dict[str, str], org_id: str,
               scopes: tuple[str, ...] = ALL_SCOPES, **extra: Any) -> dict[str, Any]:
    """A new org key, as the admin API answers it (`key` holds the secret)."""
    response = client.post(f"/admin/orgs/{org_id}/keys", headers=admin,
                           json={"name": f"test key {len(scopes)}", "scopes": list(scopes),
                                 **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def org_headers(client: TestClient, admin: dict[str, str], org_id: str,
                scopes: tuple[str, ...] = ALL_SCOPES) -> dict[str, str]:
    """`Authorization` for a key of `org_id` with `scopes`, created on first use."""
    keys = _KEYS.setdefault(client.app, {})
    if (org_id, scopes) not in keys:
        keys[(org_id, scopes)] = create_key(client, admin, org_id, scopes)["key"]
    return bearer(keys[(org_id, scopes)])


def post_heartbeats(client: TestClient, admin: dict[str, str], items: list[dict[str, Any]],
                    **kwargs: Any) -> Any:
    """POST /v1/heartbeats as the fleet of the first item's org (or `org_id=`), with its key."""
    org_id = kwargs.pop("org_id", None) or items[0]["org_id"]
    headers = {**org_headers(client, admin, org_id), **kwargs.pop("headers", {})}
    return client.post("/v1/heartbeats", json={"heartbeats": items}, headers=headers, **kwargs)


def engine_org_key(engine_url: str, admin_key: str, org_id: str,
                   scopes: tuple[str, ...] = ALL_SCOPES) -> dict[str, str]:
    """For tests against an engine process: Authorization headers of a new key of `org_id`."""
    response = httpx.post(f"{engine_url}/admin/orgs/{org_id}/keys",
                          headers={"X-Admin-Key": admin_key}, timeout=30,
                          json={"name": "test fleet", "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    return bearer(response.json()["key"])


def counted(client: TestClient, name: str, labels: dict[str, str] | None = None) -> float:
    """A sample of the in-process engine's metrics; 0 for a series not written yet."""
    registry = client.app.state.services.metrics.registry  # type: ignore[attr-defined]
    value = registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else float(value)
