"""Loading a registered model: native LightGBM text, a verified hash, no pickle anywhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pytest
from registry_support import HOLDOUT, Trained, train_and_log

from hybridops.errors import HybridopsError
from hybridops.modeling.artifact import MODEL_FILE, TamperedModelError
from hybridops.registry import models as reg
from hybridops.settings import Settings


def local_dir(uri: str) -> Path:
    assert uri.startswith("file:"), uri
    return Path(url2pathname(urlparse(uri).path))


def register(settings: Settings, trained: Trained) -> str:
    logged = trained.logged
    return reg.register_candidate(settings, logged.model_uri, logged.run_id, logged.sha256, "test")


def test_load_resolves_refs_and_needs_no_pickle(
    make_settings: Callable[[], Settings], boosters: dict[str, Trained]
) -> None:
    settings = make_settings()
    name = settings.mlflow.model_name
    good, fair = boosters["good"], boosters["fair"]
    v1 = register(settings, fair)
    reg.promote(settings, v1, "first")
    v2 = register(settings, good)

    info = reg.resolve(settings, f"{name}/{v2}")
    folder = local_dir(info.artifact_uri)
    assert folder.is_relative_to(settings.mlflow_artifacts_dir)
    assert (folder / MODEL_FILE).is_file()
    pickles = [
        *settings.mlflow_artifacts_dir.rglob("*.pkl"),
        *settings.mlflow_artifacts_dir.rglob("*.pickle"),
    ]
    assert pickles == []

    loaded = reg.load_model(settings, f"{name}@challenger")
    assert loaded.info.version == v2 and loaded.info.sha256 == good.logged.sha256
    assert loaded.info.model_uri == f"models:/{name}/{v2}"
    assert loaded.info.metrics["auc"] == pytest.approx(good.metrics["auc"])
    x, _ = HOLDOUT
    np.testing.assert_allclose(loaded.booster.predict(x), good.booster.predict(x))

    by_name = reg.load_model(settings, name)  # a bare name is the champion
    assert by_name.info.version == v1 and "champion" in by_name.info.aliases
    np.testing.assert_allclose(by_name.booster.predict(x), fair.booster.predict(x))


def test_unknown_refs_are_clear_errors(
    make_settings: Callable[[], Settings], boosters: dict[str, Trained]
) -> None:
    settings = make_settings()
    name = settings.mlflow.model_name
    with pytest.raises(HybridopsError, match="not found"):
        reg.resolve(settings, name)
    register(settings, boosters["poor"])
    with pytest.raises(HybridopsError, match="no alias 'champion'"):
        reg.load_model(settings, name)
    with pytest.raises(HybridopsError, match="no version 5"):
        reg.load_model(settings, f"{name}/5")
    with pytest.raises(HybridopsError, match="Bad model reference"):
        reg.load_model(settings, f"{name}@")


def test_tampered_artifact_is_refused(make_settings: Callable[[], Settings]) -> None:
    settings = make_settings()
    name = settings.mlflow.model_name
    trained = train_and_log(settings, ["signal"], seed=7, rounds=5)  # its own files: this test edits them
    version = register(settings, trained)
    reg.load_model(settings, f"{name}/{version}")  # intact: loads

    model_file = local_dir(reg.resolve(settings, f"{name}/{version}").artifact_uri) / MODEL_FILE
    content = bytearray(model_file.read_bytes())
    position = content.index(b"leaf_value=") + len(b"leaf_value=") + 1
    content[position] = ord("7") if content[position] != ord("7") else ord("3")  # still a valid model
    model_file.write_bytes(bytes(content))

    with pytest.raises(TamperedModelError, match="refusing to load"):
        reg.load_model(settings, f"{name}/{version}")


def test_a_forged_version_hash_is_refused(
    make_settings: Callable[[], Settings], boosters: dict[str, Trained]
) -> None:
    settings = make_settings()
    name = settings.mlflow.model_name
    version = register(settings, boosters["good"])
    client = reg.registry_client(settings)
    client.set_model_version_tag(name, version, "hybridops.model_sha256", "f" * 64)
    with pytest.raises(TamperedModelError):
        reg.load_model(settings, f"{name}/{version}")
    client.delete_model_version_tag(name, version, "hybridops.model_sha256")
    with pytest.raises(HybridopsError, match="cannot be verified"):
        reg.load_model(settings, f"{name}/{version}")


def test_loading_leaves_mlflow_process_wide_uris_alone(
    make_settings: Callable[[], Settings], boosters: dict[str, Trained], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load resolves its stores from the settings alone: it neither reads nor pins MLflow's global URIs
    (a registry URI pinned by one load sent a later caller's ``models:/`` lookups to another store)."""
    import os

    import mlflow

    settings = make_settings()
    version = register(settings, boosters["good"])
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    mlflow.set_tracking_uri("sqlite:///elsewhere-never-created.db")  # the global points somewhere else
    try:
        loaded = reg.load_model(settings, f"{settings.mlflow.model_name}/{version}")
        assert loaded.info.version == version
        assert "MLFLOW_REGISTRY_URI" not in os.environ
        assert mlflow.get_tracking_uri() == "sqlite:///elsewhere-never-created.db"
        assert not Path("elsewhere-never-created.db").exists()
    finally:
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
