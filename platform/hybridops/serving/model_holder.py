"""The served model: loaded once from the registry alias, kept in memory, reloaded when the alias moves.

A background thread looks the reference (default ``<model_name>@champion``) up every
``serving.model_poll_seconds`` with one registry call on a kept client (``get_model_version_by_alias``:
about 3 ms of CPU, where ``resolve`` with a new client takes about 40 ms, which the request thread felt on
a single core) and loads the new version only when it changed (``load_model`` checks the file's
SHA-256). Every model loaded from the registry is also written to ``<home>/serving/model/``, content-addressed
by the registry's hash: ``model-<sha256>.lgb`` holds the very bytes the registry's version holds (their
SHA-256 is the version's ``hybridops.model_sha256`` tag, checked at download), and ``model.json`` names it
with its model name and version. A registry outage later keeps the model in memory. A registry that does not
answer within ``serving.registry_start_seconds`` at start (stopped, or hung: connections accepted, nothing
answered) does not hold the process: it serves the cached model after checking that the file's SHA-256 is
the registry hash its name and ``model.json`` record, or, without a usable cache, starts unready (``/healthz``
200, ``/readyz`` 503) instead of exiting, and keeps trying the registry in the background. Once the
registry answers, the poll compares the served model's hash with the registry's tag of that version and
replaces a model that differs (a cache forged while the registry was away). In the cluster ``<home>`` is the shared data volume: a new pod finds
the model an earlier pod cached. Several pods write the cache at once safely: each model file is named by
its content and written under a name of its own, and ``model.json`` (which names the file) is replaced
last, in one rename, so a reader never pairs one model's metadata with another model's file.
"""

from __future__ import annotations

import hashlib
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
from hybridops.modeling.artifact import SHA_TAG, TamperedModelError
from hybridops.registry.client import parse_model_ref, registry_client
from hybridops.registry.models import CHAMPION, load_model
from hybridops.serving.booster_predict import BoosterPredictor
from hybridops.serving.metrics import ServingMetrics
from hybridops.serving.self_check import check_predictor
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


def write_cache(settings: Settings, model: ServedModel, model_text: bytes) -> None:
    """Cache ``model_text`` (the registry's verified file, byte for byte) as ``model-<sha256>.lgb``."""
    folder = cache_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    unique = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    sha = hashlib.sha256(model_text).hexdigest()
    if model.registry_sha256 is not None and sha != model.registry_sha256:
        raise TamperedModelError(f"the model to cache has sha256 {sha[:12]}…, not the registry's")
    tmp_model = folder / f".{MODEL_FILE}.{unique}.tmp"
    tmp_model.write_bytes(model_text)
    name = f"model-{sha}.lgb"
    meta = {
        "name": model.name,
        "version": model.version,
        "file": name,
        "sha256": sha,
        "registry_sha256": sha,
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
    """The last good model from disk, after checking that its SHA-256 is the registry's hash of it (the
    ``hybridops.model_sha256`` tag of its version, recorded in its file name and in ``model.json``).

    Raises:
        HybridopsError: no cache; TamperedModelError: the file differs from the registry's hash.
    """
    folder = cache_dir(settings)
    try:
        meta = json.loads((folder / META_FILE).read_text())
        registry_sha = str(meta["registry_sha256"])
        name = str(meta["file"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HybridopsError(f"no usable model cache in {folder} ({exc})") from exc
    if name != f"model-{registry_sha}.lgb":
        raise TamperedModelError(
            f"{folder / META_FILE} names {name!r}, not the file of the registry's hash {registry_sha[:12]}…; "
            "not serving it"
        )
    path = folder / name
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise HybridopsError(f"no usable model cache in {folder} ({exc})") from exc
    actual = hashlib.sha256(text).hexdigest()
    if actual != registry_sha:
        raise TamperedModelError(
            f"{path} has sha256 {actual[:12]}…, the registry's hash of version {meta.get('version')} is "
            f"{registry_sha[:12]}…; not serving it"
        )
    booster = lgb.Booster(model_str=text.decode())
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
        self._cache_error: str | None = None  # why the disk cache could not serve at start
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: tuple[tuple[str, str | None], MlflowClient] | None = None
        self._install_lock = threading.Lock()

    # --- loading ----------------------------------------------------------------------------------
    def _install(self, model: ServedModel, only_over_cache: bool = False) -> None:
        # The fast predictor calls LightGBM's C API: it must predict what Booster.predict does, or the
        # model is not served (SelfCheckError; see hybridops.serving.self_check).
        check_predictor(model.predictor, model.booster)
        with self._install_lock:
            current = self.current
            if only_over_cache and current is not None and current.source != "disk_cache":
                return  # a late start-up load: the poll installed a newer model meanwhile
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
            write_cache(self.settings, model, loaded.model_text)
        except OSError as exc:  # serving goes on; the next restart may lack a fallback
            log.warning("cannot write the model cache: %s", exc)
        return model

    def load_initial(self) -> None:
        """The registry's model, or after ``serving.registry_start_seconds`` without one the disk cache's.

        The registry is asked in a thread of its own: a hung registry (connections accepted, nothing
        answered) would otherwise hold the start for MLflow's HTTP timeouts and retries (minutes), during
        which the process answers nothing, not even ``/healthz``, and the kubelet restarts it in a loop.
        A load that finishes late still installs its model, unless the poll installed one meanwhile.
        """
        outcome: list[ServedModel | BaseException] = []
        decided = threading.Lock()  # the attempt's result and the start's timeout: whichever comes first

        def attempt() -> None:
            try:
                found: ServedModel | BaseException = self.load_from_registry()
            except BaseException as exc:  # registry unreachable, alias unset, tampered file...
                found = exc
            with decided:
                late = bool(outcome)
                if not late:
                    outcome.append(found)
            if late and isinstance(found, ServedModel):  # the start went on without it
                try:
                    self._install(found, only_over_cache=True)
                    self.last_error = None
                except Exception as exc:
                    log.warning("late registry load not installed: %s", exc)

        thread = threading.Thread(target=attempt, name="hybridops-model-start", daemon=True)
        thread.start()
        thread.join(self.settings.serving.registry_start_seconds)
        with decided:
            result = outcome[0] if outcome else None
            if result is None:
                outcome.append(TimeoutError("no answer"))
        if isinstance(result, ServedModel):
            try:
                self._install(result)
                return
            except Exception as exc:
                result = exc
        reason = (
            f"no answer within serving.registry_start_seconds={self.settings.serving.registry_start_seconds:g}"
            if result is None
            else str(result)
        )
        self.last_error = f"registry: {reason}"
        self.metrics.reloads.labels("registry", "failure").inc()
        log.warning(
            "cannot load %s from the registry (%s); trying the disk cache", model_ref(self.settings), reason
        )
        try:
            self._install(read_cache(self.settings, self.served))
        except Exception as exc:
            self._cache_error = str(exc)
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
            current = self.current
            same = current is not None and (name, version) == (current.name, current.version)
            if same and current is not None and current.registry_sha256 in (None, sha256):
                self.last_error = None
                return False
            self._install(self.load_from_registry())
            self.last_error = None  # cleared only once it holds: /readyz never reads a gap without reason
            return True
        except Exception as exc:  # keep serving the last good model
            # With no model loaded, why the disk cache could not serve stays part of the reason.
            cache = f"; disk cache: {self._cache_error}" if self.current is None and self._cache_error else ""
            self.last_error = f"registry: {exc}{cache}"
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
