"""The control chart PNG: a real image of the metric's days, with the days a rule fired marked."""

from __future__ import annotations

import base64
import io
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from hybridops.spc.plot import control_chart_png, markdown_image


def _points(days: int = 31) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    day = pd.date_range("2013-01-01", periods=days, freq="D")
    value = 10 + rng.normal(0, 1, days)
    value[20] = 25.0  # one point far beyond the limits
    return pd.DataFrame(
        {"month_key": "2013-01", "day": day, "metric": "dep_delay_mean", "value": value,
         "center": 10.0, "ucl": 13.0, "lcl": 7.0}
    )  # fmt: skip


def _pixels(png: bytes) -> np.ndarray:
    return imread(io.BytesIO(png), format="png")


def test_the_chart_is_a_png_with_the_violation_marked() -> None:
    points = _points()
    violations = pd.DataFrame(
        {"metric": ["dep_delay_mean"], "day": [points["day"].iloc[20]], "rule": ["rule1"]}
    )

    marked = control_chart_png(points, "dep_delay_mean", violations, unit="min", title="January")
    plain = control_chart_png(points, "dep_delay_mean", None, unit="min", title="January")

    assert marked[:8] == b"\x89PNG\r\n\x1a\n"
    image = _pixels(marked)
    assert image.shape[0] == 288 and image.shape[1] == 810  # 9 x 3.2 inches at 90 dpi
    # the ring around the violating day is the only difference between the two charts
    assert _pixels(plain).shape == image.shape and not np.array_equal(_pixels(plain), image)
    red = (image[..., 0] > 0.75) & (image[..., 1] < 0.3) & (image[..., 2] < 0.3)
    assert red.sum() > 50  # limits and the marked point are drawn in red


def test_markdown_embeds_the_png_as_a_data_uri() -> None:
    png = control_chart_png(_points(), "dep_delay_mean")
    text = markdown_image(png, "dep_delay_mean control chart")
    assert text.startswith("![dep_delay_mean control chart](data:image/png;base64,")
    assert base64.b64decode(text[text.index(",") + 1 : -1]) == png


def test_an_unknown_metric_says_so() -> None:
    with pytest.raises(ValueError, match="no points of metric 'other'"):
        control_chart_png(_points(), "other")


def test_importing_the_plot_module_configures_no_pyplot_backend() -> None:
    import subprocess

    probe = subprocess.run(
        [sys.executable, "-c", "import hybridops.spc.plot, sys; print('matplotlib.pyplot' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "False"
