"""Pure chart builders: a DataFrame in, a Plotly figure out. No Streamlit, no I/O."""

from __future__ import annotations

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


def latency_chart(df: pd.DataFrame) -> go.Figure:
    """`df`: columns time, quantile (p50/p95/p99), seconds. Drawn in ms, 150 ms line."""
    fig = go.Figure()
    for quantile, rows in df.groupby("quantile", sort=True):
        fig.add_trace(go.Scatter(x=rows["time"], y=rows["seconds"] * 1000, mode="lines",
                                 name=str(quantile)))
    fig.add_hline(y=LATENCY_OBJECTIVE_MS, line_dash="dash", line_color=SEVERITY_COLOURS["P1"],
                  annotation_text="objective 150 ms", annotation_position="top left")
    return _layout(fig, title="Latency p50 / p95 / p99", x="time (UTC)", y="latency (ms)")


def rate_by_endpoint_chart(df: pd.DataFrame, *, title: str) -> go.Figure:
    """`df`: columns time, endpoint, rate (per second)."""
    fig = go.Figure()
    for endpoint, rows in df.groupby("endpoint", sort=True):
        fig.add_trace(go.Scatter(x=rows["time"], y=rows["rate"], mode="lines", name=str(endpoint)))
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
