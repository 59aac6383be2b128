"""The MLflow client of the model registry and the model reference syntax.

A model reference names a registered model and, optionally, one alias or one version:

* ``flight_delay@champion``: the version the alias points at;
* ``flight_delay/3``: version 3;
* ``flight_delay``: the ``champion`` alias (what serving means by "the model").

A ``models:/`` prefix is accepted and ignored, so MLflow model URIs of those forms work too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlflow import MlflowClient

from hybridops.errors import HybridopsError
from hybridops.settings import Settings

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"
_ALIAS = r"[A-Za-z_][A-Za-z0-9_\-]*"
_REF = re.compile(rf"^(?P<name>{_NAME})(?:@(?P<alias>{_ALIAS})|/(?P<version>[1-9][0-9]*))?$")

REF_FORMS = "'<name>@<alias>' (flight_delay@champion), '<name>/<version>' (flight_delay/3) or '<name>'"


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference: at most one of ``alias`` and ``version`` is set."""

    name: str
    alias: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        if self.version is not None:
            return f"{self.name}/{self.version}"
        return self.name


def parse_model_ref(ref: str) -> ModelRef:
    """Parse ``name@alias``, ``name/version`` or ``name`` (optionally prefixed with ``models:/``).

    Raises:
        HybridopsError: ``ref`` has none of those forms.
    """
    text = ref.strip() if isinstance(ref, str) else ""
    if text.startswith("models:/"):
        text = text[len("models:/") :]
    match = _REF.match(text)
    if not match:
        raise HybridopsError(f"Bad model reference {ref!r}: expected {REF_FORMS}.")
    return ModelRef(name=match["name"], alias=match["alias"], version=match["version"])


def registry_client(settings: Settings) -> MlflowClient:
    """An MLflow client on the settings' tracking store and model registry (no global MLflow state).

    A fresh home's default SQLite store starts as a copy of the migrated template (``store_template``).
    """
    # Imported here, not with the package: `python -m hybridops.registry.store_template` (make setup) must
    # find that module not yet imported, or runpy warns that it runs it a second time.
    from hybridops.registry.store_template import ensure_local_store

    tracking_uri = settings.mlflow_tracking_uri
    ensure_local_store(settings)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=settings.mlflow.registry_uri or tracking_uri)
