"""Chart builders are pure functions: a DataFrame in, a Plotly figure out, no Streamlit needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from dashboard import charts
from dashboard.formatting import (
    breaker_state_words,
    budget_alerts_frame,
    format_duration,
    format_hours,
    format_money,
    format_percent,
    format_time,
    payments_frame,
)
from dashboard.runbooks import (
    console_runbook_link,
    find_section,
    github_slug,
    list_runbooks,
    read_runbook,
)


def _times(n: int) -> list[datetime]:
    start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    return [start + timedelta(minutes=i) for i in range(n)]


def _hline_values(fig) -> list[float]:  # type: ignore[no-untyped-def]
    return sorted(shape.y0 for shape in fig.layout.shapes)


def test_burn_rate_chart_draws_page_and_ticket_thresholds_in_window_order():
    df = pd.DataFrame({"window": ["1h", "5m", "3d"], "burn_rate": [2.0, 20.0, 0.5]})
    fig = charts.burn_rate_chart(df)
    assert list(fig.data[0].x) == ["5m", "1h", "3d"]
    assert list(fig.data[0].y) == [20.0, 2.0, 0.5]
    assert _hline_values(fig) == [1.0, 3.0, 6.0, 14.4]
    texts = [a.text for a in fig.layout.annotations]
    assert "page 14.4×" in texts and "ticket 1×" in texts
    assert fig.layout.yaxis.title.text and fig.layout.xaxis.title.text


def test_latency_chart_is_in_milliseconds_with_the_150_ms_objective():
    df = pd.DataFrame({"time": _times(2) * 3, "quantile": ["p50"] * 2 + ["p95"] * 2 + ["p99"] * 2,
                       "seconds": [0.01, 0.02, 0.1, 0.12, 0.3, 0.2]})
    fig = charts.latency_chart(df)
    assert [t.name for t in fig.data] == ["p50", "p95", "p99"]
    assert list(fig.data[2].y) == pytest.approx([300.0, 200.0])
    assert _hline_values(fig) == [150.0]
    assert fig.layout.yaxis.title.text == "latency (ms)"


def test_rate_by_endpoint_chart_has_one_line_per_endpoint_and_a_unit():
    df = pd.DataFrame({"time": _times(2) * 2, "endpoint": ["/a", "/a", "/b", "/b"],
                       "rate": [1.0, 2.0, 0.1, 0.2]})
    fig = charts.rate_by_endpoint_chart(df, title="Request rate")
    assert [t.name for t in fig.data] == ["/a", "/b"]
    assert fig.layout.yaxis.title.text == "requests per second"


def test_status_codes_are_coloured_by_class():
    df = pd.DataFrame({"status": ["503", "200", "404"], "rate": [0.1, 5.0, 0.5]})
    fig = charts.status_code_chart(df)
    assert list(fig.data[0].x) == ["200", "404", "503"]
    assert list(fig.data[0].marker.color) == [
        charts.STATUS_CLASS_COLOURS["2xx"], charts.STATUS_CLASS_COLOURS["4xx"],
        charts.STATUS_CLASS_COLOURS["5xx"]]
    assert fig.layout.yaxis.title.text == "requests per second"


def test_daily_usage_bars_are_in_hours():
    df = pd.DataFrame({"day": ["2026-11-22", "2026-11-23"], "hours": [1.5, 0.25]})
    fig = charts.daily_usage_chart(df)
    assert list(fig.data[0].y) == [1.5, 0.25]
    assert fig.layout.yaxis.title.text == "usage (hours)"


def test_usage_gauge_marks_the_allowance_and_turns_red_in_overage():
    within = charts.usage_gauge(included_hours=100.0, used_hours=40.0)
    over = charts.usage_gauge(included_hours=100.0, used_hours=101.5)
    assert within.data[0].value == 40.0
    assert within.data[0].gauge.threshold.value == 100.0
    assert within.data[0].gauge.bar.color == charts.OK_COLOUR
    assert over.data[0].gauge.bar.color == charts.SEVERITY_COLOURS["P0"]
    assert within.data[0].number.suffix == " h"


def test_alerts_by_severity_shows_every_severity_in_its_colour():
    fig = charts.alerts_by_severity_chart(pd.DataFrame({"severity": ["P2", "P0", "P2"],
                                                        "count": [1, 2, 3]}))
    assert list(fig.data[0].x) == ["P0", "P1", "P2", "P3"]
    assert list(fig.data[0].y) == [2, 0, 4, 0]
    assert list(fig.data[0].marker.color) == [charts.SEVERITY_COLOURS[s]
                                              for s in charts.SEVERITY_ORDER]


def test_chart_builders_do_not_import_streamlit():
    source = Path(charts.__file__).read_text(encoding="utf-8")
    assert "streamlit" not in source


def test_numbers_are_formatted_for_people():
    assert format_hours(101.5) == "101.50 h"
    assert format_money(2038) == "$20.38"
    assert format_money(123456, "eur") == "€1,234.56"
    assert format_percent(0.9995) == "99.950 %"


def test_alert_links_land_on_the_runbook_heading():
    link = console_runbook_link(
        "http://localhost:8501/runbooks?runbook=slo&section=billingavailabilityfastburn",
        service="billing-engine", alertname="BillingAvailabilityFastBurn")
    assert link == "/runbooks?runbook=slo&section=billingavailabilityfastburn"
    assert console_runbook_link(None, service="billing-engine", alertname="BillingEngineDown") == (
        "/runbooks?runbook=billing-engine&section=billingenginedown")
    markdown = read_runbook("slo")
    assert markdown is not None
    section = find_section(markdown, "billingavailabilityfastburn")
    assert section is not None and section.body.startswith("## BillingAvailabilityFastBurn")
    assert github_slug("First 15 minutes") == "first-15-minutes"
    assert read_runbook("../pyproject") is None
    assert "slo" in list_runbooks()


# -- usage and payments ---------------------------------------------------------------------------

def _alert_expr(name: str) -> str:
    import yaml

    rules = yaml.safe_load((Path(charts.__file__).resolve().parents[1] / "prometheus" / "rules"
                            / "symptoms.yml").read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                return str(rule["expr"])
    raise AssertionError(f"no alert {name}")


def test_payment_thresholds_are_the_ones_the_alerts_use():
    assert "< 0.95" in _alert_expr("PaymentSuccessRateLow")
    assert "> 0.05" in _alert_expr("RefundRateHigh")
    assert "usage_meter_queue > 1000" in _alert_expr("UsageMeterQueueBacklog")
    assert charts.PAYMENT_SUCCESS_THRESHOLD == 0.95
    assert charts.REFUND_RATE_THRESHOLD == 0.05
    assert charts.METER_QUEUE_THRESHOLD == 1000


def test_payment_success_rate_is_drawn_in_percent_with_the_95_percent_line():
    df = pd.DataFrame({"time": list(reversed(_times(3))), "share": [0.5, 0.9, 1.0]})
    fig = charts.payment_success_rate_chart(df)
    assert list(fig.data[0].y) == pytest.approx([100.0, 90.0, 50.0])  # sorted by time
    assert _hline_values(fig) == [95.0]
    assert [a.text for a in fig.layout.annotations] == ["alert below 95 %"]
    assert fig.layout.yaxis.title.text == "attempts that succeeded (%)"
    assert fig.layout.yaxis.ticksuffix == " %"
    assert fig.layout.xaxis.title.text == "time (UTC)"


def test_refund_rate_marks_the_5_percent_alert():
    fig = charts.refund_rate_chart(pd.DataFrame({"time": _times(2), "share": [0.02, 0.5]}))
    assert list(fig.data[0].y) == pytest.approx([2.0, 50.0])
    assert _hline_values(fig) == [5.0]
    assert [a.text for a in fig.layout.annotations] == ["alert above 5 %"]
    assert fig.layout.yaxis.title.text == "refunds per successful payment (%)"


def test_failure_reasons_show_every_known_reason_in_a_fixed_order():
    df = pd.DataFrame({"reason": ["insufficient_funds", "card_declined", "fraud_suspected"],
                       "count": [2.0, 1.0, 4.0]})
    fig = charts.failure_reasons_chart(df, window="6 hours")
    assert list(fig.data[0].x) == ["card declined", "insufficient funds", "expired card",
                                   "processing error", "other", "fraud suspected"]
    assert list(fig.data[0].y) == [1.0, 2.0, 0.0, 0.0, 0.0, 4.0]
    assert fig.layout.title.text == "Payment failures by reason, last 6 hours"
    assert fig.layout.yaxis.title.text == "failed attempts (count)"


def test_revenue_bars_are_dollars_from_cents():
    fig = charts.revenue_chart(pd.DataFrame({"time": _times(2), "cents": [4480.0, 125.0]}))
    assert list(fig.data[0].y) == pytest.approx([44.80, 1.25])
    assert fig.layout.yaxis.title.text == "revenue (USD per hour)"
    assert fig.layout.yaxis.tickprefix == "$"
    assert fig.layout.xaxis.title.text == "hour (UTC)"
    assert fig.data[0].width == 3_600_000 and fig.data[0].offset == -3_600_000  # over its hour


def test_usage_trend_names_its_bucket_on_both_axes():
    fig = charts.usage_trend_chart(pd.DataFrame({"time": _times(2), "hours": [51.0, 2.5]}),
                                   per="day")
    assert list(fig.data[0].y) == [51.0, 2.5]
    assert fig.layout.xaxis.title.text == "day (UTC)"
    assert fig.data[0].width == 86_400_000
    assert fig.layout.yaxis.title.text == "usage (instance-hours per day)"


def test_meter_queue_chart_marks_the_backlog_alert():
    fig = charts.meter_queue_chart(pd.DataFrame({"time": _times(2), "records": [0.0, 12.0]}))
    assert list(fig.data[0].y) == [0.0, 12.0]
    assert _hline_values(fig) == [1000.0]
    assert fig.layout.yaxis.title.text == "records waiting (count)"


def test_money_durations_and_breaker_states_read_as_words():
    assert format_money(-750) == "-$7.50"
    assert format_money(0) == "$0.00"
    assert format_money(-125, "chf") == "-1.25 CHF"
    assert format_duration(42) == "42 s"
    assert format_duration(750) == "12.5 min"
    assert format_duration(3 * 3600) == "3.0 h"
    assert [breaker_state_words(v) for v in (0.0, 1.0, 2.0, None)] == [
        "closed", "open", "half-open", "unknown"]
    assert format_time("2026-11-23T13:49:05.123+00:00") == "2026-11-23 13:49 UTC"
    assert format_time(None) == ""


def test_payment_rows_show_the_failure_reason_and_refunds_as_money():
    base = {"attempted_at": "2026-11-18T11:06:40+00:00", "currency": "usd", "method": "card",
            "attempt_number": 1, "invoice_id": "in_1", "failure_message": None}
    frame = payments_frame([
        {**base, "amount_cents": 2000, "outcome": "succeeded", "failure_reason": None,
         "refunded_cents": 500},
        {**base, "amount_cents": 2125, "outcome": "failed", "failure_reason": "insufficient_funds",
         "failure_message": "Your card has insufficient funds.", "refunded_cents": 0,
         "method": "sepa_debit"}])
    assert frame.to_dict("records")[0] | {"Date": ""} == {
        "Date": "", "Amount": "$20.00", "Outcome": "succeeded", "Method": "card", "Attempt": 1,
        "Failure reason": "", "Refunded": "$5.00", "Stripe invoice": "in_1"}
    assert frame.iloc[1]["Failure reason"] == (
        "insufficient funds: Your card has insufficient funds.")
    assert frame.iloc[1]["Method"] == "sepa debit" and frame.iloc[1]["Refunded"] == ""


def test_budget_alert_rows_say_where_each_message_went():
    frame = budget_alerts_frame([{
        "period": "2026-11", "threshold": 90, "email": "ap@acme.io", "plan": "base_usage",
        "used_hours": 91.5, "included_hours": 100.0, "percent_used": 91.5,
        "reached_at": "2026-11-20T08:00:00+00:00",
        "deliveries": [{"channel": "email", "receiver": "customer-email", "status": "sent",
                        "attempts": 1, "sent_at": "2026-11-20T08:00:02+00:00",
                        "last_reason": None, "last_detail": None},
                       {"channel": "slack", "receiver": "support-slack", "status": "failed",
                        "attempts": 12, "sent_at": None, "last_reason": "server_error",
                        "last_detail": "HTTP 500"}]}])
    row = frame.to_dict("records")[0]
    assert (row["Threshold"], row["Usage then"], row["Sent to"]) == (
        "90 %", "91.50 h of 100.00 h", "ap@acme.io")
    assert row["Delivery"] == ("email via customer-email: sent 2026-11-20 08:00 UTC; "
                               "slack via support-slack: failed (server_error)")


def test_time_charts_cover_the_span_asked_for():
    span = (datetime(2026, 11, 23, 4, 0, tzinfo=UTC), datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    one_point = pd.DataFrame({"time": _times(1), "share": [0.9]})
    fig = charts.payment_success_rate_chart(one_point, span=span)
    assert [pd.Timestamp(v) for v in fig.layout.xaxis.range] == [pd.Timestamp(t) for t in span]
    assert charts.refund_rate_chart(one_point).layout.xaxis.range is None  # autorange


def test_a_series_with_a_single_sample_is_drawn_as_a_marker():
    now = pd.Timestamp("2026-11-23T12:00:00Z")
    one = pd.DataFrame({"time": [now], "endpoint": ["/v1/billing"], "rate": [2.0]})
    many = pd.DataFrame({"time": [now + pd.Timedelta(minutes=m) for m in range(5)],
                         "endpoint": ["/v1/billing"] * 5, "rate": [2.0] * 5})
    assert charts.rate_by_endpoint_chart(one, title="t").data[0].mode == "lines+markers"
    assert charts.rate_by_endpoint_chart(many, title="t").data[0].mode == "lines"


def test_plain_text_is_a_code_span_holding_every_character():
    from dashboard.formatting import plain

    hostile = "![x](http://e/x.png)\n# head *b* <i>h</i> :red[r] $x$"
    assert plain(hostile) == "`![x](http://e/x.png) # head *b* <i>h</i> :red[r] $x$`"
    # A value holding backticks gets a longer fence, padded where it starts or ends with one.
    assert plain("a`b") == "``a`b``"
    assert plain("`x`") == "`` `x` ``"
    assert plain("  \n ") == ""


def test_an_alerts_escalation_reads_who_was_told_and_the_countdown():
    from dashboard.formatting import escalation_words, rotations_frame

    now = datetime(2026, 12, 7, 10, 9, tzinfo=UTC)
    alert = {"state": "firing", "acked": False, "escalation": {
        "response_seconds": 900,
        "steps": [{"step": 0, "rotation": "primary", "person": "chloe",
                   "at": "2026-12-07T10:00:00+00:00"}],
        "next": {"step": 1, "rotation": "secondary", "person": "ana",
                 "at": "2026-12-07T10:15:00+00:00"}}}
    assert escalation_words(alert, now) == (
        "told chloe (primary) 10:00 UTC; escalates to ana (secondary) in 6 min unless "
        "acknowledged")
    acked = {**alert, "acked": True, "acked_by": "chloe@example.com"}
    assert escalation_words(acked, now).endswith(
        "acknowledged by chloe@example.com: escalation stopped")
    assert escalation_words({"state": "firing"}, now).startswith("not escalated by the on-call")
    frame = rotations_frame([{"name": "primary", "members": ["ana", "ben", "chloe"],
                              "now": {"person": "chloe", "ends": "2026-12-14T09:00:00+00:00",
                                      "override": False},
                              "next": {"person": "ana"}}], now)
    assert frame.to_dict("records") == [{
        "Rotation": "primary", "On call now": "chloe",
        "Until": "2026-12-14 09:00 UTC (in 6 d 22 h)", "Next": "ana",
        "Members": "ana, ben, chloe"}]
