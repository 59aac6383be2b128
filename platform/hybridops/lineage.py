"""Lineage in one query: from raw files and partitions to the predictions a model version produced.

The chain is assembled from the records each stage already keeps: the landing zone's ``landing_files``,
the warehouse partitions, the MLflow run's lineage tags (written by training), the registry (version,
aliases, alias history) and the ``predictions`` table (model version on every row).
"""

from __future__ import annotations

from typing import Any

from hybridops.registry import alias_history, registry_client, resolve
from hybridops.settings import Settings
from hybridops.warehouse.db import connect, exists, read_frame, table_exists

TAG = "hybridops."


def model_lineage(settings: Settings, ref: str) -> dict[str, Any]:
    """Everything known about how ``ref`` (``name@alias``, ``name/N`` or ``name``) came to be and what it did.

    Raises:
        HybridopsError: the model, alias or version does not exist.
    """
    info = resolve(settings, ref)
    run = registry_client(settings).get_run(info.run_id) if info.run_id else None
    tags = run.data.tags if run else {}
    months = [m for m in tags.get(f"{TAG}train_months", "").split(",") if m]
    holdout = tags.get(f"{TAG}holdout_month", "")
    lineage: dict[str, Any] = {
        "model": {
            "name": info.name,
            "version": info.version,
            "aliases": list(info.aliases),
            "sha256": info.sha256,
            "source": info.source,
        },
        "mlflow_run": {
            "run_id": info.run_id,
            "experiment_id": run.info.experiment_id if run else None,
            "metrics": dict(run.data.metrics) if run else {},
            "git_commit": tags.get(f"{TAG}git_commit"),
            "dagster_run_id": tags.get(f"{TAG}dagster_run_id"),
            "trigger": tags.get(f"{TAG}trigger", "pipeline"),
        },
        "training_set": {
            "sha256": tags.get(f"{TAG}training_set_sha256"),
            "rows": tags.get(f"{TAG}training_set_rows"),
            "train_months": months,
            "holdout_month": holdout,
            "cancelled_excluded": tags.get(f"{TAG}cancelled_excluded"),
        },
        # The plain baseline (no feature store) trained on the same months, measured on the same holdout.
        "baseline": {
            "auc": run.data.metrics.get("baseline.auc") if run else None,
            "margin": run.data.metrics.get("baseline.margin") if run else None,
        },
        "features": {
            "views": _pairs(tags.get(f"{TAG}feature_views", "")),
            "digests": _pairs(tags.get(f"{TAG}feature_view_digests", "")),
        },
        "alias_history": [],
        "partitions": [],
        "raw_files": [],
        "predictions": [],
    }
    history = alias_history(settings, info.name)
    if not history.empty:
        mine = history[(history["to_version"] == info.version) | (history["from_version"] == info.version)]
        lineage["alias_history"] = [
            {key: str(value) for key, value in row.items()} for row in mine.to_dict(orient="records")
        ]
    if exists(settings):
        with connect(settings, read_only=True) as con:
            lineage.update(_warehouse_lineage(con, [*months, holdout] if holdout else months, info.version))
    return lineage


def _pairs(text: str) -> dict[str, str]:
    return dict(item.split(":", 1) for item in text.split(",") if ":" in item)


def _warehouse_lineage(con: Any, months: list[str], version: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if table_exists(con, "fct_flights") and months:
        parts = read_frame(
            con,
            "select month_key, count(*) as flights from fct_flights where list_contains(?, month_key) "
            "group by 1 order by 1",
            [months],
        )
        out["partitions"] = parts.to_dict(orient="records")
    if table_exists(con, "landing_files") and table_exists(con, "stg_flights") and months:
        # The files whose rows fed those months (monthly tables), plus the dimension files.
        files = read_frame(
            con,
            """
            select l.table_name, l.source_path, l.sha256, l.landed_path
            from landing_files l
            where l.table_name not in ('flights', 'weather')
               or l.source_path in (
                    select distinct _source_file from stg_flights where list_contains(?, month_key)
                    union
                    select distinct _source_file from stg_weather where list_contains(?, month_key))
            order by 1, 2
            """,
            [months, months],
        )
        out["raw_files"] = files.to_dict(orient="records")
    if table_exists(con, "predictions"):
        scored = read_frame(
            con,
            "select month_key, count(*) as rows, avg(delay_probability) as mean_probability "
            "from predictions where model_version = ? group by 1 order by 1",
            [str(version)],
        )
        out["predictions"] = scored.to_dict(orient="records")
    return out
