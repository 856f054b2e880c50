"""The alerts process reads as a newcomer expects: one package per concept, each with its pure
rules, store, service, routes and response schemas; no service reaching into another's
internals; nothing of the engine's but the query it publishes."""

from __future__ import annotations

import ast
from pathlib import Path

import alerts
from alerts.store.repository import CONCEPT_STORES, AlertStore

ALERTS = Path(alerts.__file__).parent
CONCEPTS = ("rules", "silences", "budget", "delivery")


def imports(path: Path) -> list[tuple[str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
    return found


def modules() -> list[Path]:
    return sorted(p for p in ALERTS.rglob("*.py") if "migrations" not in p.parts)


def test_the_top_level_holds_only_entry_points_settings_and_the_wiring():
    top = {p.stem for p in ALERTS.glob("*.py")}
    # mailsink.py only keeps `python -m alerts.mailsink` working (alerts/delivery/mailsink.py)
    assert top == {"__init__", "__main__", "cli", "settings", "process", "mailsink"}


def test_each_concept_has_its_store_service_routes_and_schemas():
    for concept in CONCEPTS:
        files = {p.stem for p in (ALERTS / concept).glob("*.py")}
        assert {"store", "service", "routes", "schemas"} <= files, concept
    api = {p.stem for p in (ALERTS / "api").glob("*.py")}
    assert api == {"__init__", "app", "deps", "contract"}


def test_the_engine_is_read_only_through_its_published_query():
    users = {}
    for path in modules():
        for module, names in imports(path):
            if module.split(".")[0] == "billing_engine":
                users[str(path.relative_to(ALERTS))] = (module, names)
    assert users == {
        "budget/store.py": ("billing_engine.usage.facts", ["thresholds_reached"]),
        # Post-mortems: the orgs whose heartbeats were refused, through its published query.
        "incidents/store.py": ("billing_engine.usage.facts", ["refused_orgs"]),
        # Staff keys: the engine's own authentication, published without its tables.
        "access/service.py": ("billing_engine.access.published", ["REASON_TEXT", "credentials"]),
    }


def test_no_module_imports_another_packages_private_names():
    offenders = []
    for path in modules():
        package = path.relative_to(ALERTS).parts[0]
        for module, names in imports(path):
            parts = module.split(".")
            if parts[0] != "alerts" or len(parts) < 2 or parts[1] == package:
                continue
            offenders += [f"{path.relative_to(ALERTS)}: {module}.{n}" for n in names
                          if n.startswith("_") and n != "__version__"]
    assert offenders == []


def test_the_concept_stores_share_one_engine_and_no_method_name():
    seen: dict[str, str] = {}
    clashes = []
    for store in CONCEPT_STORES:
        for name in vars(store):
            if name.startswith("__"):
                continue
            if name in seen:
                clashes.append(f"{name}: {seen[name]} and {store.__name__}")
            seen[name] = store.__name__
    assert clashes == []
    assert set(AlertStore.__mro__) >= set(CONCEPT_STORES)
