"""Budget alerts from the engine's rollups: once per threshold per period, late usage counted,
to the org's billing email with a Slack line for support."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from alerts.budget.evaluator import BudgetEvaluator
from alerts.budget.rules import open_periods, threshold_minutes
from alerts.delivery.email import EmailRenderer
from alerts.delivery.links import LinkSettings
from alerts.delivery.message import message_from_json
from alerts.delivery.routes_file import load_routes
from alerts.store.repository import AlertStore
from alerts.store.schema import alert_budget_notices, alert_outbox
from billing_core.catalogue import DEFAULT_PLANS_FILE, load_plans
from tests.alerts.core import *  # noqa: F403
from tests.alerts.core import NOV_18, add_org, add_usage
from tests.support.clock import FrozenClock

ROUTES_ENV = {"ONCALL_EMAIL": "oncall@example.com",
              "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/services/T/B/support"}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOV_18)


@pytest.fixture
def budget(store: AlertStore, alerts_metrics, clock) -> BudgetEvaluator:
    return BudgetEvaluator(store=store, catalog=load_plans(DEFAULT_PLANS_FILE),
                           routing=load_routes(environ=ROUTES_ENV), links=LinkSettings(),
                           metrics=alerts_metrics, clock=clock)


def queued(engine: Engine) -> list[tuple[str, str, str]]:
    """(receiver, org_id, threshold) of every queued budget message."""
    with engine.connect() as conn:
        rows = conn.execute(select(alert_outbox.c.receiver, alert_outbox.c.payload)
                            .where(alert_outbox.c.kind == "budget")
                            .order_by(alert_outbox.c.id)).all()
    out = []
    for row in rows:
        message = message_from_json(row.payload)
        out.append((row.receiver, message.labels["org_id"], message.labels["threshold"]))
    return out


def test_an_org_past_half_its_hours_gets_one_email_and_support_one_slack_line(
        alerts_engine, budget):
    add_org(alerts_engine, "org_a")  # base_usage: 100 h included
    add_usage(alerts_engine, "org_a", date(2026, 11, 3), 50 * 60)
    report = budget.run_round()
    assert [(c.org_id, c.threshold) for c in report.crossings] == [("org_a", 50)]
    assert queued(alerts_engine) == [("customer-email", "org_a", "50"),
                                     ("support-slack", "org_a", "50")]
    budget.run_round()
    budget.run_round()
    assert len(queued(alerts_engine)) == 2


def test_a_round_counts_what_it_noted_and_a_steady_round_counts_nothing(alerts_engine, budget):
    add_org(alerts_engine, "org_n", plan="free")
    add_usage(alerts_engine, "org_n", date(2026, 11, 3), 9 * 60)  # 90 %: two thresholds
    first = budget.run_round()
    assert (first.notices, first.orgs) == (2, 1)
    steady = budget.run_round()
    assert (steady.notices, steady.orgs, steady.queued) == (0, 0, 0)


def test_the_email_goes_to_the_orgs_billing_address_with_the_numbers(alerts_engine, budget,
                                                                     store):
    add_org(alerts_engine, "org_b", email="finance@b.example")
    add_usage(alerts_engine, "org_b", date(2026, 11, 10), 91 * 60 + 30)
    budget.run_round()
    items = store.claim_due(now=NOV_18, worker="t", lease=seconds(60), limit=10)  # noqa: F405
    emails = {message_from_json(i.payload or "").labels["threshold"]: message_from_json(
        i.payload or "") for i in items if i.channel == "email"}
    assert sorted(emails) == ["90"]  # 91.5 h is past both: one email, naming the higher
    message = emails["90"]
    assert message.recipients == ("finance@b.example",)
    assert message.values["included_hours"] == 100 and message.values["used_hours"] == 91.5
    assert message.labels["period"] == "2026-11" and message.labels["plan_name"] == "Base + usage"


def test_crossing_50_then_90_sends_exactly_two_emails(alerts_engine, budget):
    add_org(alerts_engine, "org_c", plan="free")  # 10 h included
    add_usage(alerts_engine, "org_c", date(2026, 11, 1), 5 * 60)
    budget.run_round()
    add_usage(alerts_engine, "org_c", date(2026, 11, 2), 3 * 60)  # 8 h: 80 %
    budget.run_round()
    add_usage(alerts_engine, "org_c", date(2026, 11, 2), 60)  # 9 h: 90 %
    budget.run_round()
    budget.run_round()
    emails = [q for q in queued(alerts_engine) if q[0] == "customer-email"]
    assert emails == [("customer-email", "org_c", "50"), ("customer-email", "org_c", "90")]


def test_one_jump_past_several_thresholds_notes_each_and_sends_one_message_naming_the_highest(
        alerts_engine, budget):
    add_org(alerts_engine, "org_d", plan="free")
    add_usage(alerts_engine, "org_d", date(2026, 11, 5), 11 * 60 + 30)  # 115 % of 10 h
    report = budget.run_round()
    assert sorted(c.threshold for c in report.crossings) == [50, 90, 100]
    assert queued(alerts_engine) == [("customer-email", "org_d", "100"),
                                     ("support-slack", "org_d", "100")]
    budget.run_round()
    assert len(queued(alerts_engine)) == 2  # and never the 50 % or 90 % one later


def test_an_org_at_115_percent_in_its_first_round_reads_words_true_to_its_usage(
        alerts_engine, budget, store):
    add_org(alerts_engine, "org_k", plan="base_usage")  # overage allowed
    add_usage(alerts_engine, "org_k", date(2026, 11, 5), 115 * 60)
    budget.run_round()
    [item] = [i for i in store.claim_due(now=NOV_18, worker="t", lease=seconds(60),  # noqa: F405
                                         limit=10) if i.channel == "email"]
    rendered = EmailRenderer().render(message_from_json(item.payload or ""))
    text = " ".join(rendered.text.split())
    assert rendered.subject == "You have used all the included hours of your plan for November 2026"
    assert "used all the instance-hours included" in text and "115" in text
    assert "Nothing changes yet" not in text and "50 %" not in rendered.subject


def test_each_threshold_in_the_history_says_which_message_told_the_customer(
        alerts_engine, budget, store):
    add_org(alerts_engine, "org_l", plan="free")
    add_usage(alerts_engine, "org_l", date(2026, 11, 1), 5 * 60)
    budget.run_round()  # 50 %, its own email
    add_usage(alerts_engine, "org_l", date(2026, 11, 2), 6 * 60)
    budget.run_round()  # 90 % and 100 % together: one email naming 100 %
    history = {n.threshold: n for n in store.budget_history("org_l")}
    assert {t: n.told_with for t, n in history.items()} == {50: 50, 90: 100, 100: 100}
    assert [d.channel for d in history[90].deliveries] == ["email", "slack"]
    assert history[90].deliveries == history[100].deliveries


def test_a_round_telling_many_orgs_gives_support_one_digest_and_each_org_its_email(
        alerts_engine, budget, monkeypatch):
    monkeypatch.setattr("alerts.budget.store.ROUND_PAGE_ORGS", 7)  # several pages of orgs
    for n in range(25):
        add_org(alerts_engine, f"org_m{n:02}", plan="free")
        add_usage(alerts_engine, f"org_m{n:02}", date(2026, 11, 5), (5 + n % 7) * 60)
    report = budget.run_round()
    assert report.orgs == 25
    with alerts_engine.connect() as conn:
        rows = conn.execute(select(alert_outbox.c.channel, alert_outbox.c.payload)).all()
    emails = [message_from_json(r.payload) for r in rows if r.channel == "email"]
    assert sorted(m.labels["org_id"] for m in emails) == [f"org_m{n:02}" for n in range(25)]
    slack = [message_from_json(r.payload) for r in rows if r.channel == "slack"]
    [digest] = slack
    assert digest.labels["digest"] == "true"
    assert digest.summary.startswith("Budget: 25 orgs reached usage thresholds for 2026-11")
    assert "org_m06" in digest.description  # 11 h of 10 h: among the furthest over
    assert len(digest.description.splitlines()) == 10


def test_just_below_a_threshold_sends_nothing(alerts_engine, budget):
    add_org(alerts_engine, "org_e")
    add_usage(alerts_engine, "org_e", date(2026, 11, 5), threshold_minutes(50, 6000) - 1)
    assert budget.run_round().crossings == []
    add_usage(alerts_engine, "org_e", date(2026, 11, 5), 1)
    assert [c.threshold for c in budget.run_round().crossings] == [50]


def test_late_usage_for_earlier_days_still_alerts(alerts_engine, budget):
    add_org(alerts_engine, "org_f", plan="free")
    add_usage(alerts_engine, "org_f", date(2026, 11, 17), 4 * 60)
    assert budget.run_round().crossings == []
    add_usage(alerts_engine, "org_f", date(2026, 11, 2), 60)  # heartbeats that arrived late
    assert [c.threshold for c in budget.run_round().crossings] == [50]


def test_late_usage_of_last_month_alerts_during_the_close_grace_and_not_after(
        alerts_engine, budget, clock):
    add_org(alerts_engine, "org_g", plan="free")
    add_usage(alerts_engine, "org_g", date(2026, 10, 31), 4 * 60)
    clock.now = datetime(2026, 11, 1, 0, 30, tzinfo=UTC)  # October takes usage until 01:00
    assert budget.run_round().crossings == []
    add_usage(alerts_engine, "org_g", date(2026, 10, 31), 60)
    [crossing] = budget.run_round().crossings
    assert (crossing.period, crossing.threshold) == ("2026-10", 50)
    add_usage(alerts_engine, "org_g", date(2026, 10, 31), 4 * 60)
    clock.now = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)  # October is closed now
    assert budget.run_round().crossings == []


def test_each_month_starts_again(alerts_engine, budget, clock):
    add_org(alerts_engine, "org_h", plan="free")
    add_usage(alerts_engine, "org_h", date(2026, 11, 3), 5 * 60)
    budget.run_round()
    add_usage(alerts_engine, "org_h", date(2026, 12, 3), 5 * 60)
    clock.now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    [crossing] = budget.run_round().crossings
    assert (crossing.period, crossing.threshold) == ("2026-12", 50)


def test_an_org_on_a_plan_that_left_the_catalogue_counts_as_the_default_plan(alerts_engine,
                                                                            budget):
    add_org(alerts_engine, "org_i", plan="legacy_gold")
    add_usage(alerts_engine, "org_i", date(2026, 11, 3), 5 * 60)  # 50 % of free's 10 h
    assert [c.threshold for c in budget.run_round().crossings] == [50]


def test_two_evaluators_racing_still_notify_once(alerts_engine, budget, store, alerts_metrics,
                                                 clock):
    other = BudgetEvaluator(store=store, catalog=budget.catalog, routing=budget.routing,
                            links=LinkSettings(), metrics=alerts_metrics, clock=clock)
    add_org(alerts_engine, "org_j", plan="free")
    add_usage(alerts_engine, "org_j", date(2026, 11, 3), 5 * 60)
    budget.run_round()
    other.run_round()
    with alerts_engine.connect() as conn:
        assert len(conn.execute(select(alert_budget_notices)).all()) == 1
    assert len(queued(alerts_engine)) == 2


def test_open_periods_include_last_month_only_during_its_grace():
    grace = timedelta(hours=1)
    assert [p.key for p in open_periods(datetime(2026, 11, 1, 0, 59, tzinfo=UTC),
                                        close_grace=grace)] == ["2026-11", "2026-10"]
    assert [p.key for p in open_periods(datetime(2026, 11, 1, 1, 0, tzinfo=UTC),
                                        close_grace=grace)] == ["2026-11"]


def test_threshold_minutes_use_the_engines_integer_rule():
    assert threshold_minutes(50, 600) == 300
    assert threshold_minutes(90, 601) == 541  # 540.9 rounds up: 540 is below 90 %
    assert threshold_minutes(100, 0) == 1
