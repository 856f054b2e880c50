"""Routing: which receivers get an alert, how alerts are grouped and how often they repeat.

The routes file format is documented in the header of the shipped alerts/delivery/routes.yml;
`alerts.delivery.routes_file` reads and checks one once at start. `RoutingTable.route()` is then
a pure function of an alert's labels and kind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

DEFAULT_GROUP_BY: tuple[str, ...] = ("alertname",)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)

ChannelName = Literal["email", "slack", "webhook", "pagerduty"]
# Budget messages are about a customer's usage: email and Slack only, whatever a route says.
BUDGET_CHANNELS = frozenset({"email", "slack"})
# Channels told when someone acknowledges an alert, because they track it until it resolves.
ACK_CHANNELS = frozenset({"pagerduty"})


@dataclass(frozen=True)
class Receiver:
    """One place notifications go: a set of email addresses, a Slack webhook, a webhook taking
    Alertmanager's payload, or a PagerDuty service."""

    name: str
    channel: ChannelName
    to: tuple[str, ...] = ()  # fixed email addresses
    to_label: str = ""  # email: the address is also taken from this label of the alert
    # Slack's or the webhook's URL; a secret (Slack's carries its token)
    webhook_url: str = field(default="", repr=False)
    bearer_token: str = field(default="", repr=False)  # webhook
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)  # webhook
    routing_key: str = field(default="", repr=False)  # PagerDuty's integration key
    # Slack through the Web API instead of a webhook: a bot token (bearer_token), a channel
    # id and the API's base URL; needed for incident threads.
    slack_channel: str = ""
    api_url: str = ""
    events_url: str = ""  # PagerDuty's Events API v2 endpoint
    timeout_seconds: float | None = None  # webhook, PagerDuty; None: the process's default
    send_resolved: bool = True  # webhook: also send resolved messages (and the route says so)
    unset: tuple[str, ...] = ()  # settings that came out empty (unset variables): disabled

    @property
    def enabled(self) -> bool:
        if self.unset:
            return False
        if self.channel == "slack":
            return bool(self.webhook_url) or self.slack_api
        if self.channel == "webhook":
            return bool(self.webhook_url)
        if self.channel == "pagerduty":
            return bool(self.routing_key and self.events_url)
        return bool(self.to or self.to_label)

    @property
    def slack_api(self) -> bool:
        """Slack through the Web API (a bot token and a channel), not a webhook."""
        return self.channel == "slack" and bool(self.bearer_token and self.slack_channel)

    def secret_values(self) -> tuple[str, ...]:
        """What no log line may carry: URLs (they may hold tokens), tokens, passwords, keys."""
        values = (self.webhook_url, self.bearer_token, self.routing_key,
                  self.basic_auth[1] if self.basic_auth else "")
        return tuple(v for v in values if v)

    def recipients(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        """The email addresses for one alert: the fixed ones, then the label's if it has one."""
        found = list(self.to)
        if self.to_label:  # one address, or several separated by commas
            for address in labels.get(self.to_label, "").split(","):
                address = address.strip()
                if address and address not in found:
                    found.append(address)
        return tuple(found)


@dataclass(frozen=True)
class Route:
    name: str
    match: Mapping[str, tuple[str, ...]]  # key -> accepted values; key "kind" is the alert kind
    receivers: tuple[Receiver, ...]
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    repeat_interval: timedelta | None = DEFAULT_REPEAT_INTERVAL  # None: never repeat
    send_resolved: bool = True
    continue_matching: bool = False

    def matches(self, labels: Mapping[str, str], *, kind: str) -> bool:
        for key, accepted in self.match.items():
            actual = kind if key == "kind" else labels.get(key, "")
            if actual not in accepted:
                return False
        return True

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels that make an alert's group (missing ones count as empty)."""
        return {name: labels.get(name, "") for name in self.group_by}


@dataclass(frozen=True)
class Destination:
    """One receiver an alert goes to, with the settings of the route that sent it there."""

    receiver: Receiver
    route: Route

    @property
    def group_by(self) -> tuple[str, ...]:
        return self.route.group_by

    @property
    def repeat_interval(self) -> timedelta | None:
        return self.route.repeat_interval

    @property
    def send_resolved(self) -> bool:
        return self.route.send_resolved and self.receiver.send_resolved

    def group_key(self, labels: Mapping[str, str]) -> str:
        """A stable text naming the alert's group at this receiver, e.g. `alertname="X",slo=""`."""
        pairs = self.route.group_labels(labels).items()
        return ",".join(f"{name}={json.dumps(value)}" for name, value in pairs)


@dataclass(frozen=True)
class RoutingTable:
    receivers: Mapping[str, Receiver]
    routes: tuple[Route, ...]
    source: str = ""

    def route(self, labels: Mapping[str, str], *, kind: str = "rule") -> tuple[Destination, ...]:
        """Where an alert goes: each enabled receiver once, in the order the routes name them
        (a budget alert: its email and Slack receivers only)."""
        found: dict[str, Destination] = {}
        for candidate in self.routes:
            if not candidate.matches(labels, kind=kind):
                continue
            for receiver in candidate.receivers:
                if kind == "budget" and receiver.channel not in BUDGET_CHANNELS:
                    continue
                if receiver.enabled and receiver.name not in found:
                    found[receiver.name] = Destination(receiver, candidate)
            if not candidate.continue_matching:
                break
        return tuple(found.values())

    def receiver(self, name: str) -> Receiver:
        return self.receivers[name]

    def disabled_receivers(self) -> tuple[Receiver, ...]:
        """Receivers routing skips because an address, URL, key or credential came out empty:
        log them at start."""
        return tuple(r for r in self.receivers.values() if not r.enabled)

    def secret_values(self) -> tuple[str, ...]:
        """Every receiver's secrets, for the log scrubber."""
        return tuple(v for r in self.receivers.values() for v in r.secret_values())


def route(
    table: RoutingTable, labels: Mapping[str, str], *, kind: str = "rule"
) -> tuple[Destination, ...]:
    return table.route(labels, kind=kind)
