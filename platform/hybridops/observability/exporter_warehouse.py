"""The exporter's ``warehouse`` source: the warehouse (either backend) opened read-only.

Quarantine, SPC points and violations, drift of the latest scored month, live model performance, alias
events, the skew audit when present.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from hybridops.observability.exporter_values import PREFIX, finite, month_start, ts
from hybridops.settings import Settings

# The exporter logs under one name, whichever of its modules writes the record (as before the split).
log = logging.getLogger("hybridops.observability.exporter")

SPC_SERIES = ("value", "center", "ucl", "lcl", "ewma", "ewma_ucl", "ewma_lcl")
LIVE_METRICS = ("auc", "logloss", "brier")


def warehouse_metrics(settings: Settings) -> Iterator[Metric]:
    from hybridops.warehouse.db import connect, exists

    if not exists(settings):
        raise FileNotFoundError(f"no warehouse yet ({settings.warehouse.backend})")
    # No lock wait: a DuckDB file held by a pipeline run is reported as a failed scrape (source_up 0);
    # the lakehouse never blocks a reader.
    with connect(settings, read_only=True, lock_wait_seconds=0) as con:
        tables = {
            row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()
        }
        metrics: list[Metric] = []
        if "quarantine" in tables:
            metrics.extend(_quarantine(con))
        if "spc_violations" in tables:
            metrics.extend(_spc_violations(con))
        if "spc_points" in tables:
            metrics.extend(_spc_points(con))
        if "drift_metrics" in tables:
            metrics.extend(_drift(con))
        if "model_performance" in tables:
            metrics.extend(_performance(con))
        if "drift_reports" in tables:
            metrics.extend(_drift_report(con))
        if "model_alias_events" in tables:
            metrics.extend(_alias_events(con))
        if "skew_audit" in tables:
            metrics.extend(_skew(con))
    yield from metrics


def _quarantine(con: Any) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        f"{PREFIX}_quality_quarantined_rows",
        "Rows currently in the quarantine table by source table and failed check.",
        labels=["table", "check"],
    )
    rows = con.execute(
        "select table_name, check_name, count(*) from quarantine group by all order by all"
    ).fetchall()
    for table, check, n in rows:
        family.add_metric([str(table), str(check)], float(n))
    yield family


def _spc_violations(con: Any) -> Iterator[Metric]:
    total = GaugeMetricFamily(
        f"{PREFIX}_spc_violations",
        "SPC rule violations over all loaded months by metric, rule and severity.",
        labels=["metric", "rule", "check_severity"],
    )
    latest = GaugeMetricFamily(
        f"{PREFIX}_spc_latest_month_violations",
        "SPC rule violations in the latest charted month by metric, rule and severity.",
        labels=["metric", "rule", "check_severity"],
    )
    for metric, rule, severity, n in con.execute(
        "select metric, rule, severity, count(*) from spc_violations group by all order by all"
    ).fetchall():
        total.add_metric([metric, rule, severity], float(n))
    for metric, rule, severity, n in con.execute(
        """select metric, rule, severity, count(*) from spc_violations
           where month_key = (select max(month_key) from spc_violations) group by all order by all"""
    ).fetchall():
        latest.add_metric([metric, rule, severity], float(n))
    yield from (total, latest)


def _spc_points(con: Any) -> Iterator[Metric]:
    point = GaugeMetricFamily(
        f"{PREFIX}_spc_point",
        "Latest day of each SPC control chart: series value, center, ucl, lcl, ewma, ewma_ucl, ewma_lcl.",
        labels=["metric", "series"],
    )
    day = GaugeMetricFamily(
        f"{PREFIX}_spc_latest_point_timestamp_seconds",
        "Unix time (UTC midnight) of the latest charted day per metric.",
        labels=["metric"],
    )
    columns = ", ".join(SPC_SERIES)
    rows = con.execute(
        f"""select metric, day, {columns} from spc_points
            qualify row_number() over (partition by metric order by day desc) = 1 order by metric"""
    ).fetchall()
    for metric, when, *values in rows:
        for series, value in zip(SPC_SERIES, values, strict=True):
            if finite(value):
                point.add_metric([metric, series], float(value))
        stamp = ts(when)
        if stamp is not None:
            day.add_metric([metric], stamp)
    yield from (point, day)


def _columns(con: Any, table: str) -> set[str]:
    """The columns of ``table`` (tables written by an older version lack the newer columns)."""
    rows = con.execute("select column_name from duckdb_columns() where table_name = ?", [table]).fetchall()
    return {str(row[0]) for row in rows}


def _drift(con: Any) -> Iterator[Metric]:
    psi = GaugeMetricFamily(
        f"{PREFIX}_model_feature_psi",
        "Population Stability Index of each feature in the latest scored month.",
        labels=["feature"],
    )
    ks = GaugeMetricFamily(
        f"{PREFIX}_model_feature_ks_statistic",
        "Kolmogorov-Smirnov statistic of each feature in the latest scored month.",
        labels=["feature"],
    )
    drifted = GaugeMetricFamily(
        f"{PREFIX}_model_feature_drifted",
        "1 when the feature drifted in the latest scored month (PSI or KS above its threshold).",
        labels=["feature"],
    )
    psi_threshold = GaugeMetricFamily(
        f"{PREFIX}_model_feature_psi_threshold",
        "Each feature's PSI threshold in the latest scored month: learnt from the training window's "
        "month-to-month variation, at least monitoring.psi_threshold (HybridopsFeatureDrift).",
        labels=["feature"],
    )
    importance = GaugeMetricFamily(
        f"{PREFIX}_model_feature_importance",
        "Each feature's share of the scoring champion's LightGBM gain importance.",
        labels=["feature"],
    )
    month = GaugeMetricFamily(
        f"{PREFIX}_model_drift_month_timestamp_seconds",
        "Start (UTC) of the latest month with drift metrics.",
    )
    present = _columns(con, "drift_metrics")
    extra = [name for name in ("psi_threshold", "importance") if name in present]
    selected = ", ".join(["month_key", "feature", "psi", "ks_stat", "drifted", *extra])
    rows = con.execute(
        f"""select {selected} from drift_metrics
           where month_key = (select max(month_key) from drift_metrics) order by feature"""
    ).fetchall()
    for _month, feature, psi_value, ks_value, flag, *values in rows:
        if finite(psi_value):
            psi.add_metric([feature], float(psi_value))
        if finite(ks_value):
            ks.add_metric([feature], float(ks_value))
        drifted.add_metric([feature], 1.0 if flag else 0.0)
        for family, value in zip((psi_threshold, importance)[: len(extra)], values, strict=True):
            if finite(value):
                family.add_metric([feature], float(value))
    if rows:
        month.add_metric([], month_start(rows[0][0]))
    yield from (psi, ks, drifted, psi_threshold, importance, month)


def _drift_report(con: Any) -> Iterator[Metric]:
    """The latest scored month's report: importance-weighted drift, prediction drift, the holdout AUC."""
    share = GaugeMetricFamily(
        f"{PREFIX}_model_drifted_importance",
        "Share of the scoring champion's gain importance carried by the features drifted in the latest "
        "scored month (HybridopsModelDriftHarmful).",
        labels=["model_version"],
    )
    prediction = GaugeMetricFamily(
        f"{PREFIX}_model_prediction_psi",
        "PSI of the latest scored month's scores against the champion's holdout scores "
        "(HybridopsPredictionDrift).",
        labels=["model_version"],
    )
    holdout = GaugeMetricFamily(
        f"{PREFIX}_model_live_holdout_auc",
        "Holdout ROC AUC of the model version that scored the latest month: the reference of its live AUC "
        "(HybridopsModelLiveAucDegraded).",
        labels=["model_version"],
    )
    present = _columns(con, "drift_reports")
    wanted = [name for name in ("drifted_importance", "prediction_psi", "holdout_auc") if name in present]
    if not wanted:
        yield from (share, prediction, holdout)
        return
    row = con.execute(
        f"select model_version, {', '.join(wanted)} from drift_reports order by month_key desc limit 1"
    ).fetchone()
    if row is not None:
        version, *values = row
        families = {"drifted_importance": share, "prediction_psi": prediction, "holdout_auc": holdout}
        for name, value in zip(wanted, values, strict=True):
            if finite(value):
                families[name].add_metric([str(version)], float(value))
    yield from (share, prediction, holdout)


