"""The routes file: the shipped routing, and bad files refused with the field and the reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from alerts.delivery.routes_file import (
    DEFAULT_ROUTES_FILE,
    RoutesFileError,
    load_routes,
    parse_duration,
    parse_routes,
    routes_file_from_env,
)
from alerts.delivery.routing import RoutingTable, route
from tests.alerts.messages import shipped_rules

ENV = {"ONCALL_EMAIL": "oncall@example.com", "SLACK_WEBHOOK_URL": "https://hooks.example/T/B/x"}


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return load_routes(environ=ENV)


def names(table: RoutingTable, labels: dict[str, str], kind: str = "rule") -> list[str]:
    return [d.receiver.name for d in route(table, labels, kind=kind)]


# ---------------------------------------------------------------------------- shipped routes


@pytest.mark.parametrize("severity", ["P0", "P1"])
def test_p0_and_p1_page_oncall_by_email_and_slack(table: RoutingTable, severity: str) -> None:
    labels = {"alertname": "BillingEngineDown", "severity": severity}
    assert names(table, labels) == ["oncall-email", "oncall-slack"]
    email, slack = table.route(labels)
    assert email.receiver.recipients(labels) == ("oncall@example.com",)
    assert slack.receiver.webhook_url == "https://hooks.example/T/B/x"
    assert email.repeat_interval == timedelta(hours=4)
    assert email.send_resolved is True


@pytest.mark.parametrize("severity", ["P2", "P3"])
def test_p2_and_p3_go_to_slack_only(table: RoutingTable, severity: str) -> None:
    assert names(table, {"alertname": "RefundRateHigh", "severity": severity}) == ["oncall-slack"]


def test_every_shipped_rule_reaches_someone_by_its_severity(table: RoutingTable) -> None:
    for name, rule in shipped_rules().items():
        labels = {"alertname": name, **rule["labels"]}
        got = names(table, labels)
        if rule["labels"]["severity"] in ("P0", "P1"):
            assert got == ["oncall-email", "oncall-slack"], name
        else:
            assert got == ["oncall-slack"], name


def test_burn_rate_pages_group_by_alert_name_and_slo(table: RoutingTable) -> None:
    labels = {"alertname": "BillingLatencyFastBurn", "severity": "P1", "slo": "latency"}
    [email, _] = table.route(labels)
    assert email.group_by == ("alertname", "slo")
    assert email.group_key(labels) == 'alertname="BillingLatencyFastBurn",slo="latency"'
    down = {"alertname": "BillingEngineDown", "severity": "P0", "instance": "a"}
    assert email.group_key(down) == 'alertname="BillingEngineDown",slo=""'
    [slack] = table.route({"alertname": "RefundRateHigh", "severity": "P2"})
    assert slack.group_by == ("alertname",)


def test_budget_alerts_go_to_the_customer_and_support_once(table: RoutingTable) -> None:
    labels = {
        "org_id": "org_acme",
        "billing_email": "billing@acme.example",
        "threshold": "90",
        "period": "2026-11",
        "severity": "P1",  # a severity on a budget alert does not make it a page
    }
    customer, support = table.route(labels, kind="budget")
    assert (customer.receiver.name, support.receiver.name) == ("customer-email", "support-slack")
    assert customer.receiver.recipients(labels) == ("billing@acme.example",)
    assert customer.repeat_interval is None
    assert customer.send_resolved is False
    assert customer.group_by == ("org_id", "period", "threshold")


def test_an_unknown_severity_still_reaches_oncall(table: RoutingTable) -> None:
    assert names(table, {"alertname": "Custom", "severity": "critical"}) == [
        "oncall-email",
        "oncall-slack",
    ]
    assert names(table, {"alertname": "NoSeverity"}) == ["oncall-email", "oncall-slack"]


def test_slack_and_pagerduty_stay_off_until_a_webhook_and_a_routing_key_are_set() -> None:
    table = load_routes(environ={"ONCALL_EMAIL": "oncall@example.com"})
    assert names(table, {"severity": "P0"}) == ["oncall-email"]
    assert names(table, {"severity": "P3"}) == []
    assert names(table, {"billing_email": "b@acme.example"}, kind="budget") == ["customer-email"]
    assert {r.name for r in table.disabled_receivers()} == {
        "oncall-slack", "support-slack", "incidents-slack", "oncall-pagerduty"}


def test_webhook_urls_are_not_in_the_repr(table: RoutingTable) -> None:
    assert "hooks.example" not in repr(table)


def test_routes_file_setting(tmp_path: Path) -> None:
    assert routes_file_from_env({}) == DEFAULT_ROUTES_FILE
    assert routes_file_from_env({"ROUTES_FILE": str(tmp_path / "r.yml")}) == tmp_path / "r.yml"


# ---------------------------------------------------------------------------- format


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = """
version: 1
receivers:
  ops: {email: {to: ["${OPS_EMAIL:-ops@example.com}"]}}
  chat: {slack: {webhook_url: "${CHAT_URL}"}}
