"""The channel behind each receiver of the routing table."""

from __future__ import annotations

from alerts.delivery.email import EmailChannel, SmtpConfig
from alerts.delivery.message import Channel
from alerts.delivery.pagerduty import DEFAULT_PAGERDUTY_TIMEOUT_SECONDS, PagerDutyChannel
from alerts.delivery.routing import Receiver, RoutingTable
from alerts.delivery.slack import SlackChannel
from alerts.delivery.slack_api import DEFAULT_SLACK_API_URL, IncidentThreads, SlackApiChannel
from alerts.delivery.webhook import DEFAULT_WEBHOOK_TIMEOUT_SECONDS, WebhookChannel


class ChannelSet:
    """The channel behind each receiver of the routing table: one SMTP channel for every email
    receiver, one Slack channel per webhook, one channel per webhook or PagerDuty receiver."""

    def __init__(self, routing: RoutingTable, *, smtp: SmtpConfig,
                 slack_timeout_seconds: float = 10.0, keep_open: bool = False,
                 threads: IncidentThreads | None = None) -> None:
        self.routing = routing
        self.threads = threads  # where incident threads are kept, for Slack's Web API
        self._slack_api: dict[str, SlackApiChannel] = {}
        # A lane's set keeps its SMTP connection open between messages (closed by close()).
        self.email = EmailChannel(smtp, keep_open=keep_open)
        self._slack: dict[str, SlackChannel] = {}
        self._slack_timeout = slack_timeout_seconds
        self._http: dict[str, WebhookChannel | PagerDutyChannel] = {}

    def for_receiver(self, name: str) -> Channel | None:
        receiver = self.routing.receivers.get(name)
        if receiver is None or not receiver.enabled:
            return None
        return self.for_receiver_object(receiver)

    def for_receiver_object(self, receiver: Receiver) -> Channel:
        if receiver.channel == "email":
            return self.email
        if receiver.channel in ("webhook", "pagerduty"):
            return self._http_channel(receiver)
        if receiver.slack_api:
            api = self._slack_api.get(receiver.name)
            if api is None:
                api = SlackApiChannel(receiver.bearer_token, receiver.slack_channel,
                                      api_url=receiver.api_url or DEFAULT_SLACK_API_URL,
                                      threads=self.threads, timeout_seconds=self._slack_timeout)
                self._slack_api[receiver.name] = api
            return api
        channel = self._slack.get(receiver.webhook_url)
        if channel is None:
            channel = SlackChannel(receiver.webhook_url, timeout_seconds=self._slack_timeout)
            self._slack[receiver.webhook_url] = channel
        return channel

    def _http_channel(self, receiver: Receiver) -> WebhookChannel | PagerDutyChannel:
        channel = self._http.get(receiver.name)
        if channel is None:
            if receiver.channel == "webhook":
                channel = WebhookChannel(
                    receiver.webhook_url, receiver=receiver.name,
                    bearer_token=receiver.bearer_token, basic_auth=receiver.basic_auth,
                    timeout_seconds=receiver.timeout_seconds or DEFAULT_WEBHOOK_TIMEOUT_SECONDS)
            else:
                channel = PagerDutyChannel(
                    receiver.routing_key, url=receiver.events_url,
                    timeout_seconds=receiver.timeout_seconds
                    or DEFAULT_PAGERDUTY_TIMEOUT_SECONDS)
            self._http[receiver.name] = channel
        return channel

    def slack_receivers(self) -> list[Receiver]:
        return [r for r in self.routing.receivers.values() if r.channel == "slack" and r.enabled]

    def close(self) -> None:
        self.email.close()
        for channel in self._slack.values():
            channel.close()
        for other in self._http.values():
            other.close()
        for api in self._slack_api.values():
            api.close()
