"""Chart builders are pure functions: a DataFrame in, a Plotly figure out, no Streamlit needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from dashboard import charts
from dashboard.formatting import format_hours, format_money, format_percent
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
