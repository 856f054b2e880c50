"""What the alerts API answers about alerts, and what an acknowledgement takes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from alerts.api.contract import Text, Timestamp
from alerts.delivery.schemas import DeliveryOut, LatestDelivery
from alerts.oncall.schemas import EscalationOut


class AlertOut(BaseModel):
    """One alert instance (one label set of one rule), with its links and deliveries."""

    fingerprint: str
    alertname: str
    state: Literal["pending", "firing", "resolved"]
    severity: str = Field(description="P0 to P3")
    labels: dict[str, str]
    annotations: dict[str, str] = Field(description="as rendered, links made real")
    activeAt: Timestamp = Field(description="when the condition started to hold (Prometheus' "
                                            "activeAt): the episode")
    fired_at: Timestamp | None
    resolved_at: Timestamp | None
    last_evaluated_at: Timestamp
    value: float | None = Field(description="the sample value (null when NaN or infinite)")
    value_text: str | None = Field(description="the value as Prometheus prints it")
    acked: bool
    acked_at: Timestamp | None
    acked_by: str | None
    silenced_by: list[str] = Field(description="ids of the active silences covering it")
    runbook_url: str
    dashboard_url: str
    logs_url: str = Field(default="", description="the service's logs over the alert's window "
                                                  "(LOGS_BASE_URL); empty when not configured")
    traces_url: str = Field(default="", description="the service's traces over the alert's "
                                                    "window (TRACES_BASE_URL); empty when not "
                                                    "configured")
    console_url: str
    delivery: dict[str, LatestDelivery] = Field(description="the latest notification per "
                                                            "channel (email, slack)")
    deliveries: list[DeliveryOut] = Field(description="every notification of this episode")
    escalation: EscalationOut | None = Field(
        default=None, description="who was told at each step and the next step while "
                                  "unacknowledged; null for a severity the on-call policy does "
                                  "not escalate")


class AlertList(BaseModel):
    state: Literal["active", "recent"]
    alerts: list[AlertOut]


class AckIn(BaseModel):
    by: Text | None = Field(default=None, max_length=200,
                            description="a note of whom it is done for; who acknowledged is "
                                        "the credential's name")


class EpisodeOut(BaseModel):
    """One firing of one alert, from the history."""

    fingerprint: str
    alertname: str
    severity: str
    labels: dict[str, str]
    summary: str
    fired_at: Timestamp
    resolved_at: Timestamp | None
    acked_at: Timestamp | None
    acked_by: str | None
    seconds_to_ack: float | None = Field(description="fired to acknowledged")
    seconds_to_resolve: float | None = Field(description="fired to resolved")


class AlertStats(BaseModel):
    """Per alert name over the window: how often it fired and how fast people answered."""

    alertname: str
    severity: str
    fired: int
    acknowledged: int
    median_seconds_to_ack: float | None
    median_seconds_to_resolve: float | None


class AlertHistory(BaseModel):
    since: Timestamp
    until: Timestamp
    episodes: list[EpisodeOut] = Field(description="newest first, at most `limit`")
    stats: list[AlertStats] = Field(description="per alert name, most fired first")
