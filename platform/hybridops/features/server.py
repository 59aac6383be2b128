"""``python -m hybridops.features.server``: Feast's feature server as ``feast serve`` runs it, except that with
``auth: {type: kubernetes}`` it authenticates callers with :class:`ReviewedTokenParser`.

Feast 0.67's own Kubernetes parser grants the roles of whichever ServiceAccount an unverified token names
(see :mod:`hybridops.features.kubernetes_auth`), and ``feast serve`` offers no way to choose another one:
``feast.feature_server.start_server`` builds its auth manager itself. So this module does what
``feast --feature-store-yaml F serve ...`` does (``feast/cli/cli.py``, ``feast/cli/serve.py``,
``feast.feature_server.start_server`` on Linux): the same options and defaults, the same logging set-up, the
metrics server when ``--metrics`` or the feature_store.yaml asks for it, Feast's security manager over the
registry's Permissions, and Feast's own gunicorn application (``FeastServeApplication``: uvicorn workers,
keep-alive, request limits, optional TLS, gunicorn's signal handling, the registry refreshed every
``--registry_ttl_sec``), through Feast's public names only. The one difference is the auth manager of
kubernetes mode: Feast's REST token extractor with the reviewed parser. ``no_auth`` and ``oidc`` get
Feast's own (``init_auth_manager``).

Not carried over: ``--type`` (Feast's server is HTTP only) and Feast's ``FEATURE_STORE_YAML_BASE64``
variable; the store is always the ``--feature-store-yaml`` file.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hybridops.errors import HybridopsError

if TYPE_CHECKING:
    from feast import FeatureStore

PROG = "python -m hybridops.features.server"


def _arguments() -> argparse.ArgumentParser:
    # `feast serve`'s options, its defaults, plus the three of the `feast` group that matter to a server.
    parser = argparse.ArgumentParser(
        prog=PROG, description="Feast's feature server (feast serve) with verified Kubernetes authentication."
    )
    parser.add_argument(
        "--feature-store-yaml",
        "-f",
        type=Path,
        help="the feature_store.yaml (default: feature_store.yaml in --chdir)",
    )
    parser.add_argument(
        "--chdir", "-c", type=Path, help="the feature repository folder (default: the current one)"
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error", "critical"],
        type=str.lower,
        help="level of Feast's loggers (feast's --log-level)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", "-p", type=int, default=6566)
    parser.add_argument("--no-access-log", action="store_true", help="disable the access log")
    parser.add_argument(
        "--workers", "-w", type=int, default=1, help="worker processes; -1: two per CPU core plus one"
    )
    parser.add_argument("--worker-connections", type=int, default=1000)
    parser.add_argument("--max-requests", type=int, default=1000)
    parser.add_argument("--max-requests-jitter", type=int, default=50)
    parser.add_argument("--keep-alive-timeout", type=int, default=30, help="seconds")
    parser.add_argument(
        "--registry_ttl_sec",
        "--registry-ttl-sec",
        "-r",
        dest="registry_ttl_sec",
        type=int,
        default=60,
        help="seconds between registry refreshes",
    )
    parser.add_argument("--key", "-k", dest="tls_key_path", default="", help="TLS private key (with --cert)")
    parser.add_argument("--cert", dest="tls_cert_path", default="", help="TLS certificate (with --key)")
    parser.add_argument(
        "--metrics", "-m", action="store_true", help="start Feast's metrics server (port 8000)"
    )
    return parser


def _configure_logging(level_name: str) -> None:
    """As the feast CLI leaves it: the root logger at INFO (feast/cli/serve.py, at import), every Feast
    logger that exists at the level asked for (feast/cli/cli.py)."""
    level = getattr(logging, level_name.upper())
    logging.basicConfig(level=logging.INFO)
    for name in list(logging.root.manager.loggerDict):
        if "feast" in name:
            logging.getLogger(name).setLevel(level)


def load_store(feature_store_yaml: Path | None, chdir: Path | None) -> FeatureStore:
    """The store of the feature_store.yaml, as ``feast -f`` loads it (a missing file is a one-line error)."""
    from feast import FeatureStore
    from feast.utils import get_default_yaml_file_path

    repo = (chdir or Path.cwd()).absolute()
    path = feature_store_yaml.absolute() if feature_store_yaml else get_default_yaml_file_path(repo)
    if not path.is_file():
        raise HybridopsError(f"{path}: no such feature_store.yaml; pass --feature-store-yaml with its path")
    try:
        store = FeatureStore(repo_path=str(repo), fs_yaml_file=path)
        # Feast reads these sections only when first used: a typo would surface as a traceback mid-start.
        for section in ("registry", "online_store", "offline_store", "auth_config"):
            getattr(store.config, section)
        return store
    except Exception as exc:  # Feast's config errors are long pydantic reports: one line, the file named
        message = " ".join(str(exc).split())[:500]
        raise HybridopsError(f"{path}: Feast cannot load it: {message}") from exc


def install_auth(store: FeatureStore) -> str:
    """Feast's security manager over the registry's Permissions and the auth manager for the store's auth
    type (``start_server``'s two calls), the reviewed parser in kubernetes mode. Returns the auth type."""
    from feast.permissions.auth.auth_manager import AuthManager, set_auth_manager
    from feast.permissions.server.rest_token_extractor import RestTokenExtractor
    from feast.permissions.server.utils import (
        AuthManagerType,
        ServerType,
        init_auth_manager,
        init_security_manager,
        str_to_auth_manager_type,
    )

    from hybridops.features.kubernetes_auth import ReviewedTokenParser

    auth_type = str_to_auth_manager_type(store.config.auth_config.type)
    init_security_manager(auth_type=auth_type, fs=store)
    if auth_type == AuthManagerType.KUBERNETES:
        parser = ReviewedTokenParser.in_cluster()
        set_auth_manager(AuthManager(token_parser=parser, token_extractor=RestTokenExtractor()))
        logging.getLogger(__name__).info(
            "Kubernetes auth: TokenReview-verified callers, roles from the RoleBindings of %s",
            parser.namespace,
        )
    else:
        init_auth_manager(
            server_type=ServerType.REST, auth_type=auth_type, auth_config=store.config.auth_config
        )
    return str(auth_type.value)


def serve(store: FeatureStore, args: argparse.Namespace) -> None:
    """``feast.feature_server.start_server`` (its gunicorn branch) with :func:`install_auth`."""
    if sys.platform == "win32":
        raise HybridopsError("the feature server runs under gunicorn: Linux or macOS only")
    from feast import metrics as feast_metrics
    from feast.feature_server import FeastServeApplication

    # Before anything starts: a kubernetes mode without the pod's ServiceAccount files stops here.
    install_auth(store)
    metrics_config = getattr(getattr(store.config, "feature_server", None), "metrics", None)
    metrics_active = bool(args.metrics or getattr(metrics_config, "enabled", False))
    if metrics_active:
        # Gunicorn forks the workers: each starts its own resource and freshness monitoring
        # (FeastServeApplication's post_worker_init), not this process.
        feast_metrics.start_metrics_server(
            store,
            metrics_config=feast_metrics.build_metrics_flags(metrics_config),
            start_resource_monitoring=False,
            start_freshness_monitoring=False,
        )
    options = {
        "bind": f"{args.host}:{args.port}",
        "accesslog": None if args.no_access_log else "-",
        "workers": args.workers,
        "worker_connections": args.worker_connections,
        "max_requests": args.max_requests,
        "max_requests_jitter": args.max_requests_jitter,
        "keepalive": args.keep_alive_timeout,
        "registry_ttl_sec": args.registry_ttl_sec,
    }
    if args.tls_key_path and args.tls_cert_path:
        options["keyfile"] = args.tls_key_path
        options["certfile"] = args.tls_cert_path
    FeastServeApplication(store=store, metrics_enabled=metrics_active, **options).run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _arguments()
    args = parser.parse_args(argv)
    if bool(args.tls_key_path) != bool(args.tls_cert_path):
        parser.error("pass both --key and --cert to serve over TLS, or neither")
    if args.workers == -1:
        args.workers = max(1, multiprocessing.cpu_count() * 2 + 1)
    # Feast's modules first, so that their loggers exist when their level is set (as in the feast CLI).
    import feast.feature_server  # noqa: F401

    _configure_logging(args.log_level)
    try:
        serve(load_store(args.feature_store_yaml, args.chdir), args)
    except HybridopsError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
