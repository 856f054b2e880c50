"""The one-shot commands of `python -m billing_engine`: the same services the API runs, built by
the wiring for one run against the configured database."""

from __future__ import annotations

import json
import sys

from billing_core.errors import DatabaseUnavailable, InvalidRequest
from billing_core.periods import period_from_field
from billing_engine.invoicing.schemas import period_close_out
from billing_engine.settings import Settings
from billing_engine.stripe.client import ProviderError
from billing_engine.wiring import build_services

CLI_ACTOR = "cli"


def close_period(settings: Settings, period_key: str) -> int:
    """`close-period --period YYYY-MM`: the close the scheduler and the admin endpoint run,
    recorded in the audit log under the actor name "cli". Prints the result as JSON."""
    try:
        period = period_from_field(period_key)
    except InvalidRequest as exc:
        print(f"{exc.field}: {exc.reason}", file=sys.stderr)
        return 2
    services = build_services(settings, pool_size=1)
    status = 200
    try:
        try:
            result = services.invoicing.close_period(period)
        except InvalidRequest as exc:
            status = 422
            print(f"{exc.field}: {exc.reason}", file=sys.stderr)
            return 2
        finally:
            services.audit.record(
                actor=CLI_ACTOR,
                method="CLI",
                path="close-period",
                path_params={},
                summary={"query": {"period": period_key}},
                status=status,
                request_id=None,
            )
        print(period_close_out(result).model_dump_json(indent=2))
        return 0
    finally:
        services.dispose()


def reconcile(settings: Settings, period_key: str, *, as_json: bool = False) -> int:
    """`reconcile --period YYYY-MM`: prints the report; exit code 0 when clean, 1 when there
    are mismatches, 2 when the run could not be made."""
    try:
        period_from_field(period_key)
    except InvalidRequest as exc:
        print(f"--period: {exc.reason}", file=sys.stderr)
        return 2
    services = build_services(settings, pool_size=1)
    try:
        try:
            report = services.reconciler.run(period_key)
        except ProviderError as exc:
            print(f"reconciliation failed: Stripe: {exc.describe()}", file=sys.stderr)
            return 2
        except DatabaseUnavailable as exc:
            print(f"reconciliation failed: database unreachable: {exc.reason}", file=sys.stderr)
            return 2
        print(json.dumps(report.as_json(), indent=2) if as_json else report.render_text())
        return 0 if report.clean else 1
    finally:
        services.dispose()
