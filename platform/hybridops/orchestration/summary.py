"""The run summary: what ``hybridops run`` prints and writes with ``--json``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class CheckSummary(BaseModel):
    asset: str
    name: str
    passed: bool
    severity: Literal["ERROR", "WARN"]
    # One month, or "first..last" for a run over consecutive months (the message names the failing months).
    partition: str | None = None
    blocking: bool = False
    message: str = ""
    # False when the check never ran (its batch was blocked before it): neither passed nor failed.
    evaluated: bool = True


class SpcViolationSummary(BaseModel):
    month_key: str
    day: str
    metric: str
    rule: str
    severity: str
    value: float
    detail: str


class AlarmSummary(BaseModel):
    """One alarm of the run's months: one per cause, with its evidence (see ``orchestration.alarms``)."""

    kind: Literal["spc", "drift", "performance"]
    metric: str = Field(description="The metric, or the metrics of a grouped alarm, comma-separated.")
    rule: str
    severity: Literal["ERROR", "WARN"]
    month: str
    date: str | None = Field(None, description="The day the alarm was raised, for daily (SPC) alarms.")
    evidence: str = ""


class LoopDecisionSummary(BaseModel):
    """One decision of the retraining loop in this run, and what its retraining gave."""

    month: str | None = Field(None, description="The month whose signal triggered it (held out), if any.")
    triggered: bool
    reason: str
    promoted: bool | None = Field(None, description="None when no retraining ran.")
    candidate_auc: float | None = None
    champion_auc: float | None = Field(None, description="The champion's AUC on the same holdout month.")


class BaselineSummary(BaseModel):
    """The plain baseline (LightGBM on the request columns and the origin weather at the scheduled hour, no
    feature store) trained on the candidate's months and measured on its holdout."""

    metrics: dict[str, float] = Field(default_factory=dict, description="On the candidate's holdout month.")
    margin: float | None = Field(None, description="Candidate holdout AUC minus the baseline's.")


class ModelSummary(BaseModel):
    """The champion after this run's gate, and what the gate decided about the candidate."""

    name: str
    version: str | None
    alias: str = "champion"
    metrics: dict[str, float] = Field(default_factory=dict, description="On the latest holdout month.")
    promoted: bool
    reason: str
    candidate_version: str
    candidate_metrics: dict[str, float] = Field(default_factory=dict)
    holdout_month: str
    score_months: list[str] = Field(default_factory=list)
    trigger: str = "pipeline"
    baseline: BaselineSummary | None = None


class DriftSummary(BaseModel):
    """Drift per scored month and feature, live performance, and what the retraining loop did."""

    features: dict[str, dict[str, dict[str, float]]] = Field(
        default_factory=dict, description="month -> feature -> {psi, ks}"
    )
    drifted: dict[str, list[str]] = Field(default_factory=dict)
    prediction_psi: dict[str, float] = Field(default_factory=dict)
    live_auc: dict[str, float] = Field(default_factory=dict)
    retrain_triggered: bool = False
    retrain_reason: str = ""
    retrain_run_id: str | None = None
    retrain_model: ModelSummary | None = Field(None, description="What the retraining run's gate decided.")


class RunSummary(BaseModel):
    """Outcome of one ``hybridops run`` over a range of monthly partitions."""

    status: Literal["success", "failed", "blocked"]
    months: list[str]
    run_ids: list[str] = Field(default_factory=list)
    rows_ingested: int = 0
    rows_quarantined: int = 0
    quarantined_by_table: dict[str, int] = Field(default_factory=dict)
    checks: list[CheckSummary] = Field(default_factory=list)
    spc_violations: list[SpcViolationSummary] = Field(default_factory=list)
    alarms: list[AlarmSummary] = Field(default_factory=list, description="SPC, drift and performance alarms.")
    loop: list[LoopDecisionSummary] = Field(default_factory=list)
    features_materialized: int = 0
    warehouse_rows: int = 0
    report_path: str | None = None
    model: ModelSummary | None = None
    drift: DriftSummary = Field(default_factory=DriftSummary)
    notes: list[str] = Field(default_factory=list)
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    total_seconds: float = 0.0
    problems: list[str] = Field(default_factory=list, description="What blocked or failed, in plain words.")
    log_path: str | None = Field(None, description="Dagster's event log of this run (errors, stack traces).")
    warehouse_path: str | None = Field(None, description="The warehouse holding the quarantine table.")

    @property
    def failed_checks(self) -> list[CheckSummary]:
        return [c for c in self.checks if c.evaluated and not c.passed]

    @property
    def not_evaluated_checks(self) -> list[CheckSummary]:
        return [c for c in self.checks if not c.evaluated]
