"""Settings of how the Dagster code location runs itself (``orchestration``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hybridops.settings.section import _Section


class OrchestrationSettings(_Section):
    """How the Dagster code location runs itself (read when the definitions load, never at import)."""

    automation: bool = Field(
        True,
        description=(
            "Sensors and declarative automation start running by default wherever a Dagster daemon runs; "
            "false leaves them stopped (they can still be switched on in the UI)."
        ),
    )
    sensor_interval_seconds: int = Field(
        30, ge=1, description="Least time between two evaluations of the source and automation sensors."
    )
    executor: Literal["multiprocess", "in_process", "k8s"] = Field(
        "multiprocess",
        description=(
            "Executor of launched runs: one process per step, every step in the run's process "
            "(in_process: no per-step start-up, for a small machine), or one Kubernetes Job per step (k8s)."
        ),
    )
    training_cron: str = Field(
        "0 4 1 * *",
        description="Cadence of scheduled retraining (cron, UTC), besides the drift/SPC retraining loop.",
    )
    skew_audit_cron: str = Field(
        "0 * * * *", description="Cadence of the online/offline skew audit of served features (cron, UTC)."
    )
    run_monitoring: bool = Field(
        True,
        description=(
            "The daemon's run monitoring on the local instance (dagster.yaml): a run that stays starting past "
            "run_start_timeout_seconds, or runs past max_runtime_seconds, is marked failed (and retried)."
        ),
    )
    run_start_timeout_seconds: int = Field(
        180, ge=1, description="A launched run whose worker has not started within this time is failed."
    )
    run_monitoring_interval_seconds: int = Field(
        30, ge=1, description="How often the daemon's run monitoring looks at started and starting runs."
    )
    max_runtime_seconds: int = Field(
        0, ge=0, description="A run still going after this long is failed (a hung run); 0: no limit."
    )
    run_retries: int = Field(
        1,
        ge=0,
        description=(
            "Retries of a launched run whose worker died (killed, out of memory, node lost), from the failed "
            "step on (dagster/retry_strategy FROM_FAILURE); 0 turns run retries off. A run failed by one of "
            "its steps is not retried as a whole: transient step errors have step_retries."
        ),
    )
    step_retries: int = Field(
        3,
        ge=0,
        description=(
            "Retries of a step that talks to MLflow, PostgreSQL, Redis or the online store after a transient "
            "error (connection refused or reset, timeout, server unavailable); data errors are never retried."
        ),
    )
    step_retry_delay_seconds: float = Field(
        2.0,
        gt=0,
        le=600,
        description="Step retry n waits (2^n - 1) x this (2, 6, 14 s by default), plus or minus this as jitter.",
    )
