from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient


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
