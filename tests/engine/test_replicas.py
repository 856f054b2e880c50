"""Three engine replicas behind a real HAProxy on one PostgreSQL: housekeeping jobs run once
across them, concurrent overlapping retried batches through the balancer bill exactly, and a
replica killed mid-stream loses nothing."""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, pool, text

from billing_engine.db import migrate
from devstack.processes import EngineProcess
from devstack.proxies import HAProxy
from devstack.servers import scratch_database, wait_for
from tests.support.builders import engine_org_key

pytestmark = [pytest.mark.processes, pytest.mark.xdist_group("test_replicas")]

ADMIN = "test-admin-key-0123456789"
STAFF = {"X-Admin-Key": ADMIN}
# Housekeeping rounds every 0.25 s: close_period has 1 s slots, the meter flush 1 s slots.
FAST_HOUSEKEEPING = {"HOUSEKEEPING_INTERVAL_SECONDS": "0.25", "METER_FLUSH_INTERVAL_SECONDS": "1",
                     "LOG_LEVEL": "WARNING"}


@dataclass
class Fleet:
    database_url: str
    engines: list[EngineProcess]
    balancer: HAProxy
    started: float

    @property
    def url(self) -> str:
        return self.balancer.url


@pytest.fixture(scope="module")
def fleet(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    archive = tmp_path_factory.mktemp("usage-archive")
    with scratch_database(pg_server_url, prefix="billing_replicas", setup=migrate) as url:
        engines = [EngineProcess(url, admin_key=ADMIN, extra_env={
            **FAST_HOUSEKEEPING, "USAGE_ARCHIVE_DIR": str(archive)}) for _ in range(3)]
        balancer = HAProxy(backends=[e.port for e in engines])
        started = time.time()
        try:
            for engine in engines:
                engine.start(wait_ready=False)
            for engine in engines:
                wait_for(engine.ready, timeout=90, what=f"engine on {engine.url}")
            balancer.start()
            wait_for(lambda: httpx.get(f"{balancer.url}/ready", timeout=2).status_code == 200,
                     timeout=30, what="haproxy to find a ready engine")
            yield Fleet(url, engines, balancer, started)
        finally:
            balancer.stop()
            for engine in engines:
                engine.stop()


def job_runs(engine: EngineProcess) -> Counter[str]:
    """housekeeping_job_runs_total{outcome="ok"} of one replica, by job."""
    runs: Counter[str] = Counter()
    body = httpx.get(f"{engine.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(body):
        if family.name == "housekeeping_job_runs":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels["outcome"] == "ok":
                    runs[sample.labels["job"]] += int(sample.value)
    return runs


def heartbeat_posts(engine: EngineProcess) -> float:
    body = httpx.get(f"{engine.url}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(body)
               if family.name == "http_requests" for sample in family.samples
               if sample.name == "http_requests_total"
               and sample.labels.get("endpoint") == "/v1/heartbeats")


def claimed_slots(url: str, *, finished_only: bool = False) -> dict[str, list[tuple[int, str]]]:
    engine = create_engine(url, poolclass=pool.NullPool)
    query = text("SELECT job, slot, claimed_by FROM housekeeping_runs "
                 "WHERE finished_at IS NOT NULL OR NOT :finished_only ORDER BY job, slot")
    try:
        with engine.connect() as conn:
            rows = conn.execute(query, {"finished_only": finished_only}).all()
    finally:
        engine.dispose()
    found: dict[str, list[tuple[int, str]]] = {}
    for row in rows:
        found.setdefault(row.job, []).append((int(row.slot), row.claimed_by))
    return found


def test_housekeeping_jobs_run_once_across_three_replicas(fleet):
    time.sleep(max(0.0, 12 - (time.time() - fleet.started)))  # several seconds of rounds
    # A loaded machine runs fewer rounds in that time: wait (bounded) for six period closes.
    wait_for(lambda: sum(runs["close_period"] for runs in map(job_runs, fleet.engines)) >= 6,
             timeout=60, what="six runs of close_period across the replicas")
    # The replicas keep running: executions are counted between two reads of the claims.
    finished = claimed_slots(fleet.database_url, finished_only=True)
    per_replica = [job_runs(engine) for engine in fleet.engines]
    slots = claimed_slots(fleet.database_url)
    elapsed = time.time() - fleet.started
    for job, every in (("close_period", 1), ("meter_flush", 1), ("usage_retention", 3600),
                       ("payment_retention", 3600), ("forget_old_job_claims", 3600)):
        executions = sum(runs[job] for runs in per_replica)
        claimed = slots.get(job, [])
        assert len(claimed) == len({slot for slot, _ in claimed}), job  # no slot twice
        # Every execution claimed its slot (the meter flush's slots are never "finished").
        low = len(finished.get(job, [])) if job != "meter_flush" else 0
        assert low <= executions <= len(claimed), (job, low, executions, len(claimed))
        # Three replicas running every 0.25 s would run a 1 s job 12 times a second; once per
        # slot is at most one a second since the first replica started.
        assert 1 <= executions <= elapsed / every + 1, (job, executions)
    assert sum(runs["close_period"] for runs in per_replica) >= 6
    assert sum(runs["usage_retention"] for runs in per_replica) == 1
    # Slots go to whichever replica asks first: the work is shared, not pinned to one.
    assert len({holder for _slot, holder in slots["close_period"]}) >= 2


def make_org(fleet: Fleet) -> tuple[str, dict[str, str]]:
    org = f"org_{uuid.uuid4().hex[:8]}"
    answer = httpx.put(f"{fleet.url}/admin/orgs/{org}", headers=STAFF, timeout=30,
                       json={"name": org, "email": f"{org}@x.example", "plan": "team"})
    assert answer.status_code == 201, answer.text
    return org, engine_org_key(fleet.url, ADMIN, org)


def heartbeats(org: str, instances: int, minutes: int) -> list[dict[str, str]]:
    now = datetime.now(UTC).replace(second=30, microsecond=0) - timedelta(minutes=1)
    first = max(now - timedelta(minutes=minutes), now.replace(day=1, hour=0, minute=0))
    return [{"instance_id": f"{org}-i{i}", "org_id": org, "state": "running",
             "ts": (first + timedelta(minutes=m, seconds=s)).isoformat()}
            for i in range(instances) for m in range(minutes) for s in (0, 15)
            if first + timedelta(minutes=m) <= now]


def expected_minutes(sent: list[dict[str, str]]) -> int:
    return len({(h["instance_id"], h["ts"][:16]) for h in sent})


class Sender:
    """A fleet's client: sends each batch until a 2xx, retrying any error or 5xx as a fleet
    does (a batch is safe to resend: a minute counts once)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.accepted = 0
        self.failures = 0
        self._lock = threading.Lock()

    def send(self, batch: list[dict[str, str]], key: dict[str, str]) -> None:
        with httpx.Client(base_url=self.fleet.url, timeout=30) as client:
            for _attempt in range(60):
                try:
                    answer = client.post("/v1/heartbeats", json={"heartbeats": batch},
                                         headers=key)
                except httpx.HTTPError:
                    answer = None
                if answer is not None and answer.status_code == 200:
                    with self._lock:
                        self.accepted += int(answer.json()["accepted"])
                    return
                assert answer is None or answer.status_code >= 500, answer.text
                with self._lock:
                    self.failures += 1
                time.sleep(0.2)
        raise AssertionError("a batch was never acknowledged")


def billed(fleet: Fleet, org: str) -> tuple[int, int, bool]:
    card = httpx.get(f"{fleet.url}/v1/billing", params={"org_id": org}, headers=STAFF,
                     timeout=30).json()
    days = httpx.get(f"{fleet.url}/v1/usage/{org}/daily", params={"days": 40}, headers=STAFF,
                     timeout=30).json()["days"]
    drift = httpx.get(f"{fleet.url}/debug/usage/{org}/daily", headers=STAFF, timeout=30).json()
    return card["usage"]["used_minutes"], sum(d["minutes"] for d in days), drift["in_sync"]


def test_overlapping_retried_batches_through_the_balancer_bill_exactly(fleet):
    rng = random.Random(3)
    orgs = [make_org(fleet) for _ in range(3)]
    work: list[tuple[list[dict[str, str]], dict[str, str]]] = []
    sent: dict[str, list[dict[str, str]]] = {}
    for org, key in orgs:
        beats = heartbeats(org, instances=30, minutes=90)
        sent[org] = beats
        for _ in range(30):  # overlapping batches: each beat in about five of them
            work.append((rng.sample(beats, 800), key))
    retried = rng.sample(work, 20)  # client retries of batches that did get through
    work += retried
    rng.shuffle(work)
    sender = Sender(fleet)
    threads = [threading.Thread(target=lambda part=work[n::8]: [sender.send(*w) for w in part])
               for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = 0
    for org, _key in orgs:
        covered = {(h["instance_id"], h["ts"][:16]) for batch, _k in work
                   for h in batch if h["org_id"] == org}
        assert billed(fleet, org) == (len(covered), len(covered), True)
        total += len(covered)
    # Each minute acknowledged as new once at most (a batch stored by a replica that failed to
    # answer is acknowledged as duplicate when resent); with no failure, exactly once.
    assert sender.accepted == total if sender.failures == 0 else sender.accepted <= total


def test_a_replica_killed_mid_stream_loses_nothing(fleet):
    org, key = make_org(fleet)
    beats = heartbeats(org, instances=40, minutes=120)
    batches = [beats[n:n + 300] for n in range(0, len(beats), 300)]
    sender = Sender(fleet)

    def stream(part: list[list[dict[str, str]]]) -> None:
        for batch in part:
            sender.send(batch, key)

    threads = [threading.Thread(target=stream, args=(batches[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    wait_for(lambda: sender.accepted >= expected_minutes(beats) // 4, timeout=120,
             interval=0.05, what="a quarter of the stream to be acknowledged")
    victim = fleet.engines[1]
    assert heartbeat_posts(victim) > 0  # it was taking its share of the stream
    victim.kill(signal.SIGKILL)
    for thread in threads:
        thread.join()
    assert not victim.running()
    assert billed(fleet, org) == (expected_minutes(beats), expected_minutes(beats), True)
    # A batch the victim committed but could not answer was resent and acknowledged as
    # duplicate: acknowledged-new never exceeds what was billed.
    assert sender.accepted <= expected_minutes(beats)
