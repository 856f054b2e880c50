"""Every dependency a route takes, as an `Annotated` alias: the services, the access check every
route passes through, and the identifiers routes accept in paths and queries."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from billing_core.access import (
    ADMIN_KEY_HEADER,
    AUTHORIZATION,
    Policy,
    Principal,
    Public,
    credential_from,
    decide,
)
from billing_core.access.tokens import display_prefix
from billing_core.errors import (
    CredentialRequired,
    Forbidden,
    TooManyRequests,
    UnsupportedMediaType,
)
from billing_core.http import error_responses
from billing_core.logs import request_id_var
from billing_engine.access.limits import client_address
from billing_engine.access.policy import ENGINE_POLICY
from billing_engine.access.service import MALFORMED, MISSING, RATE_LIMITED, REASON_TEXT
from billing_engine.audit.keys import STATE_ACTOR, STATE_AUDIT_ID, STATE_REFUSAL
from billing_engine.audit.service import AUDITED_METHODS, AUDITED_PREFIXES
from billing_engine.wiring import Services

ORG_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
INSTANCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
# Key names (a-z 0-9 _ -) and the people sign-in tokens name (their email).
ACTOR_PATTERN = r"^[A-Za-z0-9_.@+-]{1,64}$"
STATE_PRINCIPAL = "principal"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

OrgIdPath = Annotated[str, Path(pattern=ORG_ID_PATTERN, description="Org (customer) id")]
OrgIdQuery = Annotated[str, Query(pattern=ORG_ID_PATTERN, description="Org (customer) id")]
InstanceIdPath = Annotated[str, Path(pattern=INSTANCE_ID_PATTERN, description="Instance id")]
PeriodQuery = Annotated[str, Query(pattern=PERIOD_PATTERN, description="The UTC month, YYYY-MM")]


def route_key(request: Request) -> tuple[str, str]:
    route = request.scope.get("route")
    method = "GET" if request.method == "HEAD" else request.method
    return method, str(getattr(route, "path_format", request.url.path))


def authorize(request: Request) -> None:
    """The one access check, applied to every route of the app: the policy table's requirement
    for the matched route against the credential presented. Leaves the principal (and, for the
    audit log, its name) in the request state. Also refuses bodies that are not JSON."""
    services = get_services(request)
    key = route_key(request)
    policy: Policy = getattr(request.app.state, "access_policy", ENGINE_POLICY)
    requirement = policy.get(key)
    principal: Principal | None = None
    staff_route = key[1].startswith(("/admin/", "/debug/"))
    if requirement is not None and not isinstance(requirement, Public):
        _refuse_while_limited(request, services)
        principal = _authenticate(request, services, staff_route=staff_route)
    verdict = decide(requirement, principal, org_ids=_named_orgs(request))
    if not verdict.allowed:
        if verdict.status == 401:  # the route needs a credential and none was presented
            _refuse(request, services, MISSING, verdict.field or AUTHORIZATION,
                    staff_route=staff_route)
        services.metrics.access_denied.labels(verdict.code or "other").inc()
        if verdict.code == "other_org" and principal is not None:
            named = next((o for _, o in _named_orgs(request) if o != principal.org_id), "")
            services.access.report_other_org(principal, named_org=named, endpoint=key[1])
        request.state.__setattr__(STATE_REFUSAL, verdict.code)
        if (principal is not None and request.method in AUDITED_METHODS
                and key[1].startswith(AUDITED_PREFIXES)):
            services.audit.refused(
                actor=principal.actor, method=request.method, path=request.url.path,
                path_params=dict(request.path_params), reason=verdict.code or "refused",
                request_id=request_id_var.get())
        raise Forbidden(verdict.field, verdict.reason or "refused")
    if request.method in BODY_METHODS and _has_body(request):
        # A body without a Content-Type is read as JSON; one that names another type is refused,
        # so a web page cannot post to us cross-site with a form or a text/plain fetch.
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type and media_type != "application/json" and not media_type.endswith("+json"):
            raise UnsupportedMediaType("Content-Type", "must be application/json")
    if request.method in AUDITED_METHODS and key[1].startswith(AUDITED_PREFIXES):
        # Written ahead: if the row cannot be written, AuditUnavailable refuses the action.
        entry_id = services.audit.begin(
            actor=getattr(request.state, STATE_ACTOR, None), method=request.method,
            path=request.url.path, path_params=dict(request.path_params),
            query=request.scope.get("query_string", b"").decode("latin-1"),
            request_id=request_id_var.get())
        request.state.__setattr__(STATE_AUDIT_ID, entry_id)


def _authenticate(request: Request, services: Services, *, staff_route: bool) -> Principal | None:
    headers = request.headers
    authorization, admin_key = headers.get(AUTHORIZATION), headers.get(ADMIN_KEY_HEADER)
    credential = credential_from(authorization, admin_key)
    if credential is None:
        if authorization is None and admin_key is None:
            return None  # decide answers 401 naming the missing credential
        _refuse(request, services, MALFORMED, AUTHORIZATION, staff_route=staff_route)
    assert credential is not None
    found = services.access.authenticate(
        credential.token, staff_only=credential.source == ADMIN_KEY_HEADER
    )
    if found.principal is None:
        _refuse(request, services, found.refusal or "unknown", credential.source,
                staff_route=staff_route)
    assert found.principal is not None
    request.state.__setattr__(STATE_PRINCIPAL, found.principal)
    request.state.__setattr__(STATE_ACTOR, found.principal.actor)
    return found.principal


def _attempt(request: Request, services: Services) -> tuple[str | None, str | None]:
    """(client address, key prefix) of the request, as the failed-authentication limits count
    them. The prefix is the readable start of the key (`bk_live_AbC123`), none for other tokens."""
    peer = request.client.host if request.client is not None else None
    address = client_address(peer, request.headers.get("x-forwarded-for"),
                             trusted_proxies=services.settings.trusted_proxies)
    credential = credential_from(request.headers.get(AUTHORIZATION),
                                 request.headers.get(ADMIN_KEY_HEADER))
    prefix = display_prefix(credential.token) if credential is not None else ""
    return address, prefix or None


def _refuse_while_limited(request: Request, services: Services) -> None:
    """429 while the address or the key prefix is over its failed-authentication limit; the
    credential is not looked at, so a correct key waits too (billing_engine.access.limits)."""
    address, prefix = _attempt(request, services)
    block = services.auth_limits.blocked(address=address, prefix=prefix)
    if block is None:
        return
    services.metrics.auth_failures.labels(RATE_LIMITED).inc()
    request.state.__setattr__(STATE_REFUSAL, RATE_LIMITED)
    raise TooManyRequests(
        AUTHORIZATION,
        f"too many failed authentications from this {block.subject}: no credential is checked "
        f"for {block.retry_after_seconds} s (Retry-After)",
        retry_after_seconds=block.retry_after_seconds,
    )


def _refuse(request: Request, services: Services, reason: str, field: str, *,
            staff_route: bool) -> None:
    services.metrics.auth_failures.labels(reason).inc()
    address, prefix = _attempt(request, services)
    services.auth_limits.failed(address=address, prefix=prefix)
    if staff_route:  # the admin-key alert keeps its meaning: refusals on staff routes
        services.metrics.admin_auth_failures.labels("missing" if reason == MISSING
                                                    else "invalid").inc()
    request.state.__setattr__(STATE_REFUSAL, reason)
    raise CredentialRequired(field, REASON_TEXT[reason])


def _named_orgs(request: Request) -> list[tuple[str, str]]:
    """Every org the path or the query names (all values of a repeated `org_id`)."""
    named = []
    path_org = request.path_params.get("org_id")
    if path_org is not None:
        named.append(("org_id", str(path_org)))
    named += [("org_id", value) for value in request.query_params.getlist("org_id")]
    return named


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def request_principal(request: Request) -> Principal | None:
    principal: Principal | None = getattr(request.state, STATE_PRINCIPAL, None)
    return principal


AuthorizeDep = Depends(authorize)
# Every admin route may answer these, whatever else it declares.
ADMIN_ANSWERS = error_responses(401, 403, 422)
