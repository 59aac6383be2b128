"""Generate infra/grafana/dashboards/*.json (plain Grafana JSON, schemaVersion 39).

Run: ``.venv/bin/python infra/grafana/generate_dashboards.py``. Every panel query uses the exporter's
(``hybridops_*``) or the inference service's (``hybridops_serving_*``) metric names; the observability
tests execute each of them against a real Prometheus and require data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


def target(expr: str, legend: str = "", instant: bool = False) -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": "A", "instant": instant}


def panel(
    title: str,
    kind: str,
    exprs: list[tuple[str, str]],
    unit: str = "short",
    description: str = "",
    **extra: Any,
) -> dict[str, Any]:
    instant = kind in ("stat", "bargauge", "table")
    targets = [target(e, legend, instant) for e, legend in exprs]
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    return {
        "title": title,
        "type": kind,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        **extra,
    }


def dashboard(
    uid: str, title: str, panels: list[dict[str, Any]], variables: list[dict[str, Any]] = ()
) -> dict:
    laid = []
    for i, p in enumerate(panels):
        p = dict(p, id=i + 1, gridPos={"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8})
        laid.append(p)
    return {
        "uid": uid,
        "title": title,
        "tags": ["hybridops"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "editable": True,
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                *variables,
            ]
        },
        "annotations": {"list": []},
        "panels": laid,
    }


def query_variable(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": "var"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": False,
        "allValue": ".*",
        "current": {},
        "hide": 0,
    }


PIPELINE = dashboard(
    "hybridops-pipeline",
    "hybridops / Pipeline health",
    [
        panel(
            "Finished runs by job and status",
            "table",
            [("sum by (dagster_job, status) (hybridops_dagster_runs_total)", "{{dagster_job}} {{status}}")],
        ),
        panel(
            "Failed runs by job",
            "timeseries",
            [
                (
                    'sum by (dagster_job) (hybridops_dagster_runs_total{status="FAILURE"})'
                    " or sum by (dagster_job) (hybridops_dagster_runs_total) * 0",
                    "{{dagster_job}}",
                )
            ],
        ),
        panel(
            "Active runs (queue depth)",
            "stat",
            [("sum by (status) (hybridops_dagster_runs_active) or on() vector(0)", "{{status}}")],
        ),
        panel(
            "Oldest active run age",
            "stat",
            [("max(hybridops_dagster_oldest_active_run_age_seconds) or on() vector(0)", "age")],
            unit="s",
        ),
        panel(
            "Run duration p95 by job",
            "bargauge",
            [
                (
                    "histogram_quantile(0.95, sum by (dagster_job, le) (hybridops_dagster_run_duration_seconds_bucket))",
                    "{{dagster_job}}",
                )
            ],
            unit="s",
        ),
        panel(
            "Last run duration by job",
            "timeseries",
            [("hybridops_dagster_job_last_run_duration_seconds", "{{dagster_job}}")],
            unit="s",
        ),
        panel(
            "Asset freshness (time since last materialization)",
            "bargauge",
            [("time() - hybridops_dagster_asset_last_materialization_timestamp_seconds", "{{asset}}")],
            unit="s",
        ),
        panel(
            "Freshness budget used by watched assets (alert at 100%)",
            "bargauge",
            [
                (
                    "(time() - hybridops_dagster_asset_last_materialization_timestamp_seconds)"
                    " / on (asset) group_left () max by (asset) (hybridops_dagster_asset_freshness_threshold_seconds)",
                    "{{asset}}",
                )
            ],
            unit="percentunit",
            description="Age of the latest materialization over the asset's threshold "
            "(settings monitoring.freshness_max_age_hours); HybridopsDataFreshnessBreached fires above 100%.",
        ),
        panel(
            "Time since last success by job",
            "bargauge",
            [("time() - hybridops_dagster_job_last_success_timestamp_seconds", "{{dagster_job}}")],
            unit="s",
        ),
        panel(
            "Daemon heartbeat age",
            "stat",
            [("hybridops_dagster_daemon_heartbeat_age_seconds", "{{daemon}}")],
            unit="s",
        ),
        panel("Exporter sources up", "stat", [("hybridops_exporter_source_up", "{{source}}")]),
    ],
)

QUALITY = dashboard(
    "hybridops-quality",
    "hybridops / Data quality & SPC",
    [
        panel(
            "Failed checks",
            "stat",
            [("count(hybridops_dagster_asset_check_passed == 0) or on() vector(0)", "failed")],
        ),
        panel(
            "Latest check results", "table", [("hybridops_dagster_asset_check_passed", "{{asset}} {{check}}")]
        ),
        panel(
            "Quarantined rows by table",
            "bargauge",
            [("sum by (table) (hybridops_quality_quarantined_rows)", "{{table}}")],
        ),
        panel(
            "Quarantined rows by check",
            "bargauge",
            [("sum by (check) (hybridops_quality_quarantined_rows)", "{{check}}")],
        ),
        panel(
            "Control chart: $metric (latest day)",
            "timeseries",
            [
                (
                    'hybridops_spc_point{metric=~"$metric", series=~"value|center|ucl|lcl"}',
                    "{{metric}} {{series}}",
                )
            ],
        ),
        panel(
            "EWMA chart: $metric (latest day)",
            "timeseries",
            [
                (
                    'hybridops_spc_point{metric=~"$metric", series=~"ewma|ewma_ucl|ewma_lcl"}',
                    "{{metric}} {{series}}",
                )
            ],
        ),
        panel(
            "SPC violations by rule (all months)",
            "bargauge",
            [("sum by (rule) (hybridops_spc_violations)", "{{rule}}")],
        ),
        panel(
            "SPC violations in the latest month",
            "table",
            [
                (
                    "sum by (metric, rule, check_severity) (hybridops_spc_latest_month_violations)",
                    "{{metric}} {{rule}}",
                )
            ],
        ),
    ],
    [query_variable("metric", "label_values(hybridops_spc_point, metric)")],
)

FEATURES = dashboard(
    "hybridops-features",
    "hybridops / Feature store",
    [
        panel(
            "Time since last materialization",
            "bargauge",
            [("time() - hybridops_feast_last_materialization_timestamp_seconds", "{{feature_view}}")],
            unit="s",
        ),
        panel(
            "Freshness budget used (alert at 100%)",
            "bargauge",
            [
                (
                    "(time() - hybridops_feast_last_materialization_timestamp_seconds)"
                    " / on () group_left () max(hybridops_feast_freshness_threshold_seconds)",
                    "{{feature_view}}",
                )
            ],
            unit="percentunit",
            description="Age of the latest materialization over the threshold "
            "(settings monitoring.feature_view_max_age_hours); HybridopsFeatureViewStale fires above 100%.",
        ),
        panel(
            "Materialized up to (event time)",
            "table",
            [("hybridops_feast_materialized_until_timestamp_seconds * 1000", "{{feature_view}}")],
            unit="dateTimeAsIso",
        ),
        panel(
            "Materialization intervals",
            "bargauge",
            [("hybridops_feast_materialization_intervals", "{{feature_view}}")],
        ),
        panel(
            "Online/offline skew mismatch ratio",
            "bargauge",
            [("hybridops_feast_skew_mismatch_ratio", "{{feature_view}}")],
            unit="percentunit",
        ),
        panel(
            "Flights served without online features, by view",
            "timeseries",
            [
                (
                    f"sum by (view) (rate(hybridops_serving_missing_features_total[{RATE}]))"
                    f" / on() group_left sum(rate(hybridops_serving_flights_total[{RATE}]))"
                    f" or on() sum(rate(hybridops_serving_flights_total[{RATE}])) * 0",
                    "{{view}}",
                )
            ],
            unit="percentunit",
        ),
        panel(
            "Feature log rows written", "stat", [("sum(hybridops_serving_feature_log_rows_total)", "rows")]
        ),
    ],
)

MODEL = dashboard(
    "hybridops-model",
    "hybridops / Model",
    [
        panel("Champion version", "stat", [("hybridops_model_champion_version", "{{model}}")]),
        panel("Champion", "table", [("hybridops_model_champion_info", "{{model}} v{{version}}")]),
        panel(
            "Champion holdout metrics (and the plain baseline on the same holdout)",
            "timeseries",
            [
                (
                    'hybridops_model_champion_metric{metric=~"holdout_(auc|brier|logloss|ece)|baseline.(auc|margin)"}',
                    "{{metric}}",
                )
            ],
        ),
        panel(
            "Live performance (latest scored month)",
            "timeseries",
            [("hybridops_model_live_metric", "{{metric}} v{{model_version}}")],
        ),
        panel(
            "PSI per feature (latest month)",
            "bargauge",
            [("sort_desc(hybridops_model_feature_psi)", "{{feature}}")],
        ),
        panel(
            "KS statistic per feature (latest month)",
            "bargauge",
            [("sort_desc(hybridops_model_feature_ks_statistic)", "{{feature}}")],
        ),
        panel("Drifted features", "stat", [("sum(hybridops_model_feature_drifted)", "drifted")]),
        panel(
            "Champion changes (promotions and rollbacks)",
            "stat",
            [('sum by (model) (hybridops_model_alias_changes_total{alias="champion"})', "{{model}}")],
        ),
        panel(
            "Served vs champion version",
            "table",
            [
                ("hybridops_serving_model_info", "served {{version}}"),
                ("hybridops_model_champion_info", "champion {{version}}"),
            ],
        ),
    ],
)

SERVING = dashboard(
    "hybridops-serving",
    "hybridops / Serving",
    [
        panel(
            "Requests per second by status",
            "timeseries",
            [(f"sum by (status) (rate(hybridops_serving_requests_total[{RATE}]))", "{{status}}")],
            unit="reqps",
        ),
        panel(
            "Error ratio (5xx)",
            "timeseries",
            [
                (
                    f'(sum(rate(hybridops_serving_requests_total{{status=~"5.."}}[{RATE}])) or on() vector(0))'
                    f" / sum(rate(hybridops_serving_requests_total[{RATE}]))",
                    "5xx",
                )
            ],
            unit="percentunit",
        ),
        panel(
            "Latency percentiles",
            "timeseries",
            [
                (
                    f"histogram_quantile({q}, sum by (le) (rate(hybridops_serving_request_duration_seconds_bucket[{RATE}])))",
                    f"p{int(q * 100)}",
                )
                for q in (0.5, 0.95, 0.99)
            ],
            unit="s",
        ),
        panel(
            "Errors by reason",
            "timeseries",
            [(f"sum by (reason) (rate(hybridops_serving_errors_total[{RATE}]))", "{{reason}}")],
            unit="reqps",
        ),
        panel(
            "Degraded responses",
            "timeseries",
            [
                (f"sum(rate(hybridops_serving_degraded_responses_total[{RATE}]))", "responses"),
                (f"sum(rate(hybridops_serving_degraded_flights_total[{RATE}]))", "flights"),
            ],
            unit="reqps",
        ),
        panel(
            "Flights per request (p50, p95)",
            "timeseries",
            [
                (
                    f"histogram_quantile({q}, sum by (le) (rate(hybridops_serving_batch_size_bucket[{RATE}])))",
                    f"p{int(q * 100)}",
                )
                for q in (0.5, 0.95)
            ],
        ),
        panel(
            "Served delay probability (median)",
            "timeseries",
            [
                (
                    f"histogram_quantile(0.5, sum by (le) (rate(hybridops_serving_prediction_bucket[{RATE}])))",
                    "p50",
                )
            ],
            unit="percentunit",
        ),
        panel(
            "Model loaded",
            "table",
            [
                ("hybridops_serving_model_info", "{{name}} v{{version}}"),
                ("time() - hybridops_serving_model_loaded_timestamp_seconds", "age"),
            ],
        ),
        panel(
            "Model reloads",
            "stat",
            [("sum by (source, result) (hybridops_serving_model_reloads_total)", "{{source}} {{result}}")],
        ),
    ],
)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, board in {
        "pipeline-health": PIPELINE,
        "data-quality-spc": QUALITY,
        "feature-store": FEATURES,
        "model": MODEL,
        "serving": SERVING,
    }.items():
        (OUT / f"{name}.json").write_text(json.dumps(board, indent=2) + "\n")


if __name__ == "__main__":
    main()