def _performance(con: Any) -> Iterator[Metric]:
    live = GaugeMetricFamily(
        f"{PREFIX}_model_live_metric",
        "Model performance on the latest scored month's known outcomes (auc, logloss, brier).",
        labels=["metric", "model_version"],
    )
    scored = GaugeMetricFamily(
        f"{PREFIX}_model_live_scored_rows",
        "Flights with known outcomes in the latest scored month.",
        labels=["model_version"],
    )
    row = con.execute(
        f"""select model_version, {", ".join(LIVE_METRICS)}, rows from model_performance
            order by month_key desc limit 1"""
    ).fetchone()
    if row is not None:
        version, *values, rows = row
        for name, value in zip(LIVE_METRICS, values, strict=True):
            if finite(value):
                live.add_metric([name, str(version)], float(value))
        scored.add_metric([str(version)], float(rows or 0))
    yield from (live, scored)


def _alias_events(con: Any) -> Iterator[Metric]:
    changes = CounterMetricFamily(
        f"{PREFIX}_model_alias_changes",
        "Registry alias changes recorded in model_alias_events by model and alias (champion = promotions "
        "and rollbacks).",
        labels=["model", "alias"],
    )
    changed = GaugeMetricFamily(
        f"{PREFIX}_model_champion_changed_timestamp_seconds",
        "Unix time the champion alias last moved.",
        labels=["model"],
    )
    for model, alias, n in con.execute(
        "select model_name, alias, count(*) from model_alias_events group by all order by all"
    ).fetchall():
        changes.add_metric([model, alias], float(n))
    for model, at in con.execute(
        """select model_name, max("at") from model_alias_events where alias = 'champion'
           group by all order by all"""
    ).fetchall():
        stamp = ts(at)
        if stamp is not None:
            changed.add_metric([model], stamp)
    yield from (changes, changed)