routes:
  - match: {severity: P0}
    receivers: [ops]
    continue: true
  - receivers: [chat, ops]
    repeat_interval: 1h30m
"""


def test_continue_defaults_and_env_defaults(tmp_path: Path) -> None:
    table = load_routes(write(tmp_path, MINIMAL), environ={"CHAT_URL": "https://chat.example/x"})
    page = table.route({"severity": "P0"})
    # ops comes from the first route (its settings apply); chat from the catch-all.
    assert [(d.receiver.name, d.route.name) for d in page] == [
        ("ops", "route 0"),
        ("chat", "route 1"),
    ]
    assert page[0].receiver.to == ("ops@example.com",)
    assert page[0].repeat_interval == timedelta(hours=4)
    assert page[1].repeat_interval == timedelta(hours=1, minutes=30)
    assert [d.receiver.name for d in table.route({"severity": "P3"})] == ["chat", "ops"]


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("version: 2\nreceivers: {a: {email: {to: [a@b.c]}}}\nroutes: [{receivers: [a]}]",
         "version", "must be 1"),
        ("version: 1\nreceivers: {}\nroutes: [{receivers: [a]}]",
         "receivers", "must be a non-empty mapping"),
        ("version: 1\nreceivers: {a: {pager: {}}}\nroutes: [{receivers: [a]}]",
         "receivers.a", "exactly one of email, slack, webhook or pagerduty"),
        ("version: 1\nreceivers: {a: {email: {to: [not-an-address]}}}\nroutes: [{receivers: [a]}]",
         "receivers.a.email.to[0]", "is not an address"),
        ("version: 1\nreceivers: {a: {email: {}}}\nroutes: [{receivers: [a]}]",
         "receivers.a.email", "needs to (addresses) or to_label"),
        ("version: 1\nreceivers: {a: {slack: {webhook_url: ftp://x}}}\nroutes: [{receivers: [a]}]",
         "receivers.a.slack.webhook_url", "must be an http(s) URL"),
        ("version: 1\nreceivers: {a: {email: {to: [a@b.c]}}}\nroutes: [{receivers: [b]}]",
         "routes[0].receivers[0]", "unknown receiver 'b'"),
        ("version: 1\nreceivers: {a: {email: {to: [a@b.c]}}}\nroutes: [{match: {}}]",
         "routes[0].receivers", "is required"),
        ("version: 1\nreceivers: {a: {email: {to: [a@b.c]}}}\nroutes: []",
         "routes", "must be a non-empty list"),
        ("version: 1\nreceivers: {a: {email: {to: [a@b.c]}}}\n"
         "routes: [{receivers: [a], repeat_interval: 4 hours}]",
         "routes[0].repeat_interval", "must be a duration like 4h"),
        ("version: 1\nreceivers: {a: {email: {to: [a@b.c]}}}\n"
         "routes: [{receivers: [a], repeat_interval: 0m}]",
         "routes[0].repeat_interval", "must be longer than zero"),
        ("version: 1\nreceivers: {a: {email: {to: [a@b.c]}}}\n"
         "routes: [{receivers: [a], send_resolved: sometimes}]",
         "routes[0].send_resolved", "must be true or false"),
        ("version: 1\nreceivers: {a: {email: {to: [a@b.c]}}}\n"
         "routes: [{receivers: [a], match: {kind: alert}}]",
         "routes[0].match.kind",
         "must be one of ['rule', 'budget', 'test', 'escalation', 'incident']"),
        ("version: 1\nreceivers: {a: {email: {to: [a@b.c]}}}\n"
         "routes: [{receivers: [a], match: {severity: {P0: yes}}}]",
         "routes[0].match.severity", "must be a list of strings"),
        ("version: 1\nreceivers: {a: {email: {to: [a@b.c]}}}\n"
         "routes: [{receivers: [a], group_by: [alert-name]}]",
         "routes[0].group_by", "must list label names"),
        ("version: 1\nreceivers: {a: {email: {to: [a@b.c]}}}\n"
         "routes: [{receivers: [a], recievers: [a]}]",
         "routes[0].recievers", "unknown field"),
        ("version: 1\ndefault: {}\nreceivers: {a: {email: {to: [a@b.c]}}}\n"
         "routes: [{receivers: [a]}]",
         "default", "unknown field"),
    ],
)  # fmt: skip
def test_a_bad_routes_file_names_the_field_and_the_reason(
    tmp_path: Path, text: str, field: str, reason: str
) -> None:
    with pytest.raises(RoutesFileError) as caught:
        load_routes(write(tmp_path, text), environ={})
    matching = [e for e in caught.value.errors if e.field == field]
    assert matching, f"no error for {field}: {caught.value}"
    assert reason in matching[0].reason
    assert str(tmp_path / "routes.yml") in str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = "version: 3\nreceivers: {a: {pager: {}}}\nroutes: [{receivers: [zz]}]"
    with pytest.raises(RoutesFileError) as caught:
        load_routes(write(tmp_path, text), environ={})
    assert {e.field for e in caught.value.errors} >= {
        "version",
        "receivers.a",
        "routes[0].receivers[0]",
    }


def test_a_webhook_url_is_never_echoed_in_an_error(tmp_path: Path) -> None:
    text = (
        "version: 1\nreceivers: {a: {slack: {webhook_url: 'hooks.example/T/B/secret'}}}\n"
        "routes: [{receivers: [a]}]"
    )
    with pytest.raises(RoutesFileError) as caught:
        load_routes(write(tmp_path, text), environ={})
    assert "secret" not in str(caught.value)


def test_unreadable_and_invalid_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(RoutesFileError, match="cannot be read"):
        load_routes(tmp_path / "missing.yml")
    with pytest.raises(RoutesFileError, match="is not valid YAML at line 2"):
        load_routes(write(tmp_path, "version: 1\n\treceivers: {}\n"))
    with pytest.raises(RoutesFileError, match="must be a mapping"):
        parse_routes(["not", "a", "mapping"])


def test_durations() -> None:
    assert parse_duration("4h") == timedelta(hours=4)
    assert parse_duration("1d2h3m4s") == timedelta(days=1, hours=2, minutes=3, seconds=4)
    assert parse_duration("never") is None
    assert parse_duration(None) is None
    for bad in ("", "4", "h", "4 h", "-1h", 3600):
        with pytest.raises(ValueError):
            parse_duration(bad)


# ---------------------------------------------------------------------------- webhook, PagerDuty

PD_KEY = "pd0routing0key0for0tests0000001a"
CHANNELS = """
version: 1
receivers:
  ops: {email: {to: [ops@example.com]}}
  chat: {slack: {webhook_url: "${CHAT_URL}"}}
  teams:
    webhook:
      url: "${TEAMS_URL}"
      bearer_token: "${TEAMS_TOKEN}"
      timeout: 5s
  tickets:
    webhook:
      url: https://tickets.example.com/alertmanager
      basic_auth: {username: alerts, password: "${TICKETS_PASSWORD}"}
      send_resolved: false
  pager:
    pagerduty:
      routing_key: "${PAGERDUTY_ROUTING_KEY}"
      url: "${PAGERDUTY_URL:-https://events.pagerduty.com/v2/enqueue}"
