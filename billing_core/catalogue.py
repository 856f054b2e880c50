"""The plans file: the versioned catalogue both processes bill and alert by."""

from __future__ import annotations

from pathlib import Path

import yaml

from billing_core.plans import PlanCatalog, PlanConfigError, catalog_from_config

DEFAULT_PLANS_FILE = Path(__file__).with_name("plans.yaml")


def load_plans(path: Path = DEFAULT_PLANS_FILE) -> PlanCatalog:
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PlanConfigError(f"cannot read plans file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PlanConfigError(f"plans file {path} is not valid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise PlanConfigError(f"plans file {path} must hold a mapping")
    return catalog_from_config(config)
