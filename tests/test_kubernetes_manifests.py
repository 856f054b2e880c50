"""deploy/kubernetes: the kustomize base and its production overlay, rendered by kubectl's own
kustomize (Debian's kubectl), every object validated against the Kubernetes schemas of the
version we target (kubernetes-validate, strict: unknown fields are errors) and the
prometheus-operator's CRD schemas kept in tests/data/kubernetes-crds; the generated monitoring
objects current; and what the deployment promises, checked on the rendered objects."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
KUBERNETES_VERSION = "1.32.0"  # the oldest version we support; strict schemas
CRDS = ROOT / "tests" / "data" / "kubernetes-crds"
TARGETS = {"base": ROOT / "deploy/kubernetes/base",
           "production": ROOT / "deploy/kubernetes/overlays/production"}


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is needed (apt-get install kubectl; make test installs it)")
    return found


def render(target: str) -> list[dict[str, Any]]:
    out = subprocess.run([kubectl(), "kustomize", str(TARGETS[target])], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def crd_validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A CRD's openAPIV3Schema as the API server applies it: JSON Schema without checking the
    schema itself against a metaschema (its patterns are Go's regular expressions)."""
    return jsonschema.Draft7Validator(schema)


def by_kind(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_object_is_valid_against_the_kubernetes_and_crd_schemas(target):
    crds = crd_schemas()
    errors = []
    docs = render(target)
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        schema = crds.get((doc["apiVersion"], doc["kind"]))
        try:
            if schema is not None:
                crd_validator(schema).validate(doc)
            else:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError,
                kubernetes_validate.SchemaNotFoundError) as exc:
            errors.append(f"{where}: {str(exc).splitlines()[0]}")
    assert errors == []
    assert {d["kind"] for d in docs} >= {"ServiceMonitor", "PrometheusRule", "Deployment"}


def test_a_field_kubernetes_does_not_know_is_caught():
    """The validator is strict: a typo in a manifest fails, it is not ignored."""
    engine = by_kind(render("base"), "Deployment", "billing-engine")
    engine["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(engine, KUBERNETES_VERSION, strict=True)
    monitor = by_kind(render("base"), "ServiceMonitor", "billing-engine")
    monitor["spec"]["endpoints"][0]["interval"] = "fifteen seconds"
    with pytest.raises(jsonschema.ValidationError):
        crd_validator(crd_schemas()[(monitor["apiVersion"], "ServiceMonitor")]).validate(monitor)


def test_the_monitoring_objects_are_generated_from_the_rules_and_dashboards():
    result = subprocess.run([sys.executable, "scripts/generate_kubernetes_monitoring.py",
                             "--check"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    docs = render("production")
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    shipped = {p.stem for p in (ROOT / "prometheus" / "rules").glob("*.yml")}
    assert {r["metadata"]["name"] for r in rules} == {f"billing-{s}" for s in shipped}
    alerts = {rule["alert"] for r in rules for g in r["spec"]["groups"] for rule in g["rules"]
              if "alert" in rule}
    assert {"BillingEngineDown", "Watchdog"} <= alerts
    dashboards = [d for d in docs if d["metadata"].get("labels", {}).get("grafana_dashboard")]
    assert len(dashboards) == len(list((ROOT / "grafana" / "dashboards").glob("*.json")))


def test_the_production_deployment_keeps_its_promises():
    docs = render("production")
    assert {d["metadata"].get("namespace") for d in docs} == {"billing"}
    engine = by_kind(docs, "Deployment", "billing-engine")
    container = engine["spec"]["template"]["spec"]["containers"][0]
    assert engine["spec"]["replicas"] == 3
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/live"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]
    assert by_kind(docs, "PodDisruptionBudget", "billing-engine")["spec"]["minAvailable"] == 2
    assert by_kind(docs, "HorizontalPodAutoscaler", "billing-engine")["spec"]["minReplicas"] == 3
    assert by_kind(docs, "Deployment", "billing-alerts")["spec"]["replicas"] == 2
    assert by_kind(docs, "Job", "billing-migrations")
    # Secrets by reference only: no Secret object, every secret value from secretKeyRef.
    assert not [d for d in docs if d["kind"] == "Secret"]
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        for env in deployment["spec"]["template"]["spec"]["containers"][0].get("env", []):
            if any(word in env["name"] for word in ("SECRET", "KEY", "PASSWORD", "DATABASE")):
                assert "secretKeyRef" in env.get("valueFrom", {}), env["name"]
    # Only the console and the ingress controller reach the engine (and Prometheus, to scrape).
    policy = by_kind(docs, "NetworkPolicy", "billing-engine")
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "billing-engine"}
    sources = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "billing-console"}}} in (
        sources)
    namespaces = {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                  for p in sources if "namespaceSelector" in p}
    assert namespaces == {"ingress-nginx", "monitoring"}
