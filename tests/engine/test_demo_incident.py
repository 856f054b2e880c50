"""The demo's scripted incident end to end, as a newcomer running `make run` sees it: the fault
makes the availability SLO burn, the page fires and lands in the mail sink, the unanswered page
escalates, the simulated on-call engineer acknowledges it and declares an incident from it, and
the post-mortem draft measures the requests that failed in the real Prometheus.

The stack is `make run`'s (demo engine, Prometheus with the shipped rules, alerts process, mail
sink), with one-second scrapes and rounds, the fault started at once through the API, and an
on-call policy whose P1 response time is 3 s so the escalation comes quickly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest

from devstack.responder import DemoResponder
from devstack.servers import wait_for
from devstack.stack import Stack

pytestmark = pytest.mark.processes

ADMIN = "demo-incident-admin-key-0123456789"
BURN_ALERTS = ("BillingAvailabilityFastBurn", "BillingAvailabilitySlowBurn")
POLICY = (Path(__file__).resolve().parents[2] / "devstack" / "oncall.demo.yml").read_text()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("demo-incident")
    policy = base / "oncall.yml"
    policy.write_text(POLICY.replace("P1: {response: 2m", "P1: {response: 3s"))
    stack = Stack(f"sqlite:///{base / 'billing.db'}", admin_key=ADMIN, demo=True,
                  parts=("engine", "mailsink", "prometheus", "alerts"), mail_dir=base / "mail",
                  alerts_env={"EVALUATION_INTERVAL_SECONDS": "1", "ONCALL_FILE": str(policy),
                              "BUDGET_INTERVAL_SECONDS": "3600"})
    with stack:
        yield stack


def test_the_scripted_incident_pages_escalates_and_is_run_as_an_incident(demo: Stack):
    engine, alerts = demo.url("engine"), demo.url("alerts")
    admin = {"X-Admin-Key": ADMIN}
    wait_for(lambda: demo.prometheus is not None and bool(demo.prometheus.query(
        'up{job="billing-engine"} == 1')), timeout=60, what="Prometheus scraping the engine")
    started = httpx.post(f"{engine}/admin/demo/fault", headers=admin, json={"minutes": 10})
    assert started.status_code == 200 and started.json()["active"]["why"] == "admin"

    mail_dir = demo.mailsink.directory if demo.mailsink else None
    assert mail_dir is not None

    def subjects() -> list[str]:
        return [" ".join(str(message_from_bytes(p.read_bytes())["Subject"]).split())
                for p in Path(mail_dir).glob("*.eml")]

    # One page per SLO: whichever of the availability burn alerts crosses first pages (on a
    # fresh Prometheus the 6 h and 1 h windows hold the same minutes, so the slow burn's lower
    # threshold may be crossed a round before the fast one's); the other is held back.
    def paged() -> dict | None:
        listed = httpx.get(f"{alerts}/v1/alerts", headers=admin, timeout=10).json()["alerts"]
        sent = subjects()
        return next((a for a in listed if a["labels"].get("slo") == "availability"
                     and a["alertname"] in BURN_ALERTS and a["state"] == "firing"
                     and any(f"FIRING {a['alertname']}" in s for s in sent)), None)

    first = wait_for(paged, timeout=240, what="an availability burn page in the mail sink")

    def page() -> dict | None:
        listed = httpx.get(f"{alerts}/v1/alerts", headers=admin, timeout=10).json()["alerts"]
        return next((a for a in listed if a["fingerprint"] == first["fingerprint"]), None)

    responder = DemoResponder(engine, alerts, ADMIN, poll_seconds=1)
    with httpx.Client(timeout=10) as client:
        def incident_declared() -> bool:
            responder.step(client)
            return any(first["fingerprint"] in f for f in responder.open_incidents.values())

        wait_for(incident_declared, timeout=60, what="the responder to take the page")
    taken = page()
    assert taken is not None and taken["acked"]
    steps = taken["escalation"]["steps"]
    assert [s["rotation"] for s in steps[:2]] == ["primary", "secondary"]
    assert any(f"{taken['alertname']} unacknowledged" in s and "escalated to you (secondary)"
               in s for s in subjects())

    [incident_id] = [i for i, f in responder.open_incidents.items() if taken["fingerprint"] in f]
    incident = httpx.get(f"{alerts}/v1/incidents/{incident_id}", headers=admin).json()
    assert incident["fingerprints"] == [taken["fingerprint"]]
    kinds = [e["kind"] for e in incident["timeline"]]
    assert {"alert fired", "escalated", "acknowledged", "declared", "update"} <= set(kinds)
    time.sleep(2)  # a couple more scrapes of the failing requests
    draft = httpx.get(f"{alerts}/v1/incidents/{incident_id}/postmortem",
                      headers=admin).json()["markdown"]
    failed_line = next(line for line in draft.splitlines() if "failed (5xx)" in line)
    failed = int(failed_line.split("failed (5xx): ")[1].split(" ")[0].replace(",", ""))
    assert failed > 0, failed_line
    assert "Not measured" not in draft
