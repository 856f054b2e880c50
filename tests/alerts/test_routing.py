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


def test_slack_stays_off_until_a_webhook_is_set() -> None:
    table = load_routes(environ={"ONCALL_EMAIL": "oncall@example.com"})
    assert names(table, {"severity": "P0"}) == ["oncall-email"]
    assert names(table, {"severity": "P3"}) == []
    assert names(table, {"billing_email": "b@acme.example"}, kind="budget") == ["customer-email"]
    assert {r.name for r in table.disabled_receivers()} == {"oncall-slack", "support-slack",
                                                             "incidents-slack"}


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
         "receivers.a", "exactly one of email or slack"),
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
