"""Email channel against a real SMTP server (aiosmtpd): what arrives, and how failures map."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import jinja2
import pytest

from alerts.delivery.email import EmailChannel, EmailRenderer, SmtpConfig
from devstack.receivers import SilentTcpServer, SmtpServer, TlsFiles, closed_port
from tests.alerts.conftest import SMTP_LOGIN
from tests.alerts.messages import budget_message, rule_message

NBSP = "\u00a0"
RUNBOOK = "https://console.example.com/runbooks?runbook=slo&section=billingavailabilityfastburn"
DASHBOARD = "https://grafana.example.com/d/billing-overview"
CONSOLE = "https://console.example.com/alerts?fingerprint=fp-billingavailabilityfastburn"


def config_for(server: SmtpServer | SilentTcpServer, **overrides: object) -> SmtpConfig:
    base = SmtpConfig(host=server.host, port=server.port, sender="alerts@billing.example")
    return replace(base, **overrides)  # type: ignore[arg-type]


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [value for name, value in attrs if tag == "a" and name == "href" and value]


def hrefs(html: str) -> list[str]:
    parser = Links()
    parser.feed(html)
    return parser.hrefs


# ---------------------------------------------------------------------------- what arrives


def test_a_page_arrives_as_text_and_html_with_value_and_links(smtp_server: SmtpServer) -> None:
    result = EmailChannel(config_for(smtp_server)).send(rule_message())

    assert result.ok, result
    [mail] = smtp_server.wait_for_messages(1)
    assert mail.mail_from == "alerts@billing.example"
    assert mail.rcpt_tos == ("oncall@example.com",)
    assert mail.subject == (
        "[P1] FIRING BillingAvailabilityFastBurn: "
        "Billing engine is burning its availability error budget fast"
    )
    assert mail.message.get_content_type() == "multipart/alternative"
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert mail.message["X-Alert-Fingerprint"] == "fp-billingavailabilityfastburn"

    text = mail.text or ""
    assert "spending its error budget at 20.04x" in text
    assert "Value:      20.04" in text
    assert f"Runbook:    {RUNBOOK}\n" in text
    assert f"Dashboard:  {DASHBOARD}\n" in text
    assert f"Console:    {CONSOLE}\n" in text
    assert "slo = availability" in text

    html = mail.html or ""
    assert hrefs(html) == [RUNBOOK, DASHBOARD, CONSOLE]
    assert "<strong>20.04</strong>" in html


def test_a_resolved_alert_says_resolved_and_for_how_long(smtp_server: SmtpServer) -> None:
    firing = rule_message("BillingEngineDown", value=0)
    resolved = replace(
        firing, state="resolved", ends_at=firing.starts_at + timedelta(minutes=7, seconds=3)
    )
    channel = EmailChannel(config_for(smtp_server))

    assert channel.send(firing).ok
    assert channel.send(resolved).ok

    first, second = smtp_server.wait_for_messages(2)
    assert first.subject == "[P0] FIRING BillingEngineDown: Billing engine is down"
    assert second.subject == "[RESOLVED] BillingEngineDown: Billing engine is down"
    assert (second.text or "").startswith("RESOLVED: BillingEngineDown is no longer firing.")
    assert "Resolved:   2026-11-03 14:12:03 UTC (fired for 7m 03s)" in (second.text or "")
    # The resolved message threads with the page it closes.
    assert first.message["References"] == second.message["References"]
    runbook = (
        "https://console.example.com/runbooks?runbook=billing-engine&section=billingenginedown"
    )
    assert runbook in hrefs(second.html or "")


def test_labels_and_text_are_escaped_in_html_but_not_in_text(smtp_server: SmtpServer) -> None:
    message = rule_message(
        "PaymentCircuitBreakerOpen",
        value=1,
        summary="Breaker <b>open</b> & stuck",
    )
    message = replace(message, labels={**message.labels, "instance": "<script>alert(1)</script>"})

    assert EmailChannel(config_for(smtp_server)).send(message).ok

    [mail] = smtp_server.wait_for_messages(1)
    html = mail.html or ""
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Breaker &lt;b&gt;open&lt;/b&gt; &amp; stuck" in html
    assert "instance = <script>alert(1)</script>" in (mail.text or "")


def test_a_group_of_alerts_is_one_email_listing_each(smtp_server: SmtpServer) -> None:
    message = rule_message("BillingEngineNotReady", value=0)
    group = (
        {"alertname": "BillingEngineNotReady", "instance": "engine-1:8006"},
        {"alertname": "BillingEngineNotReady", "instance": "engine-2:8006"},
    )

    assert EmailChannel(config_for(smtp_server)).send(replace(message, group=group)).ok

    [mail] = smtp_server.wait_for_messages(1)
    assert mail.subject.startswith("[P1] FIRING BillingEngineNotReady (2 alerts): ")
    assert "  - instance=engine-1:8006\n  - instance=engine-2:8006\n" in (mail.text or "")


BUDGET_90_TEXT = f"""\
Hello Acme Robotics,

