"""Load the versioned plans file into the domain catalog."""

from __future__ import annotations

from pathlib import Path

import yaml

from billing_engine.domain.plans import PlanCatalog, PlanConfigError, catalog_from_config


def load_plans(path: Path) -> PlanCatalog:
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PlanConfigError(f"cannot read plans file {path}: {exc}") from exc
    if not isinstance(config, dict):
        raise PlanConfigError(f"plans file {path} must hold a mapping")
    return catalog_from_config(config)
