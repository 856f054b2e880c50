"""Slack: one Block Kit post to an incoming webhook per Message, tried once.

`build_payload()` is pure (the JSON Slack receives); `SlackChannel.send()` posts it and maps the
answer to a DeliveryResult with one of the bounded reasons the failure metric uses.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from alerts.delivery.message import DeliveryResult, Message
from alerts.delivery.wording import (
    active_for,
    budget_facts,
    budget_support_line,
    format_time,
    format_value,
    group_members,
    one_line,
    rule_title,
    shown_labels,
)

DEFAULT_SLACK_TIMEOUT_SECONDS = 10.0
SEVERITY_EMOJI = {"P0": "\U0001f6a8", "P1": "\U0001f534", "P2": "\U0001f7e0", "P3": "\U0001f535"}
RESOLVED_EMOJI = "\u2705"

# Block Kit limits (characters / items), from Slack's reference.
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
MAX_FIELDS = 10
MEMBERS_SHOWN = 10


def escape(text: str) -> str:
    """Slack mrkdwn needs &, < and > escaped; everything else is literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _field(name: str, value: str) -> dict[str, Any]:
    return _mrkdwn(_cut(f"*{escape(name)}*\n{escape(value)}", FIELD_LIMIT))


def _button(text: str, url: str, action_id: str, *, primary: bool = False) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": _plain(text),
        "url": url,
        "action_id": action_id,
    }
    if primary:
        button["style"] = "primary"
    return button


# A Slack member id (U..., W...): the only thing put inside an <@...> mention.
SLACK_MEMBER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")


def build_payload(message: Message) -> dict[str, Any]:
    """The webhook body for a message: `text` (notification fallback) and `blocks`."""
    if message.kind == "budget":
        return _budget_payload(message)
    if message.kind == "test":
        return _test_payload(message)
    if message.kind in ("escalation", "incident"):
        return _notice_payload(message)
    return _rule_payload(message)


def _rule_payload(message: Message) -> dict[str, Any]:
    resolved = message.state == "resolved"
    if resolved:
        header = f"{RESOLVED_EMOJI} Resolved: {message.alertname}"
    else:
        emoji = SEVERITY_EMOJI.get(message.severity, "\u26a0\ufe0f")
        header = f"{emoji} {message.severity} FIRING: {message.alertname}"
    summary = escape(one_line(message.summary))
    body = f"*{summary}*\n{escape(message.description.strip())}"

    fields = [_field("Severity", message.severity)]
    if resolved:
        fields.append(_field("Resolved", format_time(message.ends_at)))
        fields.append(_field("Fired for", active_for(message)))
    else:
        fields.append(_field("Since", format_time(message.starts_at)))
    fields.append(_field("Value", format_value(message.value)))
    for name, value in shown_labels(message.labels)[: MAX_FIELDS - len(fields)]:
        fields.append(_field(name, value))

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(_cut(header, HEADER_LIMIT))},
        {"type": "section", "text": _mrkdwn(_cut(body, SECTION_LIMIT))},
        {"type": "section", "fields": fields},
    ]
    members = group_members(message)
    if members:
        lines = [f"\u2022 `{escape(member)}`" for member in members[:MEMBERS_SHOWN]]
        if len(members) > MEMBERS_SHOWN:
            lines.append(f"\u2026 and {len(members) - MEMBERS_SHOWN} more")
        text = f"*{len(members)} alerts in this group*\n" + "\n".join(lines)
        blocks.append({"type": "section", "text": _mrkdwn(_cut(text, SECTION_LIMIT))})

    blocks += _link_buttons(message, console="Alert in console", primary=not resolved)
    blocks.append(
        {"type": "context", "elements": [_mrkdwn(f"fingerprint `{escape(message.fingerprint)}`")]}
    )
    return {"text": rule_title(message), "blocks": blocks}


def _notice_payload(message: Message) -> dict[str, Any]:
    """An escalation step or an incident message: who it is for, what happened, the links."""
    resolved = message.state == "resolved"
    emoji = RESOLVED_EMOJI if resolved else SEVERITY_EMOJI.get(message.severity, "\u26a0\ufe0f")
    member = message.labels.get("person_slack", "")
    mention = f"<@{member}> " if member and SLACK_MEMBER_ID.fullmatch(member) else ""
    summary = one_line(message.summary)
    body = f"{mention}*{escape(summary)}*"
    if message.description.strip():
        body += f"\n{escape(message.description.strip())}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _mrkdwn(_cut(f"{emoji} {body}", SECTION_LIMIT))}]
    blocks += _link_buttons(message, console="Open in console", primary=not resolved)
    return {"text": f"{mention}{summary}", "blocks": blocks}


