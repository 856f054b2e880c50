"""Email: render a Message from Jinja2 templates, then send it once over SMTP.

Rendering (`EmailRenderer`) is apart from sending (`EmailChannel`): the renderer returns the
subject, text and HTML; the channel builds the MIME message, talks SMTP and maps what happened
to a DeliveryResult. Retries belong to the outbox worker.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import textwrap
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import jinja2

from alerts.delivery.message import DeliveryResult, Message
from alerts.delivery.wording import (
    active_for,
    budget_facts,
    budget_title,
    format_time,
    format_value,
    group_members,
    one_line,
    rule_title,
    shown_labels,
    state_word,
)
from billing_core.settings import SettingsError, check_port, env_bool, env_float, env_int

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
SEVERITY_COLOURS = {"P0": "#7f1d1d", "P1": "#b91c1c", "P2": "#c2410c", "P3": "#1d4ed8"}
RESOLVED_COLOUR = "#15803d"
NBSP = "\u00a0"
_ASCII_SPACE = re.compile(r"[ \t\r\n]+")

DEFAULT_SMTP_HOST = "127.0.0.1"
DEFAULT_SMTP_PORT = 1025
DEFAULT_SMTP_FROM = "alerts@billing.local"
DEFAULT_SMTP_TIMEOUT_SECONDS = 10.0
# Reusing one SMTP connection (EmailChannel): when to check it, and when to start a new one.
IDLE_CHECK_SECONDS = 5.0
MAX_IDLE_SECONDS = 60.0
MAX_MESSAGES_PER_CONNECTION = 100


@dataclass(frozen=True)
class SmtpConfig:
    """SMTP settings (SMTP_HOST, SMTP_PORT, SMTP_STARTTLS, SMTP_USERNAME, SMTP_PASSWORD,
    SMTP_FROM, SMTP_TIMEOUT_SECONDS). The password never appears in the repr."""

    host: str = DEFAULT_SMTP_HOST
    port: int = DEFAULT_SMTP_PORT
    sender: str = DEFAULT_SMTP_FROM
    starttls: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    timeout_seconds: float = DEFAULT_SMTP_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SmtpConfig:
        """The SMTP_* variables of an environment (the alerts Settings read them here)."""
        try:
            port = env_int(environ, "SMTP_PORT", DEFAULT_SMTP_PORT)
            check_port("SMTP_PORT", port)
            username = environ.get("SMTP_USERNAME", "").strip()
            password = environ.get("SMTP_PASSWORD", "")
            if bool(username) != bool(password):
                raise SettingsError("SMTP_USERNAME and SMTP_PASSWORD must be set together")
            return cls(
                host=environ.get("SMTP_HOST", "").strip() or DEFAULT_SMTP_HOST,
                port=port,
                sender=environ.get("SMTP_FROM", "").strip() or DEFAULT_SMTP_FROM,
                starttls=env_bool(environ, "SMTP_STARTTLS", False),
                username=username,
                password=password,
                timeout_seconds=env_float(environ, "SMTP_TIMEOUT_SECONDS",
                                          DEFAULT_SMTP_TIMEOUT_SECONDS, minimum=0.1),
            )
        except SettingsError as error:
            raise SmtpSettingsError(error.reason) from None


class SmtpSettingsError(SettingsError, ValueError):
    """An SMTP_* variable the process cannot use (a ValueError too, as it has always been)."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def _html_template(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


class EmailRenderer:
    """Turns a Message into subject, text and HTML with the templates beside this module."""

    def __init__(self, template_dir: Path = TEMPLATE_DIR) -> None:
        self.environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(template_dir)),
            autoescape=_html_template,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def render(self, message: Message, *, now: datetime | None = None) -> RenderedEmail:
        template: str = message.kind
        if message.kind == "budget":
            subject, context = _budget_context(message)
        elif message.kind == "test":
            subject, context = _test_context(message, now or datetime.now(UTC))
        elif message.kind in ("escalation", "incident"):
            subject, context = notice_context(message)
            template = "notice"
        else:
            subject, context = _rule_context(message)
        context["title"] = subject
        text = self.environment.get_template(f"email_{template}.txt.j2").render(context)
        html = self.environment.get_template(f"email_{template}.html.j2").render(context)
        if message.kind == "budget":
            text = _wrap_paragraphs(text)
        return RenderedEmail(subject=one_line(subject), text=text, html=html)