def _skew(con: Any) -> Iterator[Metric]:
    """The skew audit's mismatch rate (online vs offline features); the table's shape is flexible.

    Accepted shapes: a boolean ``mismatch`` column per compared value, or counts ``mismatches`` and
    ``compared``; grouped by ``feature_view`` (or ``feature``) when such a column exists.
    """
    columns = {
        row[0]
        for row in con.execute(
            "select column_name from information_schema.columns where table_name = 'skew_audit'"
        ).fetchall()
    }
    ratio = GaugeMetricFamily(
        f"{PREFIX}_feast_skew_mismatch_ratio",
        "Share of served feature values that differ from Feast's point-in-time recomputation.",
        labels=["feature_view"],
    )
    group = next((c for c in ("feature_view", "view", "feature") if c in columns), None)
    key = f'"{group}"' if group else "'all'"
    if "mismatch" in columns:
        sql = f"select {key}, avg(cast(mismatch as double)) from skew_audit group by all order by all"
    elif {"mismatches", "compared"} <= columns:
        sql = (
            f"select {key}, sum(mismatches) / nullif(sum(compared), 0) from skew_audit "
            "group by all order by all"
        )
    else:
        log.warning("skew_audit has none of the expected columns: %s", sorted(columns))
        sql = ""
    if sql:
        for name, value in con.execute(sql).fetchall():
            if finite(value):
                ratio.add_metric([str(name)], float(value))
    yield ratio
