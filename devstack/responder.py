"""`make run`'s simulated on-call engineer, so the demo's scripted incident runs end to end.

When a page (P0 or P1) fires, it lets the first escalation happen (so a newcomer sees one), then,
as the person holding the primary rotation would, acknowledges it, declares an incident from it,
posts an update, and resolves the incident once every alert it was declared from has resolved:
the post-mortem is then drafted from what happened. It works only through the alerts API, with
an operator staff key of its own made through the engine's API, like any other caller.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("devstack.responder")
PAGE_SEVERITIES = ("P0", "P1")


@dataclass
class DemoResponder:
    engine_url: str
    alerts_url: str
    admin_key: str
    poll_seconds: float = 5.0
    stop: threading.Event = field(default_factory=threading.Event)
    open_incidents: dict[int, set[str]] = field(default_factory=dict)  # id -> fingerprints
    _key: str = field(default="", repr=False)

    def start(self) -> DemoResponder:
        threading.Thread(target=self._run, name="demo-responder", daemon=True).start()
        return self

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.wait(self.poll_seconds):
                try:
                    self.step(client)
                except (httpx.HTTPError, KeyError, ValueError) as error:
                    log.debug("demo responder will try again", extra={"reason": str(error)})

    def _headers(self, client: httpx.Client) -> dict[str, str]:
        if not self._key:
            made = client.post(f"{self.engine_url}/admin/staff-keys",
                               headers={"X-Admin-Key": self.admin_key},
                               json={"name": f"demo-responder-{threading.get_ident() % 10000}",
                                     "role": "operator"})
            made.raise_for_status()
            self._key = made.json()["key"]
        return {"Authorization": f"Bearer {self._key}"}

    def step(self, client: httpx.Client) -> None:
        headers = self._headers(client)
        alerts = client.get(f"{self.alerts_url}/v1/alerts", params={"state": "active"},
                            headers=headers).json()["alerts"]
        firing = {a["fingerprint"]: a for a in alerts if a["state"] == "firing"}
        declared = set().union(*self.open_incidents.values()) if self.open_incidents else set()
        for fingerprint, alert in firing.items():
            if (alert["severity"] not in PAGE_SEVERITIES or alert["acked"]
                    or fingerprint in declared):
                continue
            steps = (alert.get("escalation") or {}).get("steps", [])
            if len(steps) < 2:
                continue  # let the secondary be told first: the demo shows an escalation
            self._take(client, headers, alert, steps[0]["person"])
        for incident_id, fingerprints in list(self.open_incidents.items()):
            if not fingerprints & set(firing):
                client.post(f"{self.alerts_url}/v1/incidents/{incident_id}/resolve",
                            headers=headers, json={"summary": "The demo's scripted fault "
                                                              "ended; the alerts resolved."})
                del self.open_incidents[incident_id]

    def _take(self, client: httpx.Client, headers: dict[str, str], alert: dict[str, Any],
              primary: str) -> None:
        fingerprint = alert["fingerprint"]
        client.post(f"{self.alerts_url}/v1/alerts/{fingerprint}/ack", headers=headers)
        declared = client.post(f"{self.alerts_url}/v1/incidents", headers=headers, json={
            "severity": alert["severity"], "title": alert["annotations"].get(
                "summary", alert["alertname"])[:200],
            "impact": "API reads failing or slow for customers (the demo's scripted fault)",
            "commander": primary, "fingerprints": [fingerprint]})
        declared.raise_for_status()
        incident = declared.json()
        self.open_incidents[int(incident["id"])] = {fingerprint}
        client.post(f"{self.alerts_url}/v1/incidents/{incident['id']}/updates", headers=headers,
                    json={"text": "Errors and latency on the API since a few minutes; watching "
                                  "the SLO page and the engine's logs.",
                          "status": "identified"})
        log.info("demo responder took a page", extra={"alertname": alert["alertname"],
                                                      "incident": incident["key"]})
