"""The model artifact: a LightGBM Booster in its native text format, never a pickle.

A registry model must not be able to run code when it is loaded. LightGBM's text format is data, not code,
and MLflow's lightgbm flavour stores a Booster as ``model.lgb`` in that format. The file's SHA-256 is
recorded on the MLflow run (tag ``hybridops.model_sha256``) when it is logged and checked on every load,
so a tampered artifact is refused.

Loading downloads one file, ``model.lgb``, and only after the artifact's listing and its ``MLmodel``
descriptor (YAML read as data) show nothing that a loader would execute: an artifact holding a pickle
(``*.pkl``, ``*.pickle``, ``*.joblib``, ...), a ``python_function`` flavour of its own (a cloudpickled
``python_model`` or a custom ``loader_module``), a LightGBM flavour pickling a scikit-learn wrapper, or any
other flavour is refused with :class:`UnsafeModelError` before any of its files is fetched.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb

from hybridops.errors import HybridopsError

MODEL_FILE = "model.lgb"
SHA_TAG = "hybridops.model_sha256"
FEATURES_TAG = "hybridops.features"


MLMODEL_FILE = "MLmodel"
# Files that execute code when loaded by their usual loader (pickle and its relatives, torch's zip pickles).
UNSAFE_SUFFIXES = (".pkl", ".pickle", ".cloudpickle", ".joblib", ".dill", ".sav", ".pt", ".pth", ".npy")
_MAX_LISTED = 1000  # an artifact is a handful of files; a tree this big is not a model of ours


class TamperedModelError(HybridopsError):
    """The model file's content does not match the hash recorded when it was logged."""


class UnsafeModelError(HybridopsError):
    """The model artifact holds something whose loading would run code (a pickle, a custom flavour)."""


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


def artifact_files(model_uri: str, tracking_uri: str | None = None) -> list[str]:
    """Every file of the artifact at ``model_uri``, as paths relative to it (listed, nothing downloaded).

    ``tracking_uri`` resolves ``mlflow-artifacts:/`` locations (default: MLflow's global tracking URI).
    """
    import mlflow

    found: list[str] = []
    pending = [""]
    while pending:
        folder = pending.pop()
        uri = model_uri.rstrip("/") + (f"/{folder}" if folder else "")
        for entry in mlflow.artifacts.list_artifacts(artifact_uri=uri, tracking_uri=tracking_uri):
            relative = f"{folder}/{Path(entry.path).name}" if folder else Path(entry.path).name
            (pending if entry.is_dir else found).append(relative)
            if len(found) + len(pending) > _MAX_LISTED:
                raise UnsafeModelError(f"{model_uri}: more than {_MAX_LISTED} files; not a model of ours")
    return sorted(found)


def check_safe(model_uri: str, files: list[str], descriptor: dict[str, Any] | None) -> None:
    """Refuse an artifact whose loading could run code (module docstring).

    Raises:
        UnsafeModelError: naming the files or the flavour and what to do.
    """
    unsafe = [name for name in files if name.lower().endswith(UNSAFE_SUFFIXES)]
    if unsafe:
        raise UnsafeModelError(
            f"{model_uri}: refusing a model artifact that holds {', '.join(unsafe)} (a pickle runs code when "
            f"loaded); hybridops loads only LightGBM's native {MODEL_FILE}. Log the model with "
            "hybridops.modeling.artifact.log_booster and register that version."
        )
    if MODEL_FILE not in files:
        raise HybridopsError(f"{model_uri}: no {MODEL_FILE} (LightGBM's native text model) among {files}")
    if descriptor is None:
        return
    flavors = descriptor.get("flavors")
    if not isinstance(flavors, dict):
        raise UnsafeModelError(f"{model_uri}: its {MLMODEL_FILE} has no flavors mapping")
    problems = [f"flavour {name!r}" for name in flavors if name not in ("lightgbm", "python_function")]
    lightgbm_flavor = flavors.get("lightgbm")
    if not isinstance(lightgbm_flavor, dict) or lightgbm_flavor.get("data") != MODEL_FILE:
        problems.append(f"a lightgbm flavour whose data is not {MODEL_FILE}")
    elif str(lightgbm_flavor.get("model_class", "")) != "lightgbm.basic.Booster":
        problems.append(f"a lightgbm flavour of {lightgbm_flavor.get('model_class')!r} (a pickled wrapper)")
    pyfunc = flavors.get("python_function")
    if pyfunc is not None and (
        not isinstance(pyfunc, dict)
        or pyfunc.get("loader_module") != "mlflow.lightgbm"
        or any(key in pyfunc for key in ("python_model", "cloudpickle_version", "code"))
    ):
        problems.append("a python_function flavour with code of its own")
    if problems:
        raise UnsafeModelError(
            f"{model_uri}: refusing a model artifact with {'; '.join(problems)} in its {MLMODEL_FILE}; "
            f"hybridops loads only LightGBM's native {MODEL_FILE}. Log the model with "
            "hybridops.modeling.artifact.log_booster and register that version."
        )


