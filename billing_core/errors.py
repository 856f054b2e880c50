"""Every error either process raises on purpose, and what each one answers over HTTP.

Both the billing engine and the alerts process raise only subclasses of `BillingError` for
conditions they expect; anything else is a bug and answers 500. `billing_core.http` turns any
`BillingError` into its status and one JSON shape, `{"error": code, "message": text,
"errors": [{"field": name, "reason": why}]}`, so a caller can always tell which field to fix.

    BillingError                          base; status 500, code internal_error
    ├── ConfigError                       refuses to start (the CLIs exit 2); never an answer
    │   ├── SettingsError                 an environment variable (billing_core.settings)
    │   │   └── SmtpSettingsError         alerts: the SMTP relay's settings
    │   ├── PlanConfigError               the plans file (billing_core.plans)
    │   ├── RoutesFileError               alerts: the routes file
    │   └── RuleFileError                 alerts: a Prometheus rule file
    ├── RequestError                      4xx: the caller can fix it; names the field and why
    │   ├── BadRequest              400   engine: SignatureRejected (invalid_signature) and
    │   │                                 PayloadError (invalid_event), Stripe deliveries
    │   ├── Unauthorized            401   a missing or wrong credential
    │   │   └── CredentialRequired        a missing, unknown, revoked or expired Bearer
    │   │                                 credential (answers WWW-Authenticate: Bearer)
    │   ├── Forbidden               403   a credential without the right
    │   ├── NotFound                404   an org, instance, event, alert or silence
    │   ├── Conflict                409   engine: AlreadyDone (a replay of a handled event),
    │   │                                 an Idempotency-Key reused for another credit;
    │   │                                 alerts: acknowledging a resolved alert
    │   ├── ContentTooLarge         413   a body over the size limit (names the limit)
    │   ├── UnsupportedMediaType    415   a body that is not application/json
    │   ├── InvalidRequest          422   a value out of range or of the wrong shape; engine:
    │   │   │                             HandlingError and WaitingForOrg (a Stripe event that
    │   │   │                             cannot take effect, kept in the inbox as failed)
    │   │   └── SilenceError              alerts: a silence that cannot be kept
    │   └── TooManyRequests         429   engine: too many failed authentications from one
    │                                     address or key prefix (answers Retry-After)
    ├── UnavailableError            503   try again later; says whether anything was stored
    │   ├── DatabaseUnavailable           the database is away; nothing was committed
    │   ├── AuditUnavailable              engine: an admin action's audit row could not be written
    │   ├── NotConfigured                 engine: WebhooksNotConfigured (no webhook secret)
    │   └── TransientFailure              engine: a Stripe event stored but not handled yet
    ├── UpstreamError               502   a dependency answered badly
    │   ├── ProviderError                 engine: Stripe (billing_engine.stripe.client)
    │   ├── CircuitOpen                   engine: the breaker refused the call unsent
    │   └── PrometheusUnavailable         alerts: Prometheus did not answer a query
    └── RuleEvaluationError               alerts: a rule cannot be evaluated this round; it
        ├── QueryError                    keeps its state and the next round tries again
        └── TemplateError                 (Prometheus refused the query; an annotation would
                                          not render); never an HTTP answer

This module imports nothing but the standard library, so pure rules may raise these too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

__all__ = [
    "BadRequest",
    "BillingError",
    "ConfigError",
    "Conflict",
    "ContentTooLarge",
    "CredentialRequired",
    "AuditUnavailable",
    "DatabaseUnavailable",
    "Forbidden",
    "InvalidRequest",
    "NotConfigured",
    "NotFound",
    "RequestError",
    "TooManyRequests",
    "Unauthorized",
    "UnavailableError",
    "UnsupportedMediaType",
    "UpstreamError",
]


class BillingError(Exception):
    """Base of every error raised on purpose. `status` and `code` say how it answers."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, reason: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason
        if code is not None:
            self.code = code  # type: ignore[misc]  # an instance may name a finer code

    @property
    def message(self) -> str:
        return str(self)

    @property
    def public_message(self) -> str:
        """What the answer says; internal detail (a driver's message) stays in the log."""
        return self.message

    @property
    def headers(self) -> Mapping[str, str] | None:
        """Extra response headers (Retry-After, WWW-Authenticate), if any."""
        return None


class ConfigError(BillingError):
    """The configuration is one the process refuses to run with."""

    code = "configuration_error"


class RequestError(BillingError):
    """The request is at fault: repeating it unchanged gives the same answer."""

    status = 400
    code = "bad_request"

    def __init__(self, field: str | None, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason, field=field, code=code)


class BadRequest(RequestError):
    pass


class Unauthorized(RequestError):
    status = 401
    code = "unauthorized"

    @property
    def headers(self) -> Mapping[str, str]:
        return {"WWW-Authenticate": "X-Admin-Key"}


class CredentialRequired(Unauthorized):
    """No valid credential: the answer names the Bearer scheme every credential travels in."""

    @property
    def headers(self) -> Mapping[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="billing"'}


class Forbidden(RequestError):
    status = 403
    code = "forbidden"


class NotFound(RequestError):
    status = 404
    code = "not_found"


class Conflict(RequestError):
    status = 409
    code = "conflict"


class ContentTooLarge(RequestError):
    status = 413
    code = "content_too_large"


class UnsupportedMediaType(RequestError):
    status = 415
    code = "unsupported_media_type"


class InvalidRequest(RequestError):
    status = 422
    code = "invalid_request"


class TooManyRequests(RequestError):
    """Refused without looking at the request further; try again after `retry_after_seconds`."""

    status = 429
    code = "rate_limited"

    def __init__(self, field: str | None, reason: str, *, retry_after_seconds: int) -> None:
        super().__init__(field, reason)
        self.retry_after_seconds = max(1, retry_after_seconds)

    @property
    def headers(self) -> Mapping[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class UnavailableError(BillingError):
    """Nothing is wrong with the request; try again shortly."""

    status = 503
    code = "unavailable"
    retry_after_seconds: ClassVar[int | None] = 5

    @property
    def headers(self) -> Mapping[str, str] | None:
        if self.retry_after_seconds is None:
            return None
        return {"Retry-After": str(self.retry_after_seconds)}


class DatabaseUnavailable(UnavailableError):
    """The database could not be reached or dropped the connection; nothing was committed."""

    code = "database_unavailable"

    @property
    def public_message(self) -> str:
        return "the database is unreachable; nothing was stored"


class AuditUnavailable(UnavailableError):
    """An admin or operator action was refused because its audit row could not be written:
    nothing was done, since an action nobody can later find must not happen."""

    code = "audit_unavailable"


class NotConfigured(UnavailableError):
    """A feature is off because its settings are missing; nothing was stored."""

    code = "not_configured"
    retry_after_seconds = None


class UpstreamError(BillingError):
    """A service we depend on refused or failed the call."""

    status = 502
    code = "upstream_error"
