"""Wiring: build every part of the alerts process from one Settings object.

The CLI, the HTTP API and the tests all start here, so `serve`, `silence add` and `test-email`
use the same database, routes and channels. Each service is handed only what it needs: its
concept's store (one `AlertStore` holds them all over one engine), the clock, the metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from alerts.access.service import AlertsAccess
from alerts.budget.evaluator import BudgetEvaluator
from alerts.budget.service import BudgetHistoryService
from alerts.delivery.channels import ChannelSet
from alerts.delivery.lanes import BULK_LANE, LANES, PAGES
from alerts.delivery.links import LinkSettings
from alerts.delivery.outbox import OutboxWorker, RetryPolicy
from alerts.delivery.routes_file import load_routes
from alerts.delivery.routing import RoutingTable
from alerts.delivery.service import DeliveryCheck
from alerts.incidents.service import IncidentService
from alerts.observability.heartbeat import Heartbeat
from alerts.observability.metrics import AlertsMetrics
from alerts.observability.service import Readiness
from alerts.oncall.policy_file import DEFAULT_ONCALL_FILE, load_policy
from alerts.oncall.service import OnCallService
from alerts.rules.evaluator import Evaluator
from alerts.rules.files import load_rules
from alerts.rules.prometheus import PrometheusClient
from alerts.rules.service import AlertService
from alerts.scheduling.leader import LeaderElection
from alerts.scheduling.scheduler import AlertsScheduler
from alerts.settings import Settings
from alerts.silences.service import SilenceService
from alerts.store.database import create_alerts_engine
from alerts.store.repository import AlertStore
from billing_core.access.oidc import OidcVerifier
from billing_core.catalogue import load_plans
from billing_core.clock import Clock, utc_now
from billing_core.sql import pool_capacity, pool_in_use

__all__ = ["AlertsProcess", "ChannelSet", "Clock", "build_process", "utc_now"]

log = logging.getLogger("alerts")


def routes_environ(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """What ${VAR} in the routes file means: the environment, with the settings' values for the
    variables the settings own (so their defaults apply there too)."""
    return {
        **environ,
        "ONCALL_EMAIL": settings.oncall_email,
        "SLACK_WEBHOOK_URL": settings.slack_webhook_url or "",
        "SLACK_INCIDENTS_WEBHOOK_URL": (settings.slack_incidents_webhook_url
                                        or settings.slack_webhook_url or ""),
        "SLACK_BOT_TOKEN": settings.slack_bot_token or "",
    }


@dataclass
class AlertsProcess:
    settings: Settings
    engine: Engine
    store: AlertStore
    metrics: AlertsMetrics
    routing: RoutingTable
    links: LinkSettings
    channels: ChannelSet  # the API's and the CLI's (test messages); each lane has its own
    clock: Clock
    access: AlertsAccess
    # what the API and the CLI work through
    alerts: AlertService
    silences: SilenceService
    budget_history: BudgetHistoryService
    delivery_checks: DeliveryCheck
    oncall: OnCallService
    incidents: IncidentService
    # what the scheduler runs (left out of the CLI's one-shot commands)
    evaluator: Evaluator | None = None
    budget: BudgetEvaluator | None = None
    worker: OutboxWorker | None = None  # the bulk lane
    page_worker: OutboxWorker | None = None  # the pages lane
    lane_channels: list[ChannelSet] = field(default_factory=list)
    leader: LeaderElection | None = None
    scheduler: AlertsScheduler | None = None
    heartbeat: Heartbeat | None = None
    readiness: Readiness = field(init=False)

    def __post_init__(self) -> None:
        self.readiness = Readiness(
            store=self.store,
            leading=lambda: self.leader.is_leader if self.leader is not None else False,
            prometheus_up=lambda: (self.evaluator.prometheus_reachable
                                   if self.evaluator is not None else None))

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()
        self.channels.close()
        if self.heartbeat is not None:
            self.heartbeat.close()
        for channels in self.lane_channels:
            channels.close()
        self.engine.dispose()


def build_process(settings: Settings, *, environ: Mapping[str, str], clock: Clock = utc_now,
                  metrics: AlertsMetrics | None = None, scheduled: bool = True) -> AlertsProcess:
    """Everything the process needs. `scheduled=False` leaves out the evaluator, the worker,
    the leader election and the scheduler (the CLI's one-shot commands)."""
    metrics = metrics or AlertsMetrics()
    engine = create_alerts_engine(settings.database_url, pool_size=settings.db_pool_size)
    watch_resources(metrics, engine, settings)
    store = AlertStore(engine)
    routing = load_routes(settings.routes_file, environ=routes_environ(settings, environ))
    links = settings.links
    channels = ChannelSet(routing, smtp=settings.smtp,
                          slack_timeout_seconds=settings.slack_timeout_seconds)
    oncall_policy = load_policy(settings.oncall_file, environ=environ)
    if settings.environment == "production" and settings.oncall_file == DEFAULT_ONCALL_FILE:
        log.warning("the on-call policy is the shipped example team: point ONCALL_FILE at your "
                    "own", extra={"oncall_file": str(settings.oncall_file)})

    def wake_outbox() -> None:
        if process.scheduler is not None:
            process.scheduler.wake("outbox")

    oncall = OnCallService(policy=oncall_policy, alerts=store, silences=store, escalations=store,
                           routing=routing, links=links, clock=clock, on_queued=wake_outbox)
    prometheus = PrometheusClient(settings.prometheus_url,
                                  timeout_seconds=settings.prometheus_timeout_seconds)
    incidents = IncidentService(
        store=store, data=store, policy=oncall_policy, routing=routing, links=links,
        clock=clock, query=lambda expr, at: prometheus.query(expr, at=at))
    process = AlertsProcess(
        settings=settings, engine=engine, store=store, metrics=metrics, routing=routing,
        links=links, channels=channels, clock=clock,
        access=AlertsAccess(engine, configured_keys=settings.admin_keys(), clock=clock,
                            oidc=OidcVerifier(settings.oidc) if settings.oidc else None),
        alerts=AlertService(alerts=store, silences=store, links=links, clock=clock,
                            escalations=oncall),
        silences=SilenceService(store=store, clock=clock,
                                max_length=timedelta(days=settings.silence_max_days)),
        budget_history=BudgetHistoryService(store=store),
        delivery_checks=DeliveryCheck(channels=channels, oncall_email=settings.oncall_email,
                                      links=links, metrics=metrics, clock=clock, audit=store),
        oncall=oncall, incidents=incidents)
    if not scheduled:
        return process

    for receiver in routing.disabled_receivers():
        log.warning("receiver disabled: its address, URL, key or credential is empty",
                    extra={"receiver": receiver.name, "channel": receiver.channel,
                           "empty": list(receiver.unset)})
    rules = load_rules(settings.rule_files)
    log.info("rules loaded", extra={"rules": len(rules), "rule_files": settings.rule_files})

    process.evaluator = Evaluator(store=store, prometheus=prometheus, rules=rules,
                                  routing=routing, links=links, metrics=metrics, clock=clock,
                                  on_queued=wake_outbox, repeat_for=oncall.repeat_for)
    process.budget = BudgetEvaluator(
        store=store, catalog=load_plans(settings.plans_file), routing=routing, links=links,
        metrics=metrics, clock=clock,
        close_grace=timedelta(seconds=settings.period_close_grace_seconds),
        on_queued=wake_outbox)
    policy = RetryPolicy(backoff=timedelta(seconds=settings.outbox_backoff_seconds),
                         backoff_max=timedelta(seconds=settings.outbox_backoff_max_seconds),
                         max_attempts=settings.outbox_max_attempts,
                         lease=timedelta(seconds=settings.outbox_lease_seconds))
    workers = {}
    for lane in LANES:  # each lane sends through its own SMTP connection and Slack clients
        lane_channels = ChannelSet(routing, smtp=settings.smtp, keep_open=True, threads=store,
                                   slack_timeout_seconds=settings.slack_timeout_seconds)
        process.lane_channels.append(lane_channels)
        workers[lane.name] = OutboxWorker(store=store, resolve=lane_channels.for_receiver,
                                          metrics=metrics, clock=clock, policy=policy, lane=lane)
    process.page_worker, process.worker = workers[PAGES.name], workers[BULK_LANE.name]
    if settings.heartbeat_url:
        evaluator = process.evaluator
        process.heartbeat = Heartbeat(
            url=settings.heartbeat_url, store=store, metrics=metrics, clock=clock,
            last_good_round=lambda: evaluator.last_good_round,
            stale_after=timedelta(seconds=max(60.0, 3 * settings.evaluation_interval_seconds)))
    process.leader = LeaderElection(settings.leader_lock_url, metrics=metrics)
    process.scheduler = AlertsScheduler(
        leader=process.leader, evaluator=process.evaluator, budget=process.budget,
        oncall=oncall, incidents=incidents, workers=[process.page_worker, process.worker],
        evaluation_interval=settings.evaluation_interval_seconds,
        budget_interval=settings.budget_interval_seconds,
        outbox_interval=settings.outbox_interval_seconds,
        leader_interval=settings.leader_retry_seconds,
        retention=timedelta(days=settings.retention_days), heartbeat=process.heartbeat,
        heartbeat_interval=settings.heartbeat_interval_seconds)
    return process


def watch_resources(metrics: AlertsMetrics, engine: Engine, settings: Settings) -> None:
    """The pool gauges, and the disks of WATCH_VOLUMES, which VolumeAlmostFull watches. The
    embedded database's folder is the engine's to report (it owns the file), so one full disk
    is one alert."""
    metrics.watch_pool(lambda: pool_in_use(engine), lambda: pool_capacity(engine))
    for name, path in settings.watch_volumes:
        metrics.watch_volume(name, Path(path))
