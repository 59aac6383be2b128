"""Settings of MLflow tracking and the model registry (``mlflow``) and of the promotion gate (``gate``)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from hybridops.settings.section import _Section

_STORE_URL = re.compile(r"^(https?|sqlite|postgres|postgresql|mysql|mssql)(\+\w+)?://|^databricks")
"""Stores MLflow serves a registry from: a tracking server, or a database. Anything else MLflow takes for a
path of its retired file store, and fails deep inside a command."""


class MlflowSettings(_Section):
    """Experiment tracking and model registry."""

    tracking_uri: str | None = Field(
        None, description="Tracking server URI; default a SQLite store under <home>/mlflow."
    )
    registry_uri: str | None = Field(None, description="Model registry URI; default the tracking URI.")

    @field_validator("tracking_uri", "registry_uri")
    @classmethod
    def _a_store_url(cls, value: str | None) -> str | None:
        if value is not None and not _STORE_URL.match(value):
            raise ValueError(
                f"{value!r} is not a tracking store: give an MLflow server (http://host:5000) or a database "
                "(sqlite:///path/mlflow.db, postgresql://user:pass@host/db), or unset it for the store under home"
            )
        return value

    experiment: str = Field("flight_delay", description="MLflow experiment name.")
    model_name: str = Field("flight_delay", description="Registered model name.")
    allowed_artifact_roots: list[str] = Field(
        default_factory=list,
        description=(
            "Extra locations model files may be read from (e.g. s3://bucket/models/), besides the store's own "
            "artifact root (the tracking server's mlflow-artifacts:/ proxy, or <home>/mlflow/artifacts): a "
            "registered version pointing elsewhere is refused before anything is downloaded."
        ),
    )


class GateSettings(_Section):
    """Promotion gate between the candidate and the current champion."""

    min_auc: float = Field(
        0.60, ge=0, le=1, description="A candidate below this holdout ROC AUC is never promoted."
    )
    max_brier: float = Field(
        0.25, gt=0, le=1, description="A candidate above this Brier score is never promoted."
    )
    min_auc_improvement: float = Field(
        0.002, ge=0, description="Holdout AUC gain over the champion needed to replace it."
    )
    # Issue 15's bar: with the request-time features the model beats the baseline by +0.0517, +0.0218 and
    # +0.0317 on the April, July and December 2013 holdouts (docs/mlops.md).
    min_baseline_margin: float = Field(
        0.02,
        ge=0,
        description=(
            "Holdout AUC gain over the plain baseline (LightGBM on the request columns and the origin "
            "weather at the scheduled hour, no feature store), trained on the same months, needed to promote."
        ),
    )