def fetch_model_text(
    model_uri: str, expected_sha256: str, tracking_uri: str | None = None, registry_uri: str | None = None
) -> bytes:
    """The verified bytes of ``model_uri``'s ``model.lgb``, after checking the artifact is safe to load.

    Downloads ``MLmodel`` (parsed as YAML data) and ``model.lgb``, nothing else. ``tracking_uri`` and
    ``registry_uri`` name the stores that resolve ``mlflow-artifacts:/`` and ``models:/`` URIs; given, they
    are passed to each MLflow call, so MLflow's process-wide URIs are neither read nor changed.

    Raises:
        UnsafeModelError: the artifact holds a pickle or a flavour with code (nothing of it is loaded).
        TamperedModelError: the file differs from the one that was logged.
    """
    import mlflow
    import yaml

    if model_uri.startswith("models:/"):
        # The listing API reads models:/ as a registered model name; resolve it to its files' location.
        if registry_uri is None:
            from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

            model_uri = ModelsArtifactRepository.get_underlying_uri(model_uri)
        else:
            from mlflow.tracking import MlflowClient

            name, _, version = model_uri.removeprefix("models:/").partition("/")
            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
            model_uri = client.get_model_version_download_uri(name, version)
    files = artifact_files(model_uri, tracking_uri)
    check_safe(model_uri, files, None)  # the listing first: refuse before downloading anything
    with tempfile.TemporaryDirectory(prefix="hybridops-model-") as tmp:
        descriptor = None
        if MLMODEL_FILE in files:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{model_uri.rstrip('/')}/{MLMODEL_FILE}",
                dst_path=tmp,
                tracking_uri=tracking_uri,
            )
            try:
                descriptor = yaml.safe_load(Path(local).read_text())
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise UnsafeModelError(f"{model_uri}: unreadable {MLMODEL_FILE} ({exc})") from exc
            if not isinstance(descriptor, dict):
                raise UnsafeModelError(f"{model_uri}: its {MLMODEL_FILE} is not a mapping")
        check_safe(model_uri, files, descriptor)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{model_uri.rstrip('/')}/{MODEL_FILE}", dst_path=tmp, tracking_uri=tracking_uri
        )
        text = Path(local).read_bytes()
    actual = hashlib.sha256(text).hexdigest()
    if actual != expected_sha256:
        raise TamperedModelError(
            f"{model_uri}: {MODEL_FILE} has sha256 {actual[:12]}…, the logged model had "
            f"{expected_sha256[:12]}…; refusing to load it. Re-register the model from a trusted run."
        )
    return text


def load_booster(model_uri: str, expected_sha256: str) -> lgb.Booster:
    """Download ``model_uri``'s ``model.lgb`` and load its native Booster after the checks of
    :func:`fetch_model_text`.

    Raises:
        UnsafeModelError: the artifact holds a pickle or a flavour with code.
        TamperedModelError: the file differs from the one that was logged.
    """
    return lgb.Booster(model_str=fetch_model_text(model_uri, expected_sha256).decode())