def _rule_context(message: Message) -> tuple[str, dict[str, Any]]:
    resolved = message.state == "resolved"
    context = {
        "resolved": resolved,
        "state_word": state_word(message),
        "severity": message.severity,
        "alertname": message.alertname,
        "summary": message.summary,
        "description": message.description,
        "value": format_value(message.value),
        "since": format_time(message.starts_at),
        "ended": format_time(message.ends_at),
        "active_for": active_for(message),
        "condition": message.annotations.get("condition", ""),
        "labels": shown_labels(message.labels),
        "members": group_members(message),
        "runbook_url": message.runbook_url,
        "dashboard_url": message.dashboard_url,
        "logs_url": message.logs_url,
        "traces_url": message.traces_url,
        "console_url": message.console_url,
        "fingerprint": message.fingerprint,
        "colour": RESOLVED_COLOUR
        if resolved
        else SEVERITY_COLOURS.get(message.severity, "#374151"),
    }
    return rule_title(message), context


def _budget_context(message: Message) -> tuple[str, dict[str, Any]]:
    facts = budget_facts(message)
    # No-break spaces keep "50 %" and a plan name on one line when the text is wrapped.
    plan_phrase = f"{facts.plan_name} plan".replace(" ", NBSP) if facts.plan_name else "plan"
    context = {
        "org_name": facts.org_name,
        "org_id": facts.org_id,
        "threshold": facts.threshold,
        "threshold_text": f"{facts.threshold}{NBSP}%",
        "period": facts.period,
        "period_label": facts.period_label,
        "period_end": facts.period_end,
        "used": facts.used_text,
        "included": facts.included_text,
        "remaining": facts.remaining_text,
        "percent": f"{facts.percent_used:g}{NBSP}%",
        "bar_percent": f"{min(100.0, facts.percent_used):g}",
        "plan_phrase": plan_phrase,
        "overage_allowed": facts.overage_allowed,
        "overage_price": facts.overage_price,
    }
    return budget_title(facts), context


def notice_context(message: Message) -> tuple[str, dict[str, Any]]:
    """Escalations and incident messages: a headline, what happened, a few facts, the links.
    Facts come from the labels named in NOTICE_FACTS, in that order."""
    resolved = message.state == "resolved"
    if message.kind == "escalation":
        headline = ("RESOLVED: " if resolved else f"{message.severity} ") + message.alertname
        why = f"you are {message.labels.get('rotation', 'on call')} on call"
    else:
        headline = f"Incident: {message.alertname}"
        why = "incident communication"
    facts = [(name, message.labels[key]) for name, key in NOTICE_FACTS
             if message.labels.get(key)]
    context = {
        "headline": headline,
        "summary": message.summary,
        "description": message.description,
        "severity": message.severity,
        "since": format_time(message.starts_at),
        "facts": facts,
        "why": why,
        "runbook_url": message.runbook_url,
        "dashboard_url": message.dashboard_url,
        "logs_url": message.logs_url,
        "traces_url": message.traces_url,
        "console_url": message.console_url,
        "colour": RESOLVED_COLOUR if resolved else SEVERITY_COLOURS.get(message.severity,
                                                                        "#374151"),
    }
    subject = f"[{'RESOLVED' if resolved else message.severity}] {one_line(message.summary)}"
    return subject, context


# Label -> the name a notice shows it under.
NOTICE_FACTS = (("Rotation", "rotation"), ("Step", "step"), ("Commander", "commander"),
                ("Impact", "impact"), ("Status", "incident_status"),
                ("Status page", "status_page"))


def _test_context(message: Message, now: datetime) -> tuple[str, dict[str, Any]]:
    context = {
        "sent_at": format_time(now),
        "summary": message.summary,
        "description": message.description,
        "runbook_url": message.runbook_url,
        "dashboard_url": message.dashboard_url,
        "logs_url": message.logs_url,
        "traces_url": message.traces_url,
        "console_url": message.console_url,
    }
    return f"[TEST] {one_line(message.summary) or 'Alerts delivery check'}", context


