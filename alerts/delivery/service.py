"""Delivery checks: send one test message now, through the channel and the metrics the outbox
uses, and say how it went. Nothing is queued: the answer is the attempt's outcome.

Each test is written to the audit log before it is sent; if that row cannot be written, nothing
is sent (503). The message names the credential's principal as who asked, not the body's
`requested_by`, which is kept in the audit row as a note."""

from __future__ import annotations

from alerts.access.store import AuditEntry, AuditStore
from alerts.delivery.channels import ChannelSet
from alerts.delivery.links import LinkSettings
from alerts.delivery.message import DeliveryResult, delivery_test_message
from alerts.delivery.outbox import attempt
from alerts.delivery.schemas import (
    EmailTestFailure,
    EmailTestResult,
    SlackTestFailure,
    SlackTestResult,
    TestEmailIn,
    TestSlackIn,
)
from alerts.observability.metrics import AlertsMetrics, failure_reason
from billing_core.access import Principal
from billing_core.clock import Clock
from billing_core.errors import Conflict, InvalidRequest, NotFound
from billing_core.http import FieldError


class DeliveryCheck:
    def __init__(self, *, channels: ChannelSet, oncall_email: str, links: LinkSettings,
                 metrics: AlertsMetrics, clock: Clock, audit: AuditStore) -> None:
        self.audit = audit
        self.channels = channels
        self.oncall_email = oncall_email
        self.links = links
        self.metrics = metrics
        self.clock = clock

    def _note(self, by: Principal, *, action: str, target: str, requested_by: str) -> None:
        self.audit.record_alone(AuditEntry.of(
            by, action=action, target=target, at=self.clock(),
            on_behalf_of=requested_by if requested_by not in ("api", "cli", by.actor) else None))

    def test_email(self, body: TestEmailIn, *, by: Principal
                   ) -> EmailTestResult | EmailTestFailure:
        """To ONCALL_EMAIL unless `to` names another address."""
        to = (body.to or self.oncall_email).strip()
        if "@" not in to or any(c.isspace() for c in to):
            raise InvalidRequest("to", "is not an email address")
        self._note(by, action="test.email", target=to, requested_by=body.requested_by)
        message = delivery_test_message(channel="email", recipients=(to,),
                                        requested_by=by.actor, now=self.clock(),
                                        links=self.links)
        channel = self.channels.email
        result = attempt(channel, "email", lambda: channel.send(message), self.metrics)
        if result.ok:
            return EmailTestResult(ok=True, channel="email", detail=result.detail, to=[to])
        return EmailTestFailure.model_validate({**_failure("email", result), "to": [to]})

    def test_slack(self, body: TestSlackIn, *, by: Principal
                   ) -> SlackTestResult | SlackTestFailure:
        """To the Slack receiver named, or the first configured one."""
        receivers = self.channels.slack_receivers()
        if body.receiver is not None:
            receivers = [r for r in receivers if r.name == body.receiver]
            if not receivers:
                raise NotFound("receiver", "is not a configured Slack receiver of the routes file")
        if not receivers:
            raise Conflict("SLACK_WEBHOOK_URL", "no Slack receiver is configured; Slack is off",
                           code="not_configured")
        receiver = receivers[0]
        channel = self.channels.for_receiver_object(receiver)
        self._note(by, action="test.slack", target=receiver.name, requested_by=body.requested_by)
        message = delivery_test_message(channel="Slack", recipients=(),
                                        requested_by=by.actor, now=self.clock(),
                                        links=self.links)
        result = attempt(channel, "slack", lambda: channel.send(message), self.metrics)
        if result.ok:
            return SlackTestResult(ok=True, channel="slack", detail=result.detail,
                                   receiver=receiver.name)
        return SlackTestFailure.model_validate({**_failure("slack", result),
                                                "receiver": receiver.name})


def _failure(channel: str, result: DeliveryResult) -> dict[str, object]:
    reason = failure_reason(result.reason)
    said = f"{reason}: {result.detail}"
    return {"error": "delivery_failed", "message": f"{channel}: {said}",
            "errors": [FieldError(field=channel, reason=said)], "ok": False, "channel": channel,
            "reason": reason, "permanent": result.permanent, "retry_after": result.retry_after}
