"""Demo data and simulated traffic, so a newcomer's first screen is alive.

Seeds about 50 orgs across the plans, backfills this month's usage (as real slots, through the
same ingest path), then serves the API while simulated instances send heartbeats and simulated
clients call the API. A few orgs start just below 50 %, 90 % and 100 % of their included hours
and cross those thresholds within minutes.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx
import uvicorn

from billing_core.access import Role, Scope
from billing_core.periods import period_containing
from billing_core.plans import PlanCatalog
from billing_engine.api import create_app
from billing_engine.demo.fault import DemoFault
from billing_engine.demo.stripe_events import DemoStripe
from billing_engine.settings import Settings
from billing_engine.usage.rules import (
    BatchPlan,
    Heartbeat,
    InstanceState,
    MeteringPolicy,
    classify,
)
from billing_engine.usage.store import UsageStore
from billing_engine.wiring import Services, build_services

log = logging.getLogger("billing_engine.demo")
DEMO_ACTOR = "demo"  # created_by of the keys the demo makes

_NAMES = (
    "Acme Analytics",
    "Birch Labs",
    "Cobalt Systems",
    "Dune Robotics",
    "Ember Health",
    "Fjord Logistics",
    "Granite Bank",
    "Harbor Media",
    "Iris Genomics",
    "Juniper Retail",
    "Kestrel Air",
    "Lumen Energy",
    "Maple Insurance",
    "Nimbus Games",
    "Onyx Security",
    "Pioneer Foods",
    "Quartz Legal",
    "Raven Studios",
    "Sage Education",
    "Tidal Shipping",
    "Umber Mining",
    "Vertex Motors",
    "Willow Travel",
    "Xenon Chemicals",
    "Yarrow Farms",
    "Zephyr Telecom",
    "Atlas Freight",
    "Beacon Realty",
    "Cedar Clinics",
    "Delta Payroll",
    "Echo Marketing",
    "Falcon Drones",
    "Glacier Water",
    "Helix Pharma",
    "Indigo Fashion",
    "Jade Hotels",
    "Krypton Data",
    "Lotus Wellness",
    "Mosaic Design",
    "Nova Satellites",
    "Orchid Florists",
    "Pulse Fitness",
    "Quill Publishing",
    "Ridge Outdoor",
    "Summit Capital",
    "Terra Solar",
    "Unity Charities",
    "Vista Optics",
    "Wave Audio",
    "Yonder Maps",
)


@dataclass(frozen=True)
class DemoOrg:
    org_id: str
    name: str
    email: str
    plan: str
    target_fraction: float  # of included hours used before the live simulation starts
    live_instances: int


def demo_orgs(count: int, *, seed: int = 7) -> list[DemoOrg]:
    rng = random.Random(seed)
    plans = ["free"] * 20 + ["base_usage"] * 24 + ["team"] * 6
    walkers = {0: 0.48, 1: 0.485, 2: 0.885, 3: 0.89, 4: 0.985, 5: 0.99}  # cross soon
    orgs = []
    for i in range(count):
        name = _NAMES[i % len(_NAMES)] + ("" if i < len(_NAMES) else f" {i // len(_NAMES) + 1}")
        slug = name.lower().replace(" ", "-")
        plan = plans[(i * 7) % len(plans)] if i >= 6 else ("free", "base_usage")[i % 2]
        fraction = walkers.get(i)
        if fraction is None:
            fraction = rng.choice([0.05, 0.2, 0.35, 0.6, 0.75, 0.95, 1.15, 1.4])
            if plan == "team":
                fraction = min(fraction, 0.4)  # keeps the seeded volume modest
        orgs.append(
            DemoOrg(
                org_id=f"org_{slug}",
                name=name,
                email=f"billing@{slug}.example",
                plan=plan,
                target_fraction=fraction,
                live_instances=3 if i in walkers else (rng.choice([0, 0, 1, 2]) if i < 30 else 0),
            )
        )
    return orgs


def backfill(store: UsageStore, catalog: PlanCatalog, org: DemoOrg, *, now: datetime) -> int:
    """Spread the org's target usage over this month's past days, working hours first."""
    period = period_containing(now)
    if store.period_minutes(org.org_id, period) > 0:
        return 0  # already seeded on an earlier run: never inflate
    plan = catalog.plans[org.plan]
    target = int(plan.included_minutes * org.target_fraction)
    start = period.start
    latest = now - timedelta(minutes=10)
    days = max(1, math.ceil((latest - start).total_seconds() / 86400))
    per_day = math.ceil(target / days)
    heartbeats: list[Heartbeat] = []
    for d in range(days):
        remaining = min(per_day, target - d * per_day)
        day_start = start + timedelta(days=d)
        window = int((min(day_start + timedelta(days=1), latest) - day_start).total_seconds() // 60)
        if remaining <= 0 or window <= 0:
            break
        # Working hours (08:00 on, ten hours an instance) when the day has room for them.
        offset = 8 * 60 if window >= 18 * 60 else 0
        span = min(10 * 60, window - offset)
        instances = max(1, math.ceil(remaining / span))
        for i in range(remaining):
            ts = day_start + timedelta(minutes=offset + i // instances, seconds=5)
            heartbeats.append(
                Heartbeat(
                    f"{org.org_id}-bf{d}-{i % instances}", org.org_id, ts, InstanceState.RUNNING
                )
            )
    total = 0
    policy = MeteringPolicy()
    for chunk in range(0, len(heartbeats), 5000):
        part = heartbeats[chunk : chunk + 5000]

        def make_plan(owners: dict[str, str], part: list[Heartbeat] = part) -> BatchPlan:
            return classify(
                part, now=now, policy=policy, known_orgs={org.org_id}, instance_owners=owners
            )

        _plan, outcome = store.ingest((h.instance_id for h in part), make_plan)
        total += outcome.new_slots
    return total


def seed(services: Services, org_count: int) -> list[DemoOrg]:
    """Create the demo orgs through the customer directory and backfill their month's usage
    straight through the usage store (the backfill predates the clock-skew policy's window)."""
    now = datetime.now(UTC)
    orgs = demo_orgs(org_count)
    started = time.monotonic()
    slots = 0
    for org in orgs:
        services.customers.upsert(org_id=org.org_id, name=org.name, email=org.email, plan=org.plan)
        slots += backfill(services.usage.store, services.catalog, org, now=now)
    log.info(
        "demo seeded",
        extra={"orgs": len(orgs), "slots": slots, "seconds": round(time.monotonic() - started, 1)},
    )
    return orgs


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def demo_keys(services: Services, orgs: list[DemoOrg]) -> tuple[dict[str, str], str]:
    """A fresh org key per demo org (heartbeats and its own billing) and a support staff key,
    made at every start; the keys of an earlier run are revoked first, so none piles up."""
    access = services.access
    for org in orgs:
        for key in access.org_keys(org.org_id):
            if key.created_by == DEMO_ACTOR and key.revoked_at is None:
                access.revoke(key.id, kind="org", org_id=org.org_id)
    for key in access.staff_keys():
        if key.created_by == DEMO_ACTOR and key.revoked_at is None:
            access.revoke(key.id, kind="staff")
    org_keys = {
        org.org_id: access.create_org_key(
            org_id=org.org_id, name="demo fleet", scopes=[Scope.usage_write, Scope.billing_read],
            expires_at=None, created_by=DEMO_ACTOR,
        ).token
        for org in orgs
    }
    support = access.create_staff_key(name="demo-support", role=Role.support, expires_at=None,
                                      created_by=DEMO_ACTOR)
    log.info("demo keys created", extra={"org_keys": len(org_keys)})
    return org_keys, support.token


class Simulator:
    """Live instances (a heartbeat every 15 s each) and API clients, against the running server."""

    def __init__(
        self,
        base_url: str,
        orgs: list[DemoOrg],
        admin_key: str,
        *,
        org_keys: dict[str, str],
        support_key: str,
        catalog: PlanCatalog | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        self.base_url = base_url
        self.orgs = orgs
        self.admin_key = admin_key
        self.org_keys = org_keys
        self.support_key = support_key
        self.catalog = catalog
        self.webhook_secret = webhook_secret
        self.stop = threading.Event()
        self.rng = random.Random(11)

    def start(self) -> None:
        targets = [self._instances, self._clients]
        if self.catalog is not None and self.webhook_secret:
            targets.append(self._payments)
        for target in targets:
            threading.Thread(target=target, daemon=True, name=target.__name__).start()

    def _wait_up(self, client: httpx.Client) -> None:
        while not self.stop.is_set():
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

    def _instances(self) -> None:
        """Each org's fleet sends one batch every 15 s with that org's own key."""
        fleets = {o.org_id: [f"{o.org_id}-i{n}" for n in range(o.live_instances)]
                  for o in self.orgs if o.live_instances}
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            self._wait_up(client)
            while not self.stop.wait(15):
                now = datetime.now(UTC)
                skewed = self.rng.choice(list(fleets)) if fleets else None
                for org_id, instances in fleets.items():
                    batch = [
                        {
                            "instance_id": iid,
                            "org_id": org_id,
                            "ts": now.isoformat(),
                            "state": "idle" if self.rng.random() < 0.1 else "running",
                        }
                        for iid in instances
                    ]
                    if org_id == skewed and self.rng.random() < 0.3:
                        # An agent whose clock runs ahead, to keep rejections visible.
                        batch.append({"instance_id": f"{org_id}-skewed", "org_id": org_id,
                                      "ts": (now + timedelta(minutes=10)).isoformat(),
                                      "state": "running"})
                    try:
                        client.post("/v1/heartbeats", json={"heartbeats": batch},
                                    headers=bearer(self.org_keys[org_id]))
                    except httpx.HTTPError as exc:
                        log.warning("demo heartbeat post failed", extra={"reason": str(exc)})

    def _payments(self) -> None:
        """Paid orgs subscribe through Stripe webhooks, then invoices are paid, fail, refund."""
        assert self.catalog is not None and self.webhook_secret
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            self._wait_up(client)
            stripe = DemoStripe(client, self.webhook_secret)
            customers = []
            try:
                for org in self.orgs:
                    plan = self.catalog.plans[org.plan]
                    if plan.stripe_price_id:
                        customers.append(
                            stripe.subscribe(org.org_id, plan.stripe_price_id, plan.base_fee_cents)
                        )
                for _ in range(3 * len(customers)):  # a book with some history
                    stripe.tick(customers)
            except httpx.HTTPError as exc:
                log.warning("demo stripe deliveries failed", extra={"reason": str(exc)})
            while not self.stop.wait(self.rng.uniform(4, 12)):
                try:
                    stripe.tick(customers)
                except httpx.HTTPError as exc:
                    log.warning("demo stripe delivery failed", extra={"reason": str(exc)})

    def _clients(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            self._wait_up(client)
            while not self.stop.wait(self.rng.uniform(0.2, 0.6)):
                org = self.rng.choice(self.orgs)
                roll = self.rng.random()
                # A customer's own CLI reads with its org key; support reads with a staff key.
                own, support = bearer(self.org_keys[org.org_id]), bearer(self.support_key)
                try:
                    if roll < 0.25:
                        client.get("/v1/billing", params={"org_id": org.org_id}, headers=own)
                    elif roll < 0.45:
                        client.get("/v1/billing", params={"org_id": org.org_id}, headers=support)
                    elif roll < 0.65:
                        client.get(f"/v1/usage/{org.org_id}/daily", params={"days": 30},
                                   headers=own)
                    elif roll < 0.8:
                        client.get("/v1/customers", params={"q": org.name[:3]}, headers=support)
                    elif roll < 0.9:
                        client.get(f"/v1/instances/{org.org_id}-i0", headers=support)
                    elif roll < 0.95:
                        client.get("/v1/billing", params={"org_id": "org_nobody"},
                                   headers=support)
                    elif roll < 0.98:
                        client.get(f"/v1/usage/{org.org_id}/daily", params={"days": 0},
                                   headers=own)
                    else:
                        client.get(
                            "/debug/usage/" + org.org_id + "/daily",
                            headers={"X-Admin-Key": self.admin_key},
                        )
                except httpx.HTTPError:
                    pass


def run_demo(settings: Settings, *, host: str, port: int, org_count: int) -> None:
    if not settings.stripe_webhook_secret:
        # The demo signs its own Stripe deliveries; a fresh secret per run, never a fixed one.
        settings = replace(settings, stripe_webhook_secret="whsec_demo_" + secrets.token_hex(16))
    services = build_services(settings)
    orgs = seed(services, org_count)
    org_keys, support_key = demo_keys(services, orgs)
    fault = DemoFault(services.clock)
    app = create_app(settings, services=services, demo_fault=fault)
    url_host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
    simulator = Simulator(
        f"http://{url_host}:{port}",
        orgs,
        settings.admin_api_key,
        org_keys=org_keys,
        support_key=support_key,
        catalog=services.catalog,
        webhook_secret=settings.stripe_webhook_secret,
    )
    simulator.start()
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
    try:
        uvicorn.Server(config).run()
    finally:
        simulator.stop.set()
        services.database.dispose()
