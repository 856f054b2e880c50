"""What an acknowledgement tells the channels that track an alert until it resolves (PagerDuty,
`alerts.delivery.routing.ACK_CHANNELS`), so they stop escalating to the next person.

Each receiver of such a channel that was sent the episode's firing notification gets one
message in state "acked", queued with the acknowledgement itself and logged under the key
(fingerprint, receiver, "acked", "<episode>/acked"): acknowledging the same episode again tells
nobody twice. It goes in the lane of the alert's severity, so a P0 or P1 acknowledgement is not
held up behind bulk mail while PagerDuty keeps paging. Acknowledgements made in PagerDuty are
not read back.
"""

from __future__ import annotations

from collections.abc import Sequence

from alerts.delivery.lanes import priority_for
from alerts.delivery.links import LinkSettings
from alerts.delivery.message import NotificationKey, message_to_json
from alerts.delivery.routing import ACK_CHANNELS
from alerts.delivery.store import QueuedMessage
from alerts.rules.messages import rule_message
from alerts.rules.model import Alert

ACKED = "acked"


def acked_bucket(alert: Alert) -> str:
    return f"{alert.episode}/{ACKED}"


def ack_messages(alert: Alert, told: Sequence[tuple[str, str]], *,
                 links: LinkSettings) -> list[QueuedMessage]:
    """The messages an acknowledgement of `alert` queues, from the (receiver, channel) pairs
    that were sent its firing notification."""
    payload = message_to_json(rule_message([alert], state=ACKED, recipients=(), links=links))
    return [
        QueuedMessage(
            kind="rule", receiver=receiver, channel=channel,
            keys=((NotificationKey(alert.fingerprint, receiver, ACKED, acked_bucket(alert)),
                   alert.alertname),),
            build_payload=lambda _keys: payload,
            priority=priority_for("rule", {alert.severity}))
        for receiver, channel in told if channel in ACK_CHANNELS
    ]
