"""The model artifact: a LightGBM Booster in its native text format, never a pickle.

A registry model must not be able to run code when it is loaded. LightGBM's text format is data, not code,
and MLflow's lightgbm flavour stores a Booster as ``model.lgb`` in that format. The file's SHA-256 is
recorded on the MLflow run (tag ``hybridops.model_sha256``) when it is logged and checked on every load,
so a tampered artifact is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb

from hybridops.errors import HybridopsError

MODEL_FILE = "model.lgb"
SHA_TAG = "hybridops.model_sha256"
FEATURES_TAG = "hybridops.features"


class TamperedModelError(HybridopsError):
    """The model file's content does not match the hash recorded when it was logged."""


@dataclass(frozen=True)
class LoggedModel:
    run_id: str
    model_uri: str
    sha256: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def log_booster(booster: lgb.Booster, input_example: Any, signature: Any = None) -> LoggedModel:
    """Log ``booster`` to the active MLflow run (native format) and tag the run with the file's hash."""
    import mlflow

    # Explicit requirements: MLflow's inference of them starts a subprocess that costs seconds per model.
    requirements = [f"lightgbm=={lgb.__version__}", f"mlflow=={mlflow.__version__}"]
    info = mlflow.lightgbm.log_model(
        booster,
        name="model",
        input_example=input_example,
        signature=signature,
        pip_requirements=requirements,
    )
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri)) / MODEL_FILE
    if not local.exists():  # the flavour changed its layout: refuse rather than fall back to pickle
        raise HybridopsError(f"MLflow did not store the model as {MODEL_FILE} (native LightGBM text)")
    sha = file_sha256(local)
    run = mlflow.active_run()
    assert run is not None
    mlflow.set_tag(SHA_TAG, sha)
    mlflow.set_tag(FEATURES_TAG, ",".join(booster.feature_name()))
    return LoggedModel(run_id=run.info.run_id, model_uri=info.model_uri, sha256=sha)


def load_booster(model_uri: str, expected_sha256: str) -> lgb.Booster:
    """Download ``model_uri`` and load its native Booster after checking its hash.

    Raises:
        TamperedModelError: the file differs from the one that was logged.
    """
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri)) / MODEL_FILE
    actual = file_sha256(local)
    if actual != expected_sha256:
        raise TamperedModelError(
            f"{model_uri}: {MODEL_FILE} has sha256 {actual[:12]}…, the logged model had "
            f"{expected_sha256[:12]}…; refusing to load it. Re-register the model from a trusted run."
        )
    return lgb.Booster(model_file=str(local))
