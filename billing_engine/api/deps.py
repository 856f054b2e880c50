"""Every dependency a route takes, as an `Annotated` alias: the services, the admin key check,
and the identifiers routes accept in paths and queries."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request

from billing_core.errors import Unauthorized
from billing_core.http import error_responses
from billing_engine.audit.keys import STATE_ACTOR, STATE_REFUSAL, identify_admin
from billing_engine.wiring import Services

ORG_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
INSTANCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
ACTOR_PATTERN = r"^[a-z0-9_-]{1,64}$"


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

OrgIdPath = Annotated[str, Path(pattern=ORG_ID_PATTERN, description="Org (customer) id")]
OrgIdQuery = Annotated[str, Query(pattern=ORG_ID_PATTERN, description="Org (customer) id")]
InstanceIdPath = Annotated[str, Path(pattern=INSTANCE_ID_PATTERN, description="Instance id")]
PeriodQuery = Annotated[str, Query(pattern=PERIOD_PATTERN, description="The UTC month, YYYY-MM")]


def require_admin(
    request: Request,
    x_admin_key: Annotated[str | None, Header(description="An admin key")] = None,
) -> None:
    """Let the request through with a valid admin key; the audit log records the key's name."""
    services = get_services(request)
    if not x_admin_key:
        services.metrics.admin_auth_failures.labels("missing").inc()
        request.state.__setattr__(STATE_REFUSAL, "missing")
        raise Unauthorized("X-Admin-Key", "header is required")
    # Constant time over every configured key.
    name = identify_admin(services.settings.admin_keys(), x_admin_key)
    if name is None:
        services.metrics.admin_auth_failures.labels("invalid").inc()
        request.state.__setattr__(STATE_REFUSAL, "invalid")
        raise Unauthorized("X-Admin-Key", "is not the admin key")
    request.state.__setattr__(STATE_ACTOR, name)


AdminDep = Depends(require_admin)
# Every admin route may answer these, whatever else it declares.
ADMIN_ANSWERS = error_responses(401, 422)
