"""Scenario 15: a model artifact whose loading would run code is refused and never loaded, and loading a
good one downloads only the files the loader needs (``MLmodel``, read as YAML data, and ``model.lgb``).

The hostile artifacts are real MLflow models registered with a hash tag like ours: a ``python_function``
model whose cloudpickled ``python_model`` creates a marker file when unpickled, a LightGBM flavour pickling
a scikit-learn wrapper, a native model with a stray ``.pkl``, and a native model whose ``MLmodel`` names a
loader module of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import pytest
import yaml
from registry_support import Trained, fast_logging, settings_experiment, synthetic

import hybridops.registry as reg
from hybridops.modeling.artifact import UnsafeModelError
from hybridops.settings import Settings


class Hostile(mlflow.pyfunc.PythonModel):
    """Unpickling it touches ``marker``: what any code in a pickle could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return model_input


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every artifact URI MLflow downloads (the real download runs; the URI is only recorded)."""
    seen: list[str] = []
    real = mlflow.artifacts.download_artifacts

    def recording(*args: Any, **kwargs: Any) -> str:
        seen.append(str(kwargs.get("artifact_uri") or (args[0] if args else "")))
        return str(real(*args, **kwargs))

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", recording)
    return seen


def _native_dir(tmp_path: Path, name: str) -> tuple[Path, str]:
    x, y = synthetic(200, 5)
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(x, label=y), num_boost_round=3)
    path = tmp_path / name
    with fast_logging():
        mlflow.lightgbm.save_model(booster, str(path))
    return path, hashlib.sha256((path / "model.lgb").read_bytes()).hexdigest()


def _register_dir(settings: Settings, path: Path, sha: str) -> str:
    with mlflow.start_run(experiment_id=settings_experiment(settings)) as run:
        mlflow.log_artifacts(str(path), "model")
    # the run's own artifact location (a runs:/ source is refused earlier, by the artifact-location guard)
    return reg.register_candidate(settings, f"{run.info.artifact_uri}/model", run.info.run_id, sha)


def _refused(settings: Settings, version: str, downloads: list[str], what: str) -> str:
    downloads.clear()
    with pytest.raises(UnsafeModelError) as info:
        reg.load_model(settings, f"{settings.mlflow.model_name}/{version}")
    assert what in str(info.value), str(info.value)
    return str(info.value)


def test_artifacts_that_would_run_code_are_refused_unloaded(
    make_settings: Callable[[], Settings], boosters: dict[str, Trained], downloads: list[str], tmp_path: Path
) -> None:
    settings = make_settings()
    marker = tmp_path / "code-ran"

    # A python_function model: a cloudpickled python_model (MLflow's own custom-model format).
    with mlflow.start_run(experiment_id=settings_experiment(settings)) as run, fast_logging():
        info = mlflow.pyfunc.log_model(name="model", python_model=Hostile(marker))
    marker.unlink(missing_ok=True)  # whatever MLflow did while logging; from here nothing may run it
    pyfunc_version = reg.register_candidate(settings, info.model_uri, run.info.run_id, "0" * 64)
    message = _refused(settings, pyfunc_version, downloads, "python_model.pkl")
    assert "log_booster" in message  # says what to do
    assert downloads == []  # refused from the listing: nothing fetched

    # The LightGBM flavour of a scikit-learn wrapper: a pickle behind a lightgbm flavour.
    x, y = synthetic(200, 6)
    with mlflow.start_run(experiment_id=settings_experiment(settings)) as run, fast_logging():
        info = mlflow.lightgbm.log_model(
            lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(x, y),
            name="model",
            serialization_format="cloudpickle",
        )
    sklearn_version = reg.register_candidate(settings, info.model_uri, run.info.run_id, "1" * 64)
    _refused(settings, sklearn_version, downloads, "model.pkl")
    assert downloads == []

    # A native model with a stray pickle among its files.
    path, sha = _native_dir(tmp_path, "stray")
    (path / "extra.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    _refused(settings, _register_dir(settings, path, sha), downloads, "extra.pkl")
    assert downloads == []

    # A native model whose MLmodel gives python_function a loader module of its own.
    path, sha = _native_dir(tmp_path, "loader")
    descriptor = yaml.safe_load((path / "MLmodel").read_text())
    descriptor["flavors"]["python_function"]["loader_module"] = "evil_loader"
    (path / "MLmodel").write_text(yaml.safe_dump(descriptor))
    _refused(settings, _register_dir(settings, path, sha), downloads, "python_function flavour with code")
    assert [uri.rsplit("/", 1)[-1] for uri in downloads] == ["MLmodel"]  # read as data, model.lgb never

    assert not marker.exists()  # nothing was unpickled

    # The refusals protect something real: MLflow's own loader runs the pickle's code (Path.touch, whose
    # None then fails as a model).
    with pytest.raises(AttributeError):
        mlflow.pyfunc.load_model(f"models:/{settings.mlflow.model_name}/{pyfunc_version}")
    assert marker.exists()


def test_a_native_model_downloads_only_what_the_loader_needs(
    make_settings: Callable[[], Settings], boosters: dict[str, Trained], downloads: list[str]
) -> None:
    settings = make_settings()
    good = boosters["good"]
    version = reg.register_candidate(settings, good.logged.model_uri, good.logged.run_id, good.logged.sha256)
    loaded = reg.load_model(settings, f"{settings.mlflow.model_name}/{version}")
    assert [uri.rsplit("/", 1)[-1] for uri in downloads] == ["MLmodel", "model.lgb"]
    assert hashlib.sha256(loaded.model_text).hexdigest() == good.logged.sha256
    x, _ = synthetic(50, 7)
    assert (loaded.booster.predict(x) == good.booster.predict(x)).all()
