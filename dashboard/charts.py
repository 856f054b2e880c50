"""Pure chart builders: a DataFrame in, a Plotly figure out. No Streamlit, no I/O."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import plotly.graph_objects as go

SEVERITY_ORDER = ("P0", "P1", "P2", "P3")
SEVERITY_COLOURS = {"P0": "#b71c1c", "P1": "#e65100", "P2": "#f9a825", "P3": "#1565c0"}
STATUS_CLASS_COLOURS = {"2xx": "#2e7d32", "3xx": "#00838f", "4xx": "#f9a825", "5xx": "#b71c1c"}
OK_COLOUR = "#2e7d32"
NEUTRAL_COLOUR = "#546e7a"

# Google SRE workbook multi-window thresholds for 99.9 % over 30 days (DESIGN.md).
BURN_THRESHOLDS = (
    ("page", 14.4, SEVERITY_COLOURS["P1"]),
    ("page", 6.0, SEVERITY_COLOURS["P1"]),
    ("ticket", 3.0, SEVERITY_COLOURS["P2"]),
    ("ticket", 1.0, SEVERITY_COLOURS["P2"]),
)
LATENCY_OBJECTIVE_MS = 150.0
WINDOW_ORDER = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")


def _layout(fig: go.Figure, *, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, margin={"t": 48, "b": 40},
                      legend_title_text="")
    return fig


def burn_rate_chart(df: pd.DataFrame) -> go.Figure:
    """`df`: columns window (e.g. '1h'), burn_rate (x budget). Lines mark page/ticket thresholds."""
    order = {w: i for i, w in enumerate(WINDOW_ORDER)}
    data = df.sort_values("window", key=lambda s: s.map(lambda w: order.get(w, 99)))
    fig = go.Figure(go.Bar(x=data["window"], y=data["burn_rate"], marker_color=NEUTRAL_COLOUR,
                           name="burn rate", hovertemplate="%{x}: %{y:.2f}×<extra></extra>"))
    for kind, value, colour in BURN_THRESHOLDS:
        fig.add_hline(y=value, line_dash="dash", line_color=colour,
                      annotation_text=f"{kind} {value:g}×", annotation_position="top left")
    return _layout(fig, title="Burn rate per window", x="window",
                   y="burn rate (× sustainable spend)")


def line_mode(points: int) -> str:
    """Markers while a series has too few samples to draw a line (a fresh stack, a new deploy),
    so the chart never looks empty when it has data."""
    return "lines+markers" if points < 3 else "lines"


def latency_chart(df: pd.DataFrame) -> go.Figure:
    """`df`: columns time, quantile (p50/p95/p99), seconds. Drawn in ms, 150 ms line."""
    fig = go.Figure()
    for quantile, rows in df.groupby("quantile", sort=True):
        fig.add_trace(go.Scatter(x=rows["time"], y=rows["seconds"] * 1000,
                                 mode=line_mode(len(rows)), name=str(quantile)))
    fig.add_hline(y=LATENCY_OBJECTIVE_MS, line_dash="dash", line_color=SEVERITY_COLOURS["P1"],
                  annotation_text="objective 150 ms", annotation_position="top left")
    return _layout(fig, title="Latency p50 / p95 / p99", x="time (UTC)", y="latency (ms)")


def rate_by_endpoint_chart(df: pd.DataFrame, *, title: str) -> go.Figure:
    """`df`: columns time, endpoint, rate (per second)."""
    fig = go.Figure()
    for endpoint, rows in df.groupby("endpoint", sort=True):
        fig.add_trace(go.Scatter(x=rows["time"], y=rows["rate"], mode=line_mode(len(rows)),
                                 name=str(endpoint)))
    return _layout(fig, title=title, x="time (UTC)", y="requests per second")


def status_code_chart(df: pd.DataFrame) -> go.Figure:
    """`df`: columns status ('200', '503', ...), rate (per second)."""
    data = df.sort_values("status")
    colours = [STATUS_CLASS_COLOURS.get(f"{str(s)[0]}xx", NEUTRAL_COLOUR) for s in data["status"]]
    fig = go.Figure(go.Bar(x=data["status"].astype(str), y=data["rate"], marker_color=colours))
    fig.update_xaxes(type="category")
    return _layout(fig, title="Responses by status code", x="HTTP status",
                   y="requests per second")


def daily_usage_chart(df: pd.DataFrame) -> go.Figure:
    """`df`: columns day, hours."""
    fig = go.Figure(go.Bar(x=df["day"], y=df["hours"], marker_color=NEUTRAL_COLOUR,
                           hovertemplate="%{x}: %{y:.2f} h<extra></extra>"))
    return _layout(fig, title="Usage per UTC day", x="day (UTC)", y="usage (hours)")


def usage_gauge(*, included_hours: float, used_hours: float) -> go.Figure:
    """Used hours against the included allowance; the bar turns red past it (overage)."""
    top = max(included_hours, used_hours) * 1.2 or 1.0
    over = used_hours > included_hours
    fig = go.Figure(go.Indicator(
        mode="gauge+number", value=used_hours,
        number={"suffix": " h", "valueformat": ".2f"},
        title={"text": f"Used of {included_hours:.2f} h included"},
        gauge={
            "axis": {"range": [0, top], "ticksuffix": " h"},
            "bar": {"color": SEVERITY_COLOURS["P0"] if over else OK_COLOUR},
            "steps": [{"range": [0, included_hours], "color": "#e8f5e9"},
                      {"range": [included_hours, top], "color": "#ffebee"}],
            "threshold": {"line": {"color": "black", "width": 3}, "value": included_hours},
        },
    ))
    fig.update_layout(margin={"t": 60, "b": 10})
    return fig


def alerts_by_severity_chart(df: pd.DataFrame) -> go.Figure:
    """`df`: columns severity ('P0'..'P3'), count. Every severity shown, zeros included."""
    counts = {s: 0 for s in SEVERITY_ORDER}
    for severity, count in zip(df["severity"], df["count"], strict=True):
        counts[str(severity)] = counts.get(str(severity), 0) + int(count)
    fig = go.Figure(go.Bar(
        x=list(counts), y=list(counts.values()),
        marker_color=[SEVERITY_COLOURS.get(s, NEUTRAL_COLOUR) for s in counts],
    ))
    fig.update_xaxes(type="category")
    return _layout(fig, title="Active alerts by severity", x="severity", y="alerts (count)")


# -- usage and payments ---------------------------------------------------------------------------

# The thresholds of the PaymentSuccessRateLow and RefundRateHigh alerts
# (prometheus/rules/symptoms.yml): success over 15 min, refunds per successful payment over 1 h.
PAYMENT_SUCCESS_THRESHOLD = 0.95
REFUND_RATE_THRESHOLD = 0.05
METER_QUEUE_THRESHOLD = 1000  # UsageMeterQueueBacklog
FAILURE_REASON_ORDER = ("card_declined", "insufficient_funds", "expired_card",
                        "processing_error", "other")
BUCKET_MS = {"hour": 3_600_000, "day": 86_400_000}
Span = tuple[datetime, datetime]


def _over(fig: go.Figure, span: Span | None) -> go.Figure:
    """The time axis covers the span asked for, so a few recent points read as recent rather
    than as a zoom into milliseconds."""
    if span is not None:
        fig.update_xaxes(range=list(span))
    return fig


def _share_chart(df: pd.DataFrame, *, title: str, y: str, threshold: float, alert_when: str,
                 colour: str, span: Span | None) -> go.Figure:
    data = df.sort_values("time")
    fig = go.Figure(go.Scatter(x=data["time"], y=data["share"] * 100, mode="lines+markers",
                               line_color=NEUTRAL_COLOUR, name=title,
                               hovertemplate="%{x}: %{y:.2f} %<extra></extra>"))
    fig.add_hline(y=threshold * 100, line_dash="dash", line_color=colour,
                  annotation_text=f"alert {alert_when} {threshold * 100:g} %",
                  annotation_position="top left")
    fig.update_yaxes(ticksuffix=" %", rangemode="tozero")
    return _over(_layout(fig, title=title, x="time (UTC)", y=y), span)


def payment_success_rate_chart(df: pd.DataFrame, *, span: Span | None = None) -> go.Figure:
    """`df`: columns time, share (succeeded attempts / all attempts over 15 min, 0..1)."""
    fig = _share_chart(df, title="Payment success rate (15 min window)",
                       y="attempts that succeeded (%)", threshold=PAYMENT_SUCCESS_THRESHOLD,
                       alert_when="below", colour=SEVERITY_COLOURS["P1"], span=span)
    return fig.update_yaxes(range=[0, 105])


def refund_rate_chart(df: pd.DataFrame, *, span: Span | None = None) -> go.Figure:
    """`df`: columns time, share (refunds / successful payments over 1 h; may exceed 1)."""
    return _share_chart(df, title="Refund rate (1 h window)",
                        y="refunds per successful payment (%)", threshold=REFUND_RATE_THRESHOLD,
                        alert_when="above", colour=SEVERITY_COLOURS["P2"], span=span)


def failure_reasons_chart(df: pd.DataFrame, *, window: str) -> go.Figure:
    """`df`: columns reason, count. Known reasons first in a fixed order, zeros included."""
    counts = {r: 0.0 for r in FAILURE_REASON_ORDER}
    for reason, count in zip(df["reason"], df["count"], strict=True):
        counts[str(reason)] = counts.get(str(reason), 0.0) + float(count)
    fig = go.Figure(go.Bar(
        x=[r.replace("_", " ") for r in counts], y=list(counts.values()),
        marker_color=SEVERITY_COLOURS["P1"],
        hovertemplate="%{x}: %{y:.0f} failed<extra></extra>"))
    fig.update_xaxes(type="category")
    return _layout(fig, title=f"Payment failures by reason, last {window}",
                   x="failure reason (Stripe decline family)", y="failed attempts (count)")


def _bucket_bars(data: pd.DataFrame, y: pd.Series, *, per: str, colour: str,
                 hover: str) -> go.Bar:
    """Bars spanning the bucket they measure: a point at the end of an hour is drawn over that
    hour, so a lone bar still reads as one hour on a time axis."""
    width = BUCKET_MS[per]
    return go.Bar(x=data["time"], y=y, width=width, offset=-width, marker_color=colour,
                  hovertemplate=f"{per} ending %{{x}}: {hover}<extra></extra>")


def revenue_chart(df: pd.DataFrame, *, currency: str = "USD",
                  span: Span | None = None) -> go.Figure:
    """`df`: columns time (end of each hour), cents (succeeded payments in that hour)."""
    data = df.sort_values("time")
    fig = go.Figure(_bucket_bars(data, data["cents"] / 100, per="hour", colour=OK_COLOUR,
                                 hover="%{y:,.2f} " + currency))
    fig.update_yaxes(tickprefix="$" if currency == "USD" else "", tickformat=",.2f")
    return _over(_layout(fig, title="Revenue per hour (successful payments)", x="hour (UTC)",
                         y=f"revenue ({currency} per hour)"), span)


def usage_trend_chart(df: pd.DataFrame, *, per: str, span: Span | None = None) -> go.Figure:
    """`df`: columns time (end of each bucket), hours (instance-hours opened in it);
    `per` is the bucket: 'hour' or 'day'."""
    data = df.sort_values("time")
    fig = go.Figure(_bucket_bars(data, data["hours"], per=per, colour=NEUTRAL_COLOUR,
                                 hover="%{y:.2f} h"))
    return _over(_layout(fig, title=f"Usage per {per}, all orgs", x=f"{per} (UTC)",
                         y=f"usage (instance-hours per {per})"), span)


def meter_queue_chart(df: pd.DataFrame, *, span: Span | None = None) -> go.Figure:
    """`df`: columns time, records (usage records waiting to be reported to Stripe)."""
    data = df.sort_values("time")
    fig = go.Figure(go.Scatter(x=data["time"], y=data["records"], mode=line_mode(len(data)),
                               line_color=NEUTRAL_COLOUR, name="waiting"))
    fig.add_hline(y=METER_QUEUE_THRESHOLD, line_dash="dash", line_color=SEVERITY_COLOURS["P2"],
                  annotation_text="alert above 1,000 for 10 min", annotation_position="top left")
    fig.update_yaxes(rangemode="tozero")
    return _over(_layout(fig, title="Usage meter queue", x="time (UTC)",
                         y="records waiting (count)"), span)
