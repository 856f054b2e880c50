"""python -m billing_engine migrate [--to REV] | schema-version | serve [--port N] | demo
| close-period --period YYYY-MM | reconcile --period YYYY-MM [--json]"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from billing_core.logs import configure_logging
from billing_core.settings import SettingsError
from billing_engine.settings import Settings

log = logging.getLogger("billing_engine")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m billing_engine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    migrate_cmd = sub.add_parser("migrate", help="apply database migrations and exit")
    migrate_cmd.add_argument(
        "--to", default="head", help="revision to go to: head (default), an id, -1, base"
    )
    sub.add_parser("schema-version", help="print the database's and the code's schema revision")
    serve = sub.add_parser("serve", help="serve the HTTP API (applies migrations first)")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT, else 8006")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--workers", type=int, default=int(os.environ.get("WEB_WORKERS", "1")))
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations")
    demo = sub.add_parser("demo", help="seed demo orgs and usage, serve, and simulate traffic")
    demo.add_argument("--port", type=int, default=None)
    demo.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    demo.add_argument("--orgs", type=int, default=50)
    close_cmd = sub.add_parser(
        "close-period", help="write every org's invoice for a closed period (safe to repeat)"
    )
    close_cmd.add_argument("--period", required=True, help="the UTC month, YYYY-MM")
    reconcile_cmd = sub.add_parser(
        "reconcile",
        help="compare a period's invoices and reported usage with Stripe's; exit 1 on mismatches",
    )
    reconcile_cmd.add_argument("--period", required=True, help="the UTC month, YYYY-MM")
    reconcile_cmd.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _log_payment_provider(settings: Settings) -> None:
    if settings.stripe_secret_key:
        log.info(
            "payment provider: stripe",
            extra={"stripe_api_base": settings.stripe_api_base or "https://api.stripe.com"},
        )
    else:
        log.warning(
            "payment provider: simulated (STRIPE_SECRET_KEY is not set); usage records are "
            "accepted locally and nothing reaches Stripe"
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.secret_values())
    from billing_engine.db import migrate

    if args.command == "migrate":
        from billing_engine.db.migrate import migrate_to, schema_version

        migrate_to(settings.database_url, args.to)
        log.info("schema migrated", extra={"revision": schema_version(settings.database_url)})
        return 0
    if args.command == "schema-version":
        from billing_engine.db.migrate import head_revision, schema_version

        print(f"database: {schema_version(settings.database_url) or 'empty'}")
        print(f"code:     {head_revision()}")
        return 0
    if args.command == "close-period":
        from billing_engine.cli import close_period

        return close_period(settings, args.period)
    if args.command == "reconcile":
        from billing_engine.cli import reconcile

        return reconcile(settings, args.period, as_json=args.json)
    port = args.port or settings.port
    if args.command == "serve":
        import uvicorn

        if not args.no_migrate:
            migrate(settings.database_url)
        log.info("serving", extra={"port": port, "workers": args.workers})
        _log_payment_provider(settings)
        uvicorn.run(
            "billing_engine.asgi:app_from_env",
            factory=True,
            host=args.host,
            port=port,
            workers=args.workers,
            log_config=None,
            access_log=False,
        )
        return 0
    if args.command == "demo":
        from billing_core.tracing import configure_tracing
        from billing_engine import __version__
        from billing_engine.demo.traffic import run_demo

        configure_tracing("billing-engine", version=__version__, instrument=("httpx", "redis"))
        migrate(settings.database_url)
        run_demo(settings, host=args.host, port=port, org_count=args.orgs)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
