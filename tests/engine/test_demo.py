"""`python -m billing_engine demo`, as `make run` starts it: the console has live data to show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devstack.servers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "demo-test-admin-key-0123"
ADMIN_HEADERS = {"X-Admin-Key": ADMIN}  # an admin may read what support reads


def sample(metrics_text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


@pytest.mark.processes
def test_demo_subscribes_paid_orgs_and_records_payments_through_signed_webhooks(tmp_path):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}", "APP_ENV": "test",
           "ADMIN_API_KEY": ADMIN, "LOG_LEVEL": "WARNING",
           "STRIPE_WEBHOOK_SECRET": "", "REDIS_URL": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "billing_engine", "demo", "--port", str(port), "--orgs", "8"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def payments_recorded() -> str | None:
            try:
                text = httpx.get(f"{base}/metrics", timeout=2).text
            except httpx.HTTPError:
                return None
            return text if sample(text, "payments_total") >= 6 else None

        text = wait_for(payments_recorded, timeout=90, what="the demo's first payments")
        assert sample(text, "stripe_webhook_signature_failures_total") == 0
        assert sample(text, 'stripe_webhook_events_total{outcome="failed"') == 0
        # A paid-plan demo org is subscribed through Stripe's checkout and subscription events.
        billing = httpx.get(f"{base}/v1/billing", params={"org_id": "org_birch-labs"},
                            headers=ADMIN_HEADERS).json()
        assert billing["org"]["plan"] == "base_usage"
        assert billing["org"]["stripe_customer_id"].startswith("cus_")
        assert billing["subscription"]["status"] == "active"
        payments = httpx.get(f"{base}/v1/payments", params={"org_id": "org_birch-labs"},
                             headers=ADMIN_HEADERS).json()
        assert payments["payments"] and all(p["amount_cents"] >= 2000
                                            for p in payments["payments"])
        # A free-plan org has no Stripe price: no subscription, no payments.
        free = httpx.get(f"{base}/v1/payments", params={"org_id": "org_acme-analytics"},
                         headers=ADMIN_HEADERS).json()
        assert free["payments"] == []
        # The simulated fleet sends with the org keys the demo made at start: minutes arrive.
        keys = httpx.get(f"{base}/admin/orgs/org_birch-labs/keys", headers=ADMIN_HEADERS).json()
        assert [k["created_by"] for k in keys["keys"]] == ["demo"]

        def heartbeats_ingested() -> str | None:
            text = httpx.get(f"{base}/metrics", timeout=2).text
            return text if sample(text, "heartbeats_ingested_total") > 0 else None

        text = wait_for(heartbeats_ingested, timeout=60, what="the demo fleet's heartbeats")
        assert sample(text, "auth_failures_total") == 0
        assert sample(text, "access_denied_total") == 0
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "Traceback" not in stderr, stderr[-2000:]
