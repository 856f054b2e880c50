"""Which notifications are due: repeat buckets, silences, acknowledgements and SLO grouping.

Every notification has a key (fingerprint, receiver, state, repeat bucket: delivery's
`NotificationKey`), and the notification log holds each key at most once. Planning proposes the
keys that are due now; the store inserts them with ON CONFLICT DO NOTHING, so a restart, a
second replica or a retried round never notifies twice for one key.

Repeat buckets are counted from when the alert fired: `<episode>/0` is the first notification,
`<episode>/1` the repeat after one repeat interval, and so on; `<episode>/resolved` is the
resolved message. The episode (activeAt in milliseconds) keeps the next outage of the same alert
from colliding with the last one.

SLO page alerts (`*FastBurn`, `*SlowBurn`) carry an `slo` label. Alerts sharing that label form
one group: due in the same round, they go out as one message; while one of them has been notified
and still fires, the others are recorded but not sent (the person paged already knows the SLO is
burning). When the notified one resolves and another still fires, the other is sent then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from alerts.delivery.message import NotificationKey
from alerts.rules.model import Alert, AlertStatus
from alerts.silences.rules import Silence, silenced_by

FIRING = "firing"
RESOLVED = "resolved"
# A resolved message is only worth sending soon after the alert resolved.
RESOLVED_NOTIFY_WINDOW = timedelta(minutes=15)
SLO_LABEL = "slo"


@dataclass(frozen=True)
class Delivery:
    """Where one alert goes: a receiver (from the routes file) and how often it repeats."""

    receiver: str
    repeat_interval: timedelta | None  # None: never repeat
    group_by: tuple[str, ...] = ("alertname",)
    send_resolved: bool = True


@dataclass(frozen=True)
class PlannedNotification:
    key: NotificationKey
    group_key: str
    alert: Alert


def firing_bucket(alert: Alert, repeat_interval: timedelta | None, now: datetime) -> str:
    fired_at = alert.fired_at or alert.active_at
    elapsed = max(timedelta(0), now - fired_at)
    index = int(elapsed / repeat_interval) if repeat_interval else 0
    return f"{alert.episode}/{index}"


def resolved_bucket(alert: Alert) -> str:
    return f"{alert.episode}/{RESOLVED}"


def group_key(alert: Alert, group_by: Sequence[str]) -> str:
    if alert.labels.get(SLO_LABEL):
        return f"{SLO_LABEL}={alert.labels[SLO_LABEL]}"
    return ",".join(f"{name}={alert.labels.get(name, '')}" for name in group_by)


def group_labels(alert: Alert, group_by: Sequence[str]) -> dict[str, str]:
    """The labels that make the alert's group, as Alertmanager reports a group's labels: those
    of `group_key` the alert has (an SLO page: its slo label)."""
    if alert.labels.get(SLO_LABEL):
        return {SLO_LABEL: alert.labels[SLO_LABEL]}
    return {name: alert.labels[name] for name in group_by if alert.labels.get(name)}


def plan(
    alerts: Iterable[Alert],
    *,
    deliveries: Mapping[str, Sequence[Delivery]],
    existing: Iterable[NotificationKey],
    silences: Iterable[Silence],
    now: datetime,
) -> list[PlannedNotification]:
    """The notifications due now that the log does not hold yet.

    `deliveries` maps a fingerprint to its receivers; `existing` holds the log's keys for these
    alerts (at least those of their current episodes).
    """
    alerts = list(alerts)
    silences = list(silences)
    logged: set[NotificationKey] = set(existing)
    # (fingerprint, receiver, episode) that got a firing notification
    paged = {(k.fingerprint, k.receiver, k.episode) for k in logged if k.state == FIRING}

    # SLO groups: (receiver, slo, severity) -> fingerprints already notified and still firing
    notified_slo: dict[tuple[str, str, str], set[str]] = {}
    for alert in alerts:
        slo = alert.labels.get(SLO_LABEL)
        if not slo or alert.status != AlertStatus.FIRING:
            continue
        for delivery in deliveries.get(alert.fingerprint, ()):
            if (alert.fingerprint, delivery.receiver, alert.episode) in paged:
                notified_slo.setdefault((delivery.receiver, slo, alert.severity), set()).add(
                    alert.fingerprint)

    due: list[PlannedNotification] = []
    for alert in sorted(alerts, key=lambda a: (a.alertname, a.fingerprint)):
        if alert.status == AlertStatus.PENDING:
            continue
        if silenced_by(alert.labels, silences, now):
            continue
        for delivery in deliveries.get(alert.fingerprint, ()):
            group = group_key(alert, delivery.group_by)
            if alert.status == AlertStatus.FIRING:
                if alert.acked_at is not None:
                    continue
                key = NotificationKey(alert.fingerprint, delivery.receiver, FIRING,
                                      firing_bucket(alert, delivery.repeat_interval, now))
                if key in logged:
                    continue
                slo = alert.labels.get(SLO_LABEL)
                first_of_episode = (alert.fingerprint, delivery.receiver,
                                    alert.episode) not in paged
                if slo and first_of_episode and notified_slo.get(
                        (delivery.receiver, slo, alert.severity), set()) - {alert.fingerprint}:
                    continue  # another alert of this SLO already paged and still fires
                due.append(PlannedNotification(key, group, alert))
            else:
                if not delivery.send_resolved:
                    continue
                if alert.resolved_at is None or now - alert.resolved_at > RESOLVED_NOTIFY_WINDOW:
                    continue
                if (alert.fingerprint, delivery.receiver, alert.episode) not in paged:
                    continue  # nobody was told it fired, so nobody needs to hear it ended
                key = NotificationKey(alert.fingerprint, delivery.receiver, RESOLVED,
                                      resolved_bucket(alert))
                if key in logged:
                    continue
                due.append(PlannedNotification(key, group, alert))
    return due


def grouped(planned: Iterable[PlannedNotification]
            ) -> list[tuple[tuple[str, str, str], list[PlannedNotification]]]:
    """Planned notifications that go out as one message: same receiver, state and group."""
    groups: dict[tuple[str, str, str], list[PlannedNotification]] = {}
    for item in planned:
        groups.setdefault((item.key.receiver, item.key.state, item.group_key), []).append(item)
    return sorted(groups.items())
