"""python -m alerts [serve] | migrate | schema-version | silence add/list/expire | ack |
incident declare/update/resolve/list/show/postmortem/task-done | test-email | test-slack

`serve` (the default) applies the alerts migrations, then runs the scheduler and the HTTP API.
The other commands work on the database directly, with the same code as the API, so they work
while the process is down too. Each prints JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from alerts.settings import Settings
from billing_core.errors import ConfigError

log = logging.getLogger("alerts")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m alerts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # No sub-command means `serve` with its defaults, so those defaults live on the parser too.
    parser.set_defaults(port=None, host=None, no_migrate=False)
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the scheduler and the HTTP API (the default)")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT, else 8007")
    serve.add_argument("--host", default=None, help="default: $HOST, else 127.0.0.1")
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations")

    migrate = sub.add_parser("migrate", help="apply the alerts migrations and exit")
    migrate.add_argument("--to", default="head", help="revision: head (default), an id, base")
    sub.add_parser("schema-version", help="the database's and the code's alerts revision")

    silence = sub.add_parser("silence", help="add, list or expire silences")
    silence_sub = silence.add_subparsers(dest="silence_command", required=True)
    add = silence_sub.add_parser(
        "add", help="silence the alerts matching every matcher until an end time",
        description='example: python -m alerts silence add alertname=BillingHighLatencyP95 '
                    '--for 2h --comment "load test until 16:00" --by alice')
    add.add_argument("matchers", nargs="+",
                     help='label matchers: name=value, name!=value, name=~"re", name!~"re"')
    end = add.add_mutually_exclusive_group(required=True)
    end.add_argument("--for", dest="duration", help="how long: 30m, 2h, 1d")
    end.add_argument("--until", dest="expires_at", help="ISO time with zone, e.g. "
                     "2026-11-23T16:00:00Z")
    add.add_argument("--comment", required=True, help="why (required)")
    add.add_argument("--by", dest="created_by", default=os.environ.get("USER", ""),
                     help="for whom, kept in the audit log as a note (default: $USER); the "
                          "silence is recorded as made by STAFF_API_KEY's holder, or admin")
    listing = silence_sub.add_parser("list", help="list silences")
    listing.add_argument("--state", choices=("active", "expired", "all"), default="active")
    expire = silence_sub.add_parser("expire", help="end a silence now")
    expire.add_argument("silence_id")

    ack = sub.add_parser("ack", help="acknowledge a firing alert (stops its repeats)")
    ack.add_argument("fingerprint")
    ack.add_argument("--by", default=os.environ.get("USER", "") or "cli")

    incident = sub.add_parser("incident", help="declare and run incidents")
    incident_sub = incident.add_subparsers(dest="incident_command", required=True)
    declare = incident_sub.add_parser(
        "declare", help="declare an incident (tells the channel and the stakeholders)",
        description='example: python -m alerts incident declare --severity P1 --title '
                    '"Card payments failing" --impact "a third of card payments declined" '
                    '--commander ana --alert 3f2a9c0d1e4b5a6f')
    declare.add_argument("--severity", required=True, choices=("P0", "P1", "P2"))
    declare.add_argument("--title", required=True)
    declare.add_argument("--impact", required=True, help="one line: who is hurt, how")
    declare.add_argument("--commander", required=True)
    declare.add_argument("--alert", dest="fingerprints", action="append", default=[],
                         help="an alert's fingerprint it is declared from (repeatable)")
    update = incident_sub.add_parser("update", help="post a status update (or --note)")
    update.add_argument("incident_id", type=int)
    update.add_argument("text")
    update.add_argument("--status", choices=("investigating", "identified", "monitoring"))
    update.add_argument("--note", action="store_true", help="timeline only, not the channel")
    resolve = incident_sub.add_parser("resolve", help="resolve; starts the checklist")
    resolve.add_argument("incident_id", type=int)
    resolve.add_argument("summary")
    incidents = incident_sub.add_parser("list", help="incidents of the last 90 days")
    incidents.add_argument("--open", action="store_true", help="open ones only")
    show = incident_sub.add_parser("show", help="one incident with its timeline and checklist")
    show.add_argument("incident_id", type=int)
    postmortem = incident_sub.add_parser(
        "postmortem", help="print the post-mortem (Markdown), or save an edited one")
    postmortem.add_argument("incident_id", type=int)
    postmortem.add_argument("--save", type=argparse.FileType("r", encoding="utf-8"),
                            help="a Markdown file to save as the post-mortem")
    task = incident_sub.add_parser("task-done", help="tick a checklist item off (e.g. 24h-2)")
    task.add_argument("incident_id", type=int)
    task.add_argument("key")

    test_email = sub.add_parser("test-email", help="send a test email now and say how it went")
    test_email.add_argument("--to", default=None, help="default: ONCALL_EMAIL")
    test_slack = sub.add_parser("test-slack", help="post a test Slack message now")
    test_slack.add_argument("--receiver", default=None,
                            help="a Slack receiver of the routes file (default: the first)")
    return parser


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    try:
        settings = Settings.from_env(env)
        return _run(settings, env, command, args)
    except ConfigError as error:  # settings, routes file, rule files, plans file
        print(f"configuration error: {error}", file=sys.stderr)
        return 2


def _run(settings: Settings, env: Mapping[str, str], command: str,
         args: argparse.Namespace) -> int:
    from billing_core.logs import configure_logging

    configure_logging(settings.log_level, (*settings.secret_values(),
                                           *_routes_secrets(settings, env)))
    # A job woken while it runs is skipped by design; httpx would log every Slack post.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from alerts.store.migrate import go_to, head_revision, schema_version

    if command == "migrate":
        try:
            go_to(settings.database_url, args.to)
        except ValueError as error:  # an unknown revision
            print(f"migrate: {error}", file=sys.stderr)
            return 2
        _print({"alerts_schema": schema_version(settings.database_url)})
        return 0
    if command == "schema-version":
        _print({"database": schema_version(settings.database_url), "code": head_revision()})
        return 0
    if command == "serve":
        return _serve(settings, env, args)
    return _one_shot(settings, env, command, args)


def _routes_secrets(settings: Settings, env: Mapping[str, str]) -> tuple[str, ...]:
    """The routes file's URLs, tokens and routing keys, scrubbed from the logs like the
    settings' secrets (a bad file is reported when the process is built)."""
    from alerts.delivery.routes_file import RoutesFileError, load_routes
    from alerts.process import routes_environ
    from billing_core.settings import secrets_to_scrub

    try:
        routing = load_routes(settings.routes_file, environ=routes_environ(settings, env))
    except RoutesFileError:
        return ()
    return secrets_to_scrub(routing.secret_values())


