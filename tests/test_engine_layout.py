"""The engine reads as a newcomer expects: one package per concept, each with its store,
service, routes and response schemas; at the top only the entry points, the settings and the
wiring; no module importing another package's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import billing_engine

ENGINE = Path(billing_engine.__file__).parent
CONCEPTS = ("customers", "usage", "billing_view", "throttling", "payments", "invoicing",
            "audit", "stripe/webhooks", "stripe/meters", "stripe/reconcile")
# Entitlements keep no table: they are computed from the org and its subscriptions (read through
# those concepts) and cached in Redis, their own adapter.
WITH_RULES = ("usage", "entitlements", "throttling", "subscriptions", "payments", "invoicing",
              "stripe/reconcile")


def test_the_top_level_holds_only_entry_points_settings_and_the_wiring():
    assert {p.stem for p in ENGINE.glob("*.py")} == {
        "__init__", "__main__", "cli", "asgi", "settings", "wiring"}


def test_each_concept_has_its_store_service_routes_and_schemas():
    for concept in CONCEPTS:
        files = {p.stem for p in (ENGINE / concept).glob("*.py")}
        assert {"store", "service", "routes", "schemas"} <= files, concept
    assert {"cache", "service", "routes", "schemas", "rules"} <= {
        p.stem for p in (ENGINE / "entitlements").glob("*.py")}
    for concept in WITH_RULES:
        assert (ENGINE / concept / "rules.py").exists(), concept
    assert {p.stem for p in (ENGINE / "api").glob("*.py")} == {
        "__init__", "app", "deps", "middleware"}


def test_no_module_imports_another_packages_private_names():
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        package = path.relative_to(ENGINE).parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            parts = node.module.split(".")
            theirs = parts[0] == "billing_core" or (
                parts[0] == "billing_engine" and len(parts) > 1 and parts[1] != package)
            private = [a.name for a in node.names if a.name.startswith("_")]
            if theirs and private:
                offenders.append(f"{path.relative_to(ENGINE)}: {node.module} {private}")
    assert offenders == []