routes:
  - match: {kind: budget}
    receivers: [ops, chat]
  - receivers: [ops, chat, teams, tickets, pager]
"""
CHANNELS_ENV = {"CHAT_URL": "https://chat.example/x", "TEAMS_URL": "https://teams.example/hook",
                "TEAMS_TOKEN": "teams-token-7a1", "TICKETS_PASSWORD": "tickets-pw-3c9",
                "PAGERDUTY_ROUTING_KEY": PD_KEY}


def test_p0_and_p1_page_pagerduty_once_its_routing_key_is_set() -> None:
    table = load_routes(environ={**ENV, "PAGERDUTY_ROUTING_KEY": PD_KEY})
    for severity in ("P0", "P1"):
        assert names(table, {"alertname": "X", "severity": severity}) == [
            "oncall-email", "oncall-slack", "oncall-pagerduty"]
    assert names(table, {"alertname": "X", "severity": "P2"}) == ["oncall-slack"]
    pager = table.receiver("oncall-pagerduty")
    assert (pager.channel, pager.routing_key) == ("pagerduty", PD_KEY)
    assert pager.events_url == "https://events.pagerduty.com/v2/enqueue"


def test_webhook_and_pagerduty_receivers_read_their_settings(tmp_path: Path) -> None:
    table = load_routes(write(tmp_path, CHANNELS), environ=CHANNELS_ENV)

    teams, tickets, pager = (table.receiver(n) for n in ("teams", "tickets", "pager"))
    assert (teams.channel, teams.webhook_url, teams.bearer_token, teams.timeout_seconds) == (
        "webhook", "https://teams.example/hook", "teams-token-7a1", 5.0)
    assert tickets.basic_auth == ("alerts", "tickets-pw-3c9")
    assert pager.routing_key == PD_KEY and pager.timeout_seconds is None
    assert all(r.enabled for r in (teams, tickets, pager))
    resolved = {d.receiver.name: d.send_resolved for d in table.route({"severity": "P1"})}
    assert resolved == {"ops": True, "chat": True, "teams": True, "tickets": False,
                        "pager": True}


def test_budget_messages_skip_webhook_and_pagerduty_receivers(tmp_path: Path) -> None:
    catch_all = CHANNELS.replace("  - match: {kind: budget}\n    receivers: [ops, chat]\n", "")
    table = load_routes(write(tmp_path, catch_all), environ=CHANNELS_ENV)

    assert names(table, {"org_id": "org_acme"}, kind="budget") == ["ops", "chat"]
    assert names(table, {"severity": "P1"}) == ["ops", "chat", "teams", "tickets", "pager"]


@pytest.mark.parametrize("variable", ["TEAMS_URL", "TEAMS_TOKEN", "TICKETS_PASSWORD",
                                      "PAGERDUTY_ROUTING_KEY"])
def test_a_receiver_whose_url_or_secret_comes_out_empty_is_disabled(
        tmp_path: Path, variable: str) -> None:
    table = load_routes(write(tmp_path, CHANNELS), environ={**CHANNELS_ENV, variable: ""})

    [disabled] = table.disabled_receivers()
    expected = {"TEAMS_URL": ("teams", ("url",)), "TEAMS_TOKEN": ("teams", ("bearer_token",)),
                "TICKETS_PASSWORD": ("tickets", ("basic_auth.password",)),
                "PAGERDUTY_ROUTING_KEY": ("pager", ("routing_key",))}[variable]
    assert (disabled.name, disabled.unset) == expected
    assert disabled.name not in names(table, {"severity": "P0"})


@pytest.mark.parametrize(
    ("receiver", "field", "reason"),
    [
        ("{webhook: {url: ftp://x}}", "receivers.a.webhook.url", "must be an http(s) URL"),
        ("{webhook: {}}", "receivers.a.webhook.url", "is required"),
        ("{webhook: {url: 'https://x', bearer_token: t, basic_auth: {username: u, password: p}}}",
         "receivers.a.webhook.basic_auth", "bearer_token or basic_auth, not both"),
        ("{webhook: {url: 'https://x', basic_auth: {username: u}}}",
         "receivers.a.webhook.basic_auth", "must have username and password"),
        ("{webhook: {url: 'https://x', bearer_token: [t]}}",
         "receivers.a.webhook.bearer_token", "must be a string"),
        ("{webhook: {url: 'https://x', timeout: soon}}", "receivers.a.webhook.timeout",
         "must be a duration"),
        ("{webhook: {url: 'https://x', send_resolved: maybe}}",
         "receivers.a.webhook.send_resolved", "must be true or false"),
        ("{webhook: {url: 'https://x', max_alerts: 5}}", "receivers.a.webhook.max_alerts",
         "unknown field"),
        ("{pagerduty: {}}", "receivers.a.pagerduty.routing_key", "is required"),
        ("{pagerduty: {routing_key: short-key-4f}}", "receivers.a.pagerduty.routing_key",
         "must be the 32-character integration key"),
        (f"{{pagerduty: {{routing_key: {PD_KEY}, url: events.pagerduty.com}}}}",
         "receivers.a.pagerduty.url", "must be an http(s) URL"),
        (f"{{pagerduty: {{routing_key: {PD_KEY}, service_key: x}}}}",
         "receivers.a.pagerduty.service_key", "unknown field"),
    ],
)  # fmt: skip
def test_a_bad_webhook_or_pagerduty_receiver_names_the_field(
        tmp_path: Path, receiver: str, field: str, reason: str) -> None:
    text = f"version: 1\nreceivers: {{a: {receiver}}}\nroutes: [{{receivers: [a]}}]"
    with pytest.raises(RoutesFileError) as caught:
        load_routes(write(tmp_path, text), environ={})
    matching = [e for e in caught.value.errors if e.field == field]
    assert matching, f"no error for {field}: {caught.value}"
    assert reason in matching[0].reason
    assert "short-key-4f" not in str(caught.value)


@pytest.mark.parametrize("receiver", ["{webhook: {url: 'https://x'}}",
                                      f"{{pagerduty: {{routing_key: {PD_KEY}}}}}"])
def test_a_budget_route_naming_a_webhook_or_pagerduty_receiver_is_refused(
        tmp_path: Path, receiver: str) -> None:
    text = (f"version: 1\nreceivers: {{a: {receiver}, b: {{email: {{to_label: billing_email}}}}}}"
            "\nroutes: [{match: {kind: [rule, budget]}, receivers: [b, a]}]")
    with pytest.raises(RoutesFileError) as caught:
        load_routes(write(tmp_path, text), environ={})
    [error] = caught.value.errors
    assert error.field == "routes[0].receivers[1]"
    assert "budget messages go to email and Slack receivers only" in error.reason


def test_secrets_are_listed_for_the_log_scrubber_and_never_in_a_repr(tmp_path: Path) -> None:
    table = load_routes(write(tmp_path, CHANNELS), environ=CHANNELS_ENV)

    secrets = set(table.secret_values())
    assert {"https://teams.example/hook", "teams-token-7a1", "tickets-pw-3c9", PD_KEY,
            "https://chat.example/x"} <= secrets
    assert not any(secret in repr(table) for secret in secrets)