Your organisation has passed 90{NBSP}% of the instance-hours included in your
Base{NBSP}+{NBSP}usage{NBSP}plan for November 2026: 91.5 hours used of 100 included
(91.5{NBSP}%). 8.5 included hours are left for this month.

What happens next:

Nothing changes yet. Once the included hours are used up, your instances
keep running and each further hour costs $0.25, added to your invoice for
November 2026.

How we count: each minute in which an instance sends at least one heartbeat
counts once, idle minutes included. The count starts again from zero on the
1st of each month (UTC); this period runs to the end of 30 November 2026
(UTC).

We send this email once for each of the 50 %, 90 % and 100 % marks in a
month, and only once when your usage passes several of them at the same
time. Questions about your usage? Contact our support team and mention your
organisation id org_acme.
"""


def test_the_customer_budget_email_reads_plainly(smtp_server: SmtpServer) -> None:
    assert EmailChannel(config_for(smtp_server)).send(budget_message(90)).ok

    [mail] = smtp_server.wait_for_messages(1)
    assert mail.rcpt_tos == ("billing@acme.example",)
    assert mail.subject == "You have used 90 % of your included hours for November 2026"
    assert mail.text == BUDGET_90_TEXT
    html = mail.html or ""
    assert "91.5 h" in html and "of 100 h included" in html and "$0.25" in html
    assert hrefs(html) == []  # nothing internal (runbooks, console) goes to a customer
    assert "X-Alert-Fingerprint" not in mail.message


def test_budget_emails_state_what_happens_past_the_included_hours(
    smtp_server: SmtpServer,
) -> None:
    channel = EmailChannel(config_for(smtp_server))
    free = budget_message(100, plan="free", used_hours=10.2, included_hours=10)
    team = budget_message(50, plan="team", used_hours=512, included_hours=1000)

    assert channel.send(free).ok
    assert channel.send(team).ok

    free_mail, team_mail = smtp_server.wait_for_messages(2)
    assert free_mail.subject == (
        "You have used all the included hours of your plan for November 2026"
    )
    free_text = " ".join((free_mail.text or "").split())
    assert "10.2 hours used of 10 included" in free_text
    assert "Your plan has no overage: you are never charged for hours beyond the 10" in free_text
    assert "$" not in free_text
    team_text = " ".join((team_mail.text or "").split())
    assert "each further hour costs $0.15" in team_text
    assert "488 included hours are left" in team_text


def test_a_test_email_says_it_is_a_test(smtp_server: SmtpServer) -> None:
    message = replace(
        rule_message(),
        kind="test",
        summary="Delivery check requested by support",
        description="Sent with POST /admin/test-email",
    )

    assert EmailChannel(config_for(smtp_server)).send(message).ok

    [mail] = smtp_server.wait_for_messages(1)
    assert mail.subject == "[TEST] Delivery check requested by support"
    assert "No alert is firing" in (mail.text or "")
    assert RUNBOOK in (mail.text or "")


# ---------------------------------------------------------------------------- login and TLS


def test_login_without_tls_sends_the_configured_user(smtp_server_with_login: SmtpServer) -> None:
    user, password = SMTP_LOGIN
    config = config_for(smtp_server_with_login, username=user, password=password)

    assert EmailChannel(config).send(rule_message()).ok

    [mail] = smtp_server_with_login.wait_for_messages(1)
    assert mail.login == user
    assert mail.tls is False


def test_a_wrong_password_is_permanent_and_never_shown(
    smtp_server_with_login: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = config_for(smtp_server_with_login, username="alerts", password="wrong-Pa55word")

    result = EmailChannel(config).send(rule_message())

    assert (result.ok, result.permanent, result.reason) == (False, True, "rejected")
    assert "535" in result.detail
    assert "wrong-Pa55word" not in result.detail + caplog.text + repr(config)
    # smtplib tries each mechanism the server offers (PLAIN, then LOGIN).
    assert set(smtp_server_with_login.failed_logins) == {"alerts"}
    assert smtp_server_with_login.messages == []


def test_a_server_that_requires_login_refuses_an_anonymous_sender(
    smtp_server_with_login: SmtpServer,
) -> None:
    result = EmailChannel(config_for(smtp_server_with_login)).send(rule_message())

    assert (result.ok, result.permanent, result.reason) == (False, True, "rejected")
    assert "530" in result.detail


def test_starttls_then_login(smtp_server_starttls: SmtpServer, tls_files: TlsFiles) -> None:
    user, password = SMTP_LOGIN
    config = config_for(smtp_server_starttls, starttls=True, username=user, password=password)
    channel = EmailChannel(config, ssl_context=tls_files.client_context())

    assert channel.send(rule_message()).ok

    [mail] = smtp_server_starttls.wait_for_messages(1)
    assert (mail.tls, mail.login) == (True, user)


def test_an_untrusted_certificate_is_not_sent_to(smtp_server_starttls: SmtpServer) -> None:
    user, password = SMTP_LOGIN
    config = config_for(smtp_server_starttls, starttls=True, username=user, password=password)

    result = EmailChannel(config).send(rule_message())  # the system trust store

    assert (result.ok, result.permanent, result.reason) == (False, False, "connection")
    assert "TLS" in result.detail
    assert smtp_server_starttls.messages == []


def test_without_starttls_a_tls_only_server_cannot_log_in(
    smtp_server_starttls: SmtpServer,
) -> None:
    user, password = SMTP_LOGIN
    config = config_for(smtp_server_starttls, username=user, password=password)

    result = EmailChannel(config).send(rule_message())

    assert (result.ok, result.permanent, result.reason) == (False, True, "rejected")
    assert password not in result.detail


# ---------------------------------------------------------------------------- failures


def test_a_refused_connection_is_retried() -> None:
    config = SmtpConfig(host="127.0.0.1", port=closed_port(), timeout_seconds=2)

    result = EmailChannel(config).send(rule_message())

    assert (result.ok, result.permanent, result.reason) == (False, False, "connection")


def test_a_server_that_never_answers_times_out() -> None:
    with SilentTcpServer() as silent:
        result = EmailChannel(config_for(silent, timeout_seconds=0.3)).send(rule_message())

    assert (result.ok, result.permanent, result.reason) == (False, False, "timeout")


def test_a_temporary_4xx_is_retried(smtp_server: SmtpServer) -> None:
    smtp_server.script_data_replies("451 4.3.0 Try again later")
    channel = EmailChannel(config_for(smtp_server))

    first = channel.send(rule_message())
    second = channel.send(rule_message())

    assert (first.ok, first.permanent, first.reason) == (False, False, "server_error")
    assert "451" in first.detail
    assert second.ok
    assert len(smtp_server.wait_for_messages(1)) == 1


def test_a_5xx_answer_is_permanent(smtp_server: SmtpServer) -> None:
    smtp_server.script_data_replies("554 5.6.0 Message refused")

    result = EmailChannel(config_for(smtp_server)).send(rule_message())

    assert (result.ok, result.permanent, result.reason) == (False, True, "rejected")
    assert "554" in result.detail


def test_all_recipients_refused_is_permanent(smtp_server: SmtpServer) -> None:
    smtp_server.reject_recipient("billing@acme.example")

    result = EmailChannel(config_for(smtp_server)).send(budget_message())

    assert (result.ok, result.permanent, result.reason) == (False, True, "rejected")
    assert "billing@acme.example (550)" in result.detail


def test_all_recipients_refused_for_now_is_retried(smtp_server: SmtpServer) -> None:
    smtp_server.reject_recipient("billing@acme.example", "450 4.2.0 Greylisted, come back later")

    result = EmailChannel(config_for(smtp_server)).send(budget_message())

    assert (result.ok, result.permanent, result.reason) == (False, False, "server_error")


def test_one_refused_recipient_does_not_stop_the_others(smtp_server: SmtpServer) -> None:
    smtp_server.reject_recipient("gone@example.com")
    message = replace(rule_message(), recipients=("oncall@example.com", "gone@example.com"))

    result = EmailChannel(config_for(smtp_server)).send(message)

    assert result.ok
    assert "refused: gone@example.com (550)" in result.detail
    [mail] = smtp_server.wait_for_messages(1)
    assert mail.rcpt_tos == ("oncall@example.com",)


def test_a_message_without_recipients_is_permanent(smtp_server: SmtpServer) -> None:
    result = EmailChannel(config_for(smtp_server)).send(replace(rule_message(), recipients=()))

    assert (result.ok, result.permanent, result.reason) == (False, True, "rejected")
    assert smtp_server.messages == []


def test_a_budget_message_missing_its_numbers_is_permanent(smtp_server: SmtpServer) -> None:
    message = replace(budget_message(), values={})

    result = EmailChannel(config_for(smtp_server)).send(message)

    assert (result.ok, result.permanent, result.reason) == (False, True, "rejected")
    assert "used_hours" in result.detail


# ---------------------------------------------------------------------------- config and rendering


def test_smtp_config_from_env() -> None:
    config = SmtpConfig.from_env(
        {
            "SMTP_HOST": "mail.example.com",
            "SMTP_PORT": "587",
            "SMTP_STARTTLS": "true",
            "SMTP_USERNAME": "alerts",
            "SMTP_PASSWORD": "hunter2-secret",
            "SMTP_FROM": "alerts@example.com",
        }
    )
    assert (config.host, config.port, config.starttls) == ("mail.example.com", 587, True)
    assert (config.username, config.password, config.sender) == (
        "alerts",
        "hunter2-secret",
        "alerts@example.com",
    )
    assert "hunter2-secret" not in repr(config)
    assert SmtpConfig.from_env({}) == SmtpConfig()
    assert SmtpConfig().starttls is False


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SMTP_PORT": "smtp"}, "SMTP_PORT"),
        ({"SMTP_PORT": "70000"}, "SMTP_PORT"),
        ({"SMTP_STARTTLS": "maybe"}, "SMTP_STARTTLS"),
        ({"SMTP_TIMEOUT_SECONDS": "0"}, "SMTP_TIMEOUT_SECONDS"),
    ],
)
def test_a_malformed_smtp_setting_is_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        SmtpConfig.from_env(env)


def test_templates_refuse_an_undefined_variable(tmp_path: Path) -> None:
    directory = tmp_path
    (directory / "email_rule.txt.j2").write_text("{{ no_such_thing }}")
    (directory / "email_rule.html.j2").write_text("<p>{{ summary }}</p>")
    with pytest.raises(jinja2.UndefinedError):
        EmailRenderer(directory).render(rule_message())