def _serve(settings: Settings, env: Mapping[str, str], args: argparse.Namespace) -> int:
    import uvicorn

    from alerts import __version__
    from alerts.api.app import create_app
    from alerts.process import build_process
    from alerts.store.migrate import migrate
    from billing_core.tracing import configure_tracing, instrument_fastapi, instrument_sqlalchemy

    if not args.no_migrate:
        migrate(settings.database_url)
    # Off (nothing imported) unless OTEL_EXPORTER_OTLP_ENDPOINT is set. requests carries the
    # traceparent to Prometheus, httpx to Slack, PagerDuty and webhooks.
    configure_tracing("alerts", version=__version__, environ=env,
                      instrument=("httpx", "requests"))
    process = build_process(settings, environ=env)
    instrument_sqlalchemy(process.engine)
    app = create_app(process)
    instrument_fastapi(app, excluded=["/metrics", "/healthz", "/ready"])
    host = args.host or settings.host
    port = args.port or settings.port
    log.info("serving", extra={"port": port, "host": host,
                               "prometheus_url": settings.prometheus_url,
                               "evaluation_interval_seconds":
                                   settings.evaluation_interval_seconds,
                               "slack": "on" if settings.slack_enabled else "off"})
    try:
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    finally:
        process.channels.close()
        process.engine.dispose()
    return 0


def _incident(client: Any, args: argparse.Namespace) -> Any:
    what = args.incident_command
    if what == "declare":
        return client.post("/v1/incidents", json={
            "severity": args.severity, "title": args.title, "impact": args.impact,
            "commander": args.commander, "fingerprints": args.fingerprints})
    if what == "update":
        return client.post(f"/v1/incidents/{args.incident_id}/updates", json={
            "text": args.text, "status": args.status, "kind": "note" if args.note else "update"})
    if what == "resolve":
        return client.post(f"/v1/incidents/{args.incident_id}/resolve",
                           json={"summary": args.summary})
    if what == "list":
        return client.get("/v1/incidents", params={"open_only": args.open})
    if what == "show":
        return client.get(f"/v1/incidents/{args.incident_id}")
    if what == "task-done":
        return client.post(f"/v1/incidents/{args.incident_id}/tasks/{args.key}/done")
    if args.save is not None:
        return client.put(f"/v1/incidents/{args.incident_id}/postmortem",
                          json={"text": args.save.read()})
    return client.get(f"/v1/incidents/{args.incident_id}/postmortem")


def _one_shot(settings: Settings, env: Mapping[str, str], command: str,
              args: argparse.Namespace) -> int:
    from fastapi.testclient import TestClient

    from alerts.api.app import create_app
    from alerts.process import build_process

    # The API's own handlers do the work, so CLI and HTTP validate and answer alike. The CLI
    # acts as STAFF_API_KEY when set (a person's own staff key: the audit log names them), else
    # as ADMIN_API_KEY (recorded as "admin"); --by is kept in the audit row as a note.
    process = build_process(settings, environ=env, scheduled=False)
    staff_key = (env.get("STAFF_API_KEY") or "").strip()
    headers = ({"Authorization": f"Bearer {staff_key}"} if staff_key
               else {"X-Admin-Key": settings.admin_api_key})
    try:
        with TestClient(create_app(process, run_scheduler=False), headers=headers) as client:
            if command == "silence" and args.silence_command == "add":
                body: dict[str, Any] = {"matchers": args.matchers, "comment": args.comment,
                                        "created_by": args.created_by}
                if args.duration:
                    body["duration"] = args.duration
                else:
                    body["expires_at"] = args.expires_at
                response = client.post("/v1/silences", json=body, headers=headers)
            elif command == "silence" and args.silence_command == "list":
                response = client.get("/v1/silences", params={"state": args.state})
            elif command == "silence":
                response = client.delete(f"/v1/silences/{args.silence_id}", headers=headers)
            elif command == "ack":
                response = client.post(f"/v1/alerts/{args.fingerprint}/ack",
                                       json={"by": args.by}, headers=headers)
            elif command == "incident":
                response = _incident(client, args)
                if (args.incident_command == "postmortem" and args.save is None
                        and response.status_code == 200):
                    print(response.json()["markdown"], end="")
                    return 0
            elif command == "test-email":
                response = client.post("/admin/test-email",
                                       json={"to": args.to, "requested_by": "cli"},
                                       headers=headers)
            elif command == "test-slack":
                response = client.post("/admin/test-slack",
                                       json={"receiver": args.receiver, "requested_by": "cli"},
                                       headers=headers)
            else:
                return 2
    finally:
        process.close()
    _print(response.json())
    return 0 if response.status_code < 400 else 1
