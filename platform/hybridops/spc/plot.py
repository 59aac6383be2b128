"""The control chart of one metric as a PNG: daily values, centre line, control limits, the days a rule fired.

Drawn with matplotlib's object API on an Agg canvas (no ``pyplot``: nothing global is configured, so
importing this module changes no other library's behaviour).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def control_chart_png(
    points: pd.DataFrame,
    metric: str,
    violations: pd.DataFrame | None = None,
    unit: str = "",
    title: str = "",
) -> bytes:
    """PNG bytes of ``metric``'s individuals chart over the days in ``points`` (``SpcResult.points``)."""
    rows = points[points["metric"] == metric].sort_values("day")
    if rows.empty:
        raise ValueError(f"no points of metric {metric!r} to chart")
    days = pd.to_datetime(rows["day"])
    figure = Figure(figsize=(9, 3.2), dpi=90, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.plot(days, rows["value"], marker="o", markersize=3, linewidth=1, color="#1f77b4", label=metric)
    ax.step(days, rows["center"], where="mid", color="#2ca02c", linewidth=1, label="centre")
    ax.step(days, rows["ucl"], where="mid", color="#d62728", linewidth=1, linestyle="--", label="UCL / LCL")
    ax.step(days, rows["lcl"], where="mid", color="#d62728", linewidth=1, linestyle="--")
    if violations is not None and not violations.empty:
        mine = violations[violations["metric"] == metric]
        fired = rows[days.dt.normalize().isin(pd.to_datetime(mine["day"]).dt.normalize())]
        if not fired.empty:
            ax.scatter(
                pd.to_datetime(fired["day"]), fired["value"], s=40, facecolors="none", edgecolors="#d62728",
                linewidths=1.5, zorder=3, label="rule fired",
            )  # fmt: skip
    ax.set_ylabel(f"{metric} ({unit})" if unit else metric)
    ax.set_title(title or f"{metric}: individuals chart", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7, ncols=4)
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_png(png: bytes, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that shows the PNG inline (a data URI: the Dagster UI renders it in markdown metadata)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
