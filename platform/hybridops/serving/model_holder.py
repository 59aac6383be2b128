"""The served model: loaded once from the registry alias, kept in memory, reloaded when the alias moves.

A background thread looks the reference (default ``<model_name>@champion``) up every
``serving.model_poll_seconds`` with one registry call on a kept client (``get_model_version_by_alias``:
about 3 ms of CPU, where ``resolve`` with a new client takes about 40 ms, which the request thread felt on
a single core) and loads the new version only when it changed (``load_model`` checks the file's
SHA-256). Every model loaded from the registry is also written to ``<home>/serving/model/``
(``model-<sha256>.lgb``, LightGBM's native text, plus ``model.json`` with name, version, that file's name and
its sha256), so a registry outage at start serves the last good model from disk (its hash verified), and an
outage later keeps the model in memory. In the cluster ``<home>`` is the shared data volume: a new pod finds
the model an earlier pod cached. Several pods write the cache at once safely: each model file is named by
its content and written under a name of its own, and ``model.json`` (which names the file) is replaced
last, in one rename, so a reader never pairs one model's metadata with another model's file.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
from mlflow import MlflowClient

from hybridops.errors import HybridopsError
from hybridops.modeling.artifact import SHA_TAG, TamperedModelError, file_sha256
from hybridops.registry.client import parse_model_ref, registry_client
from hybridops.registry.models import CHAMPION, load_model
from hybridops.serving.booster_predict import BoosterPredictor
from hybridops.serving.metrics import ServingMetrics
from hybridops.settings import Settings

log = logging.getLogger(__name__)

MODEL_FILE = "model.lgb"
META_FILE = "model.json"
STALE_MODEL_SECONDS = 3600.0  # model files no metadata names are removed after this (a writer may be mid-way)


@dataclass(frozen=True)
class ServedModel:
    booster: lgb.Booster
    name: str
    version: str
    registry_sha256: str | None  # the registry's hash of the logged file (None when unknown)
    source: str  # "registry" or "disk_cache"
    loaded_at: float
    columns: np.ndarray  # positions of booster.feature_name() in the served feature order
    predictor: BoosterPredictor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "predictor", BoosterPredictor(self.booster))

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return self.predictor.predict(matrix[:, self.columns])


def model_ref(settings: Settings) -> str:
    return settings.serving.model_ref or f"{settings.mlflow.model_name}@champion"


def cache_dir(settings: Settings) -> Path:
    return settings.home_dir / "serving" / "model"


def _columns(booster: lgb.Booster, served: Sequence[str]) -> np.ndarray:
    position = {name: i for i, name in enumerate(served)}
    unserved = [name for name in booster.feature_name() if name not in position]
    if unserved:
        raise HybridopsError(f"the model expects features the feature service lacks: {unserved}")
    return np.array([position[name] for name in booster.feature_name()], dtype=np.intp)


def write_cache(settings: Settings, model: ServedModel) -> None:
    folder = cache_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    unique = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp_model = folder / f".{MODEL_FILE}.{unique}.tmp"
    tmp_model.write_text(model.booster.model_to_string())
    sha = file_sha256(tmp_model)
    name = f"model-{sha}.lgb"
    meta = {
        "name": model.name,
        "version": model.version,
        "file": name,
        "sha256": sha,
        "registry_sha256": model.registry_sha256,
        "saved_at": time.time(),
    }
    tmp_meta = folder / f".{META_FILE}.{unique}.tmp"
    tmp_meta.write_text(json.dumps(meta, indent=2))
    os.replace(tmp_model, folder / name)  # same name, same content: another pod's replace is harmless
    os.replace(tmp_meta, folder / META_FILE)
    for stale in folder.glob("model-*.lgb"):
        try:
            named = json.loads((folder / META_FILE).read_text()).get("file")
            if stale.name not in (name, named) and time.time() - stale.stat().st_mtime > STALE_MODEL_SECONDS:
                stale.unlink()
        except (OSError, ValueError):  # another pod removed it first, or is replacing the metadata
            pass


def read_cache(settings: Settings, served: Sequence[str]) -> ServedModel:
    """The last good model from disk after checking its hash.

    Raises:
        HybridopsError: no cache; TamperedModelError: the file differs from the recorded hash.
    """
    folder = cache_dir(settings)
    try:
        meta = json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise HybridopsError(f"no usable model cache in {folder} ({exc})") from exc
    path = folder / str(meta.get("file", MODEL_FILE))
    try:
        actual = file_sha256(path)
    except OSError as exc:
        raise HybridopsError(f"no usable model cache in {folder} ({exc})") from exc
    if actual != meta.get("sha256"):
        raise TamperedModelError(
            f"{path} has sha256 {actual[:12]}…, {META_FILE} records another; not serving it"
        )
    booster = lgb.Booster(model_file=str(path))
    return ServedModel(
        booster=booster,
        name=str(meta["name"]),
        version=str(meta["version"]),
        registry_sha256=meta.get("registry_sha256"),
        source="disk_cache",
        loaded_at=time.time(),
        columns=_columns(booster, served),
    )


class ModelHolder:
    """Holds the current model; ``current`` is swapped atomically (one attribute assignment)."""

    def __init__(self, settings: Settings, served: Sequence[str], metrics: ServingMetrics) -> None:
        self.settings = settings
        self.served = list(served)
        self.metrics = metrics
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: tuple[tuple[str, str | None], MlflowClient] | None = None

    # --- loading ----------------------------------------------------------------------------------
    def _install(self, model: ServedModel) -> None:
        self.current = model
        self.metrics.model_info.info({"name": model.name, "version": model.version, "source": model.source})
        self.metrics.loaded_at.set(model.loaded_at)
        self.metrics.reloads.labels(model.source, "success").inc()
        log.warning("serving %s version %s (from %s)", model.name, model.version, model.source)

    def load_from_registry(self) -> ServedModel:
        loaded = load_model(self.settings, model_ref(self.settings))
        model = ServedModel(
            booster=loaded.booster,
            name=loaded.info.name,
            version=loaded.info.version,
            registry_sha256=loaded.info.sha256,
            source="registry",
            loaded_at=time.time(),
            columns=_columns(loaded.booster, self.served),
        )
        try:
            write_cache(self.settings, model)
        except OSError as exc:  # serving goes on; the next restart may lack a fallback
            log.warning("cannot write the model cache: %s", exc)
        return model

    def load_initial(self) -> None:
        try:
            self._install(self.load_from_registry())
            return
        except Exception as exc:  # registry unreachable, alias unset, tampered file...
            self.last_error = f"registry: {exc}"
            self.metrics.reloads.labels("registry", "failure").inc()
            log.warning(
                "cannot load %s from the registry (%s); trying the disk cache", model_ref(self.settings), exc
            )
        try:
            self._install(read_cache(self.settings, self.served))
        except Exception as exc:
            self.last_error = f"{self.last_error}; disk cache: {exc}"
            self.metrics.reloads.labels("disk_cache", "failure").inc()
            log.error("no model to serve: %s", self.last_error)

    def _registry(self) -> MlflowClient:
        """One client per registry location (tests point ``settings`` at another registry)."""
        where = (self.settings.mlflow_tracking_uri, self.settings.mlflow.registry_uri)
        if self._client is None or self._client[0] != where:
            self._client = (where, registry_client(self.settings))
        return self._client[1]

    def peek(self) -> tuple[str, str, str | None]:
        """(name, version, sha256 tag) that the reference points at now, in one registry call."""
        ref = parse_model_ref(model_ref(self.settings))
        client = self._registry()
        if ref.version is not None:
            mv = client.get_model_version(ref.name, ref.version)
        else:
            mv = client.get_model_version_by_alias(ref.name, ref.alias or CHAMPION)
        return mv.name, str(mv.version), (mv.tags or {}).get(SHA_TAG)

    def poll_once(self) -> bool:
        """Reload when the reference points at another version (or no model is loaded). True if reloaded."""
        try:
            name, version, sha256 = self.peek()
            self.last_error = None
            current = self.current
            same = current is not None and (name, version) == (current.name, current.version)
            if same and current is not None and current.registry_sha256 in (None, sha256):
                return False
            self._install(self.load_from_registry())
            return True
        except Exception as exc:  # keep serving the last good model
            self.last_error = f"registry: {exc}"
            self.metrics.reloads.labels("registry", "failure").inc()
            log.warning(
                "model poll failed, keeping version %s: %s", getattr(self.current, "version", None), exc
            )
            return False

    # --- background poll --------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="hybridops-model-poll", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.serving.model_poll_seconds):
            self.poll_once()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
