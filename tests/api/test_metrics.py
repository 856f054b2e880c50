"""/metrics: valid exposition, the SLO bucket, bounded labels."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta

import pytest

from tests.support.builders import hb, new_org, post_heartbeats


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is needed: apt-get install prometheus (make test installs it)")
    return path


def exercise(client, admin, clock) -> str:
    org = new_org(client, admin)
    post_heartbeats(client, admin, [hb("i1", org, clock())])
    client.get("/v1/billing", params={"org_id": org}, headers=admin)
    client.get("/v1/billing", params={"org_id": "org_nope"}, headers=admin)
    client.get("/v1/usage/" + org + "/daily", headers=admin)
    client.get("/no/such/route")
    return org


def test_metrics_pass_promtool_check_metrics(client, admin, clock):
    exercise(client, admin, clock)
    text = client.get("/metrics").text
    result = subprocess.run([promtool(), "check", "metrics"], input=text, text=True,
                            capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_request_metrics_use_route_templates_never_ids(client, admin, clock):
    org = exercise(client, admin, clock)
    text = client.get("/metrics").text
    assert org not in text and "org_nope" not in text and "i1" not in text
    assert 'endpoint="/v1/usage/{org_id}/daily"' in text
    assert 'endpoint="unmatched",method="GET",status="404"' in text
    assert 'endpoint="/v1/billing",method="GET",status="404"' in text


def test_latency_histogram_has_a_bucket_at_the_150ms_slo(admin, client, metrics):
    client.get("/v1/plans", headers=admin)
    value = metrics.registry.get_sample_value(
        "http_request_duration_seconds_bucket",
        {"method": "GET", "endpoint": "/v1/plans", "le": "0.15"},
    )
    # The bucket exists (how fast this one request was depends on the machine's load).
    assert value is not None
    assert metrics.registry.get_sample_value(
        "http_request_duration_seconds_count", {"method": "GET", "endpoint": "/v1/plans"}) == 1


def test_probes_and_scrapes_stay_out_of_the_slo_counts(client, metrics):
    for path in ("/healthz", "/live", "/ready", "/metrics"):
        client.get(path)
    text = client.get("/metrics").text
    assert 'endpoint="/healthz"' not in text and 'endpoint="/metrics"' not in text


def test_threshold_gauge_counts_orgs_at_or_over_each_threshold(client, admin, clock, metrics):
    free = new_org(client, admin, plan="free")  # 10 h included
    start = clock().replace(hour=2, minute=0, second=0)
    batch = [hb("f1", free, start + timedelta(minutes=m)) for m in range(545)]  # 90.8 %
    post_heartbeats(client, admin, batch)
    client.app.state.services.usage.refresh_gauges()
    sample = metrics.registry.get_sample_value
    assert sample("billing_orgs_over_threshold", {"threshold": "50"}) == 1
    assert sample("billing_orgs_over_threshold", {"threshold": "90"}) == 1
    assert sample("billing_orgs_over_threshold", {"threshold": "100"}) == 0


def test_rollup_lag_follows_the_newest_heartbeat(client, admin, clock, metrics):
    org = new_org(client, admin)
    post_heartbeats(client, admin, [hb("i1", org, clock())])
    clock.advance(seconds=90)
    client.get("/metrics")
    assert metrics.registry.get_sample_value("usage_rollup_lag_seconds") == 90