def _wrap_paragraphs(text: str, width: int = 76) -> str:
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    # Only ASCII whitespace separates words: the no-break spaces must hold.
    filled = [
        textwrap.fill(" ".join(_ASCII_SPACE.split(p.strip())), width=width) for p in paragraphs
    ]
    return "\n\n".join(filled) + "\n"


def build_email(
    message: Message, rendered: RenderedEmail, *, sender: str, now: datetime | None = None
) -> EmailMessage:
    """The MIME message: text/plain and text/html alternatives, threaded per alert episode."""
    mail = EmailMessage()
    domain = sender.rsplit("@", 1)[-1] or "localhost"
    mail["Subject"] = rendered.subject
    mail["From"] = sender
    mail["To"] = ", ".join(message.recipients)
    mail["Date"] = format_datetime(now or datetime.now(UTC))
    mail["Message-ID"] = make_msgid(domain=domain)
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies to alerts
    if message.kind == "rule":
        # Firing, repeats and resolved of one episode share a thread in the reader's mailbox.
        episode = f"<alert-{message.fingerprint}-{int(message.starts_at.timestamp())}@{domain}>"
        mail["References"] = episode
        mail["X-Alert-Fingerprint"] = message.fingerprint
        mail["X-Alert-State"] = message.state
    mail.set_content(rendered.text)
    mail.add_alternative(rendered.html, subtype="html")
    return mail


class EmailChannel:
    """Sends one Message to `message.recipients` over SMTP, once; says how it went.

    With `keep_open` (the outbox lanes), one SMTP connection is kept open and reused from
    message to message (a relay that takes 50 ms a message would otherwise add a handshake, and
    STARTTLS and AUTH, to every one); its owner calls `close()`. Without it each message has its
    own connection. A
    connection idle for more than IDLE_CHECK_SECONDS is checked with NOOP before it is reused,
    one idle past MAX_IDLE_SECONDS or used for MAX_MESSAGES_PER_CONNECTION messages is closed
    and opened afresh, and one that fails in any way but a refusal is dropped: the outbox
    retries that message on a new connection.
    """

    name = "email"

    def __init__(
        self,
        config: SmtpConfig,
        *,
        renderer: EmailRenderer | None = None,
        ssl_context: ssl.SSLContext | None = None,
        keep_open: bool = False,
    ) -> None:
        self.config = config
        self.keep_open = keep_open
        self.renderer = renderer or EmailRenderer()
        # A context that trusts a private CA can be passed in; else the system's trust store.
        self.ssl_context = ssl_context
        self._smtp: smtplib.SMTP | None = None
        self._used_at = 0.0
        self._sent_on_connection = 0
        self._lock = threading.Lock()
        self.connections_opened = 0

    def send(self, message: Message) -> DeliveryResult:
        if not message.recipients:
            return DeliveryResult(
                ok=False, permanent=True, reason="rejected", detail="no recipients"
            )
        try:
            rendered = self.renderer.render(message)
        except (jinja2.TemplateError, KeyError, ValueError) as exc:
            # A message the templates cannot render will not render on a retry either.
            return DeliveryResult(
                ok=False, permanent=True, reason="rejected", detail=f"cannot render: {exc!r}"
            )
        mail = build_email(message, rendered, sender=self.config.sender)
        try:
            refused = self._deliver(mail, list(message.recipients))
        except Exception as exc:  # mapped below; anything unknown is retried, not dropped
            return self._failure(exc)
        detail = "accepted by " + f"{self.config.host}:{self.config.port}"
        if refused:
            detail += "; refused: " + ", ".join(
                f"{address} ({code})" for address, (code, _) in sorted(refused.items())
            )
        return DeliveryResult(ok=True, detail=detail)

    def _deliver(self, mail: EmailMessage, recipients: list[str]) -> dict[str, tuple[int, bytes]]:
        with self._lock:
            smtp = self._connection()
            try:
                refused = smtp.send_message(mail, from_addr=self.config.sender,
                                            to_addrs=recipients)
            except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused,
                    smtplib.SMTPDataError):
                self._used_at = time.monotonic()  # the server reset the transaction: reusable
                if not self.keep_open:
                    self._drop()
                raise
            except BaseException:
                self._drop()
                raise
            self._used_at = time.monotonic()
            self._sent_on_connection += 1
            if not self.keep_open:
                self._drop()
            return refused

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            idle = time.monotonic() - self._used_at
            if idle > MAX_IDLE_SECONDS or self._sent_on_connection >= MAX_MESSAGES_PER_CONNECTION:
                self._drop()
            elif idle > IDLE_CHECK_SECONDS and not self._answers_noop(self._smtp):
                self._drop()
        if self._smtp is None:
            self._smtp = self._open()
        return self._smtp

    def _open(self) -> smtplib.SMTP:
        config = self.config
        smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_seconds)
        try:
            smtp.ehlo()
            if config.starttls:
                smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                smtp.ehlo()
            if config.username:
                smtp.login(config.username, config.password)
        except BaseException:
            smtp.close()
            raise
        self.connections_opened += 1
        self._sent_on_connection = 0
        self._used_at = time.monotonic()
        return smtp

    @staticmethod
    def _answers_noop(smtp: smtplib.SMTP) -> bool:
        try:
            return smtp.noop()[0] == 250
        except (smtplib.SMTPException, OSError):
            return False

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _failure(self, exc: Exception) -> DeliveryResult:
        return _scrub(classify_smtp_error(exc), self.config.password)


