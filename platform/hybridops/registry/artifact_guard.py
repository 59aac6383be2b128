"""Where a registered model's files may be read from: the artifact root of the configured MLflow store.

A model version's download location comes from the registry, i.e. from whoever could write to it: a run
in an experiment created with ``artifact_location=file:///etc`` (the MLflow server accepts absolute
paths: "an artifact root on a shared filesystem") or a source with ``..`` segments would make the loader
read files of the *client's* machine, and a ``mlflow-artifacts://<host>/`` or ``s3://`` location would make
it connect to a host the registry names (169.254.169.254, the cloud metadata service). So before anything
is downloaded the location must be one of:

* ``mlflow-artifacts:/<path>`` (no host) when the tracking URI is an MLflow server: the server's own
  artifact proxy, which refuses traversal itself;
* a local path inside ``settings.mlflow_artifacts_dir`` when the store is local (a SQLite or database URI);
* inside one of ``mlflow.allowed_artifact_roots`` (e.g. ``s3://bucket/models/`` when clients read the
  bucket directly).

And never with a ``..`` segment, percent-encoded or not, or a query or fragment.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from urllib.parse import unquote, urlsplit

from hybridops.errors import HybridopsError
from hybridops.settings import Settings


class UnsafeArtifactLocation(HybridopsError):
    """A model's artifact location lies outside the configured artifact root; nothing was read."""


def tracking_server(settings: Settings) -> bool:
    """Whether MLflow is reached through a tracking server (its files then live in the server's store)."""
    return urlsplit(settings.mlflow_tracking_uri).scheme in ("http", "https")


def _has_dot_segments(path: str) -> bool:
    decoded = path
    for _ in range(3):  # %252e%252e: decode until it stops changing
        decoded, previous = unquote(decoded), decoded
        if decoded == previous:
            break
    return any(part in ("..", ".") for part in decoded.replace("\\", "/").split("/"))


def _within(uri: str, root: str) -> bool:
    root = root.rstrip("/") + "/"
    return (uri.rstrip("/") + "/").startswith(root)


def check_artifact_location(settings: Settings, uri: str, what: str) -> None:
    """Raise :class:`UnsafeArtifactLocation` unless ``uri`` lies in the store's artifact root.

    ``what`` names the model in the message (``models:/flight_delay/3``).
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    problem = None
    if "\x00" in uri or any(ord(c) < 0x20 for c in uri):
        problem = "it contains control characters"
    elif parts.query or parts.fragment:
        problem = "it has a query or fragment"
    elif _has_dot_segments(parts.path) or _has_dot_segments(parts.netloc):
        problem = "it has '.' or '..' segments"
    elif any(_within(uri, root) for root in settings.mlflow.allowed_artifact_roots):
        return
    elif scheme == "mlflow-artifacts":
        if parts.netloc:
            problem = f"it names the host {parts.netloc!r} instead of the tracking server's artifact proxy"
        elif not tracking_server(settings):
            problem = "mlflow-artifacts:/ locations need an MLflow server as tracking URI"
        else:
            return
    elif scheme in ("", "file") and not parts.netloc:
        root = settings.mlflow_artifacts_dir.resolve()
        path = Path(posixpath.normpath(unquote(parts.path)))
        if tracking_server(settings):
            problem = "a local path, while the models are served by the tracking server's artifact proxy"
        elif not path.is_absolute() or not path.resolve().is_relative_to(root):
            problem = f"it lies outside the artifact root {root}"
        else:
            return
    else:
        problem = (
            f"its scheme {scheme or 'none'!r} addresses storage outside the store's artifact root "
            "(list it in mlflow.allowed_artifact_roots if clients must read it)"
        )
    raise UnsafeArtifactLocation(
        f"{what}: refusing to read the model files at {uri!r}: {problem}. Nothing was downloaded; "
        "register models with hybridops (training) so their files live in the configured artifact store."
    )