def _link_buttons(message: Message, *, console: str, primary: bool) -> list[dict[str, Any]]:
    """The runbook, dashboard, logs, traces and console buttons a message has links for, as
    one actions block (none when it has no link)."""
    buttons = []
    if message.runbook_url:
        buttons.append(_button("Runbook", message.runbook_url, "runbook", primary=primary))
    if message.dashboard_url:
        buttons.append(_button("Dashboard", message.dashboard_url, "dashboard"))
    if message.logs_url:
        buttons.append(_button("Logs", message.logs_url, "logs"))
    if message.traces_url:
        buttons.append(_button("Traces", message.traces_url, "traces"))
    if message.console_url:
        buttons.append(_button(console, message.console_url, "console"))
    return [{"type": "actions", "elements": buttons}] if buttons else []


def _budget_payload(message: Message) -> dict[str, Any]:
    if message.labels.get("digest") == "true":
        return _budget_digest_payload(message)
    line = budget_support_line(budget_facts(message))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _mrkdwn(_cut(f"\U0001f4b0 {escape(line)}", SECTION_LIMIT))}
    ]
    return {"text": line, "blocks": blocks}


def _budget_digest_payload(message: Message) -> dict[str, Any]:
    summary = one_line(message.summary)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _mrkdwn(_cut(f"\U0001f4b0 {escape(summary)}",
                                                 SECTION_LIMIT))}]
    if message.description.strip():
        furthest = "*Furthest over their included hours*\n" + "\n".join(
            f"\u2022 {escape(line)}" for line in message.description.strip().splitlines())
        blocks.append({"type": "section", "text": _mrkdwn(_cut(furthest, SECTION_LIMIT))})
    if message.console_url:
        blocks.append({"type": "actions", "elements": [
            _button("Usage in console", message.console_url, "console")]})
    return {"text": summary, "blocks": blocks}


def _test_payload(message: Message) -> dict[str, Any]:
    summary = one_line(message.summary) or "Alerts delivery check"
    body = f"*{escape(summary)}*"
    if message.description.strip():
        body += f"\n{escape(message.description.strip())}"
    sent = format_time(datetime.now(UTC))
    return {
        "text": f"Test message from the alerts process: {summary}",
        "blocks": [
            {"type": "header", "text": _plain("\U0001f9ea Test message from the alerts process")},
            {"type": "section", "text": _mrkdwn(_cut(body, SECTION_LIMIT))},
            {
                "type": "context",
                "elements": [_mrkdwn(f"Sent on request at {sent}. No alert is firing.")],
            },
        ],
    }


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class SlackChannel:
    """Posts to one Slack incoming webhook. The webhook URL is a secret: never in a detail."""

    name = "slack"

    def __init__(
        self,
        webhook_url: str,
        *,
        timeout_seconds: float = DEFAULT_SLACK_TIMEOUT_SECONDS,
        client: httpx.Client | None = None,
    ) -> None:
        self.webhook_url = webhook_url
        self.timeout_seconds = timeout_seconds
        self._own_client = client is None
        self._client = client or httpx.Client(follow_redirects=False)

    def __repr__(self) -> str:
        return f"SlackChannel(timeout_seconds={self.timeout_seconds})"

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> SlackChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(self, message: Message) -> DeliveryResult:
        if not self.webhook_url:
            return DeliveryResult(
                ok=False, permanent=True, reason="rejected", detail="no Slack webhook URL set"
            )
        try:
            payload = build_payload(message)
        except (KeyError, ValueError) as exc:
            return DeliveryResult(
                ok=False, permanent=True, reason="rejected", detail=f"cannot build: {exc!r}"
            )
        try:
            response = self._client.post(
                self.webhook_url, json=payload, timeout=self.timeout_seconds
            )
        except httpx.TimeoutException as exc:
            return self._result(False, "timeout", f"timed out: {type(exc).__name__}")
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            return self._result(False, "rejected", f"bad webhook URL: {exc}", permanent=True)
        except httpx.TransportError as exc:
            return self._result(False, "connection", f"{type(exc).__name__}: {exc}")
        return self._answer(response)

    def _answer(self, response: httpx.Response) -> DeliveryResult:
        status = response.status_code
        said = f"HTTP {status}: {response.text[:200].strip()}"
        if 200 <= status < 300:
            return self._result(True, "", said)
        if status == 429:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            return DeliveryResult(
                ok=False, retry_after=wait, reason="rate_limited", detail=self._safe(said)
            )
        if status >= 500:
            return self._result(False, "server_error", said)
        # 4xx (bad payload, revoked or unknown webhook) and anything unexpected: retrying the
        # same post cannot change the answer.
        return self._result(False, "rejected", said, permanent=True)

    def _result(
        self, ok: bool, reason: str, detail: str, *, permanent: bool = False
    ) -> DeliveryResult:
        return DeliveryResult(ok=ok, permanent=permanent, reason=reason, detail=self._safe(detail))

    def _safe(self, detail: str) -> str:
        return detail.replace(self.webhook_url, "<webhook>") if self.webhook_url else detail