def _by_code(code: int, detail: str) -> DeliveryResult:
    if 400 <= code < 500:
        return DeliveryResult(ok=False, reason="server_error", detail=detail)
    return DeliveryResult(ok=False, permanent=True, reason="rejected", detail=detail)


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def classify_smtp_error(exc: BaseException) -> DeliveryResult:
    """What an SMTP failure means for the outbox: retry (4xx, network) or give up (5xx)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = {address: code for address, (code, _) in exc.recipients.items()}
        detail = "all recipients refused: " + ", ".join(
            f"{address} ({code})" for address, code in sorted(codes.items())
        )
        if codes and all(400 <= code < 500 for code in codes.values()):
            return DeliveryResult(ok=False, reason="server_error", detail=detail)  # greylisting
        return DeliveryResult(ok=False, permanent=True, reason="rejected", detail=detail)
    if isinstance(exc, smtplib.SMTPResponseException):
        # SMTPSenderRefused, SMTPDataError, SMTPConnectError, SMTPHeloError, SMTPAuthenticationError
        stage = type(exc).__name__
        return _by_code(exc.smtp_code, f"{stage} {exc.smtp_code} {_text(exc.smtp_error)[:200]}")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryResult(ok=False, permanent=True, reason="rejected", detail=str(exc))
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        # smtplib turns a read timeout into "Connection unexpectedly closed: timed out".
        if isinstance(exc.__context__, TimeoutError):
            return DeliveryResult(ok=False, reason="timeout", detail=f"timed out: {exc}")
        return DeliveryResult(ok=False, reason="connection", detail=f"disconnected: {exc}")
    if isinstance(exc, TimeoutError | socket.timeout):
        return DeliveryResult(ok=False, reason="timeout", detail=f"timed out: {exc}")
    if isinstance(exc, ssl.SSLError):
        return DeliveryResult(ok=False, reason="connection", detail=f"TLS failed: {exc}")
    if isinstance(exc, OSError):  # refused, unreachable, name not resolved
        return DeliveryResult(ok=False, reason="connection", detail=f"{type(exc).__name__}: {exc}")
    if isinstance(exc, smtplib.SMTPException):  # e.g. no AUTH mechanism the server accepts
        return DeliveryResult(ok=False, permanent=True, reason="rejected", detail=str(exc))
    return DeliveryResult(ok=False, reason="connection", detail=f"{type(exc).__name__}: {exc}")


def _scrub(result: DeliveryResult, secret: str) -> DeliveryResult:
    if secret and secret in result.detail:
        return DeliveryResult(
            ok=result.ok,
            permanent=result.permanent,
            retry_after=result.retry_after,
            reason=result.reason,
            detail=result.detail.replace(secret, "***"),
        )
    return result
