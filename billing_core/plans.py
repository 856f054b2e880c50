"""Plans: what a customer pays for and what their usage is allowed to be."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from billing_core.errors import ConfigError


@dataclass(frozen=True)
class PlanLimits:
    """Limits the throttler enforces; None means unlimited."""

    max_concurrent_instances: int | None = None
    continuous_run_hours: int | None = None
    daily_cap_hours: int | None = None
    idle_pause_minutes: int | None = None


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    base_fee_cents: int
    included_hours: int
    overage_cents_per_hour: int
    overage_allowed: bool
    limits: PlanLimits
    stripe_price_id: str | None = None

    @property
    def included_minutes(self) -> int:
        return self.included_hours * 60


@dataclass(frozen=True)
class PlanCatalog:
    version: int
    plans: Mapping[str, Plan]
    default_plan: str

    def get(self, code: str) -> Plan | None:
        return self.plans.get(code)

    def __contains__(self, code: object) -> bool:
        return code in self.plans

    @property
    def default(self) -> Plan:
        return self.plans[self.default_plan]

    def plan_or_default(self, code: str) -> Plan:
        """The plan of that code; an org on a plan that left the catalogue bills as the default."""
        return self.plans.get(code) or self.default

    @property
    def free(self) -> Plan:
        """What a lapsed subscription falls back to."""
        return self.plans.get("free") or self.default


class PlanConfigError(ConfigError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)


def _non_negative_int(raw: Mapping[str, Any], key: str, where: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise PlanConfigError(f"{where}.{key} must be a non-negative integer, got {value!r}")
    return value


def _optional_limit(raw: Mapping[str, Any], key: str, where: str) -> int | None:
    if raw.get(key) is None:
        return None
    value = _non_negative_int(raw, key, where)
    return value


def catalog_from_config(config: Mapping[str, Any]) -> PlanCatalog:
    """Validate a parsed plans file into a catalog, naming the first bad field."""
    version = config.get("version")
    if not isinstance(version, int) or version < 1:
        raise PlanConfigError(f"version must be a positive integer, got {version!r}")
    raw_plans = config.get("plans")
    if not isinstance(raw_plans, Mapping) or not raw_plans:
        raise PlanConfigError("plans must be a non-empty mapping of plan code to plan")
    plans: dict[str, Plan] = {}
    for code, raw in raw_plans.items():
        where = f"plans.{code}"
        if not isinstance(raw, Mapping):
            raise PlanConfigError(f"{where} must be a mapping")
        limits_raw = raw.get("limits") or {}
        if not isinstance(limits_raw, Mapping):
            raise PlanConfigError(f"{where}.limits must be a mapping")
        plans[str(code)] = Plan(
            code=str(code),
            name=str(raw.get("name") or code),
            base_fee_cents=_non_negative_int(raw, "base_fee_cents", where),
            included_hours=_non_negative_int(raw, "included_hours", where),
            overage_cents_per_hour=_non_negative_int(raw, "overage_cents_per_hour", where),
            overage_allowed=bool(raw.get("overage_allowed", True)),
            stripe_price_id=raw.get("stripe_price_id") or None,
            limits=PlanLimits(
                max_concurrent_instances=_optional_limit(
                    limits_raw, "max_concurrent_instances", f"{where}.limits"
                ),
                continuous_run_hours=_optional_limit(
                    limits_raw, "continuous_run_hours", f"{where}.limits"
                ),
                daily_cap_hours=_optional_limit(limits_raw, "daily_cap_hours", f"{where}.limits"),
                idle_pause_minutes=_optional_limit(
                    limits_raw, "idle_pause_minutes", f"{where}.limits"
                ),
            ),
        )
    default_plan = config.get("default_plan", "free")
    if default_plan not in plans:
        raise PlanConfigError(f"default_plan {default_plan!r} is not one of the plans")
    for required in ("free", "base_usage"):
        if required not in plans:
            raise PlanConfigError(f"plans must define {required!r}")
    return PlanCatalog(version=version, plans=plans, default_plan=default_plan)
