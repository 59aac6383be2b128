"""``python -m hybridops.features.server`` as a command: what it refuses to start with, in one line each.

The server itself (Feast's app under gunicorn, metrics, each auth mode) runs in the deploy tests:
test_deploy_feast_k8s_auth (kubernetes), test_deploy_feast_auth (oidc), test_deploy_runtime (no_auth, the
rehearsal's mode, with the metrics listener)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}  # not in a pod
    env["PYTHONPATH"] = f"{REPO / 'platform'}:{REPO}"
    return subprocess.run(
        [sys.executable, "-m", "hybridops.features.server", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _store_yaml(folder: Path, auth: str) -> Path:
    path = folder / "feature_store.yaml"
    path.write_text(
        "project: hybridops\n"
        f"registry: {folder / 'registry.db'}\n"
        "provider: local\n"
        f"online_store: {{type: sqlite, path: {folder / 'online.db'}}}\n"
        "entity_key_serialization_version: 3\n"
        f"auth: {{type: {auth}}}\n"
    )
    return path


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    (line,) = [line for line in done.stderr.splitlines() if "error:" in line]
    return line


def test_the_help_lists_the_options_the_chart_passes(tmp_path: Path) -> None:
    done = _run("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for option in ("--feature-store-yaml", "--host", "--port", "--metrics", "--no-access-log", "--workers"):
        assert option in done.stdout


def test_a_missing_feature_store_yaml_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "etc" / "feature_store.yaml"
    line = _one_line_error(_run("--feature-store-yaml", str(missing), cwd=tmp_path))
    assert str(missing) in line and "--feature-store-yaml" in line


def test_a_feature_store_yaml_feast_cannot_load_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "feature_store.yaml"
    broken.write_text("project: hybridops\nregistry: {registry_type: nonsense}\nprovider: local\n")
    line = _one_line_error(_run("-f", str(broken), cwd=tmp_path))
    assert str(broken) in line and "Feast cannot load it" in line


def test_kubernetes_auth_outside_a_pod_says_what_is_missing(tmp_path: Path) -> None:
    """No in-cluster configuration: the server stops before it listens, rather than serving unauthenticated
    or crashing on the first request."""
    line = _one_line_error(_run("-f", str(_store_yaml(tmp_path, "kubernetes")), "--port", "0", cwd=tmp_path))
    assert "no in-cluster Kubernetes configuration" in line and "ServiceAccount token" in line


@pytest.mark.parametrize("given", [["--key", "server.key"], ["--cert", "server.crt"]])
def test_tls_needs_both_the_key_and_the_certificate(tmp_path: Path, given: list[str]) -> None:
    done = _run(*given, cwd=tmp_path)
    assert done.returncode == 2 and "pass both --key and --cert" in done.stderr, done.stderr


def test_the_options_and_defaults_are_feast_serves() -> None:
    """The entry point stands in for `feast serve`: every option of Feast's serve command (but --type: its
    server is HTTP only) exists here with Feast's default, so a Feast upgrade that adds or changes one fails
    here rather than in a pod."""
    from feast.cli.serve import serve_command

    from hybridops.features.server import _arguments

    ours = {flag: action.dest for action in _arguments()._actions for flag in action.option_strings}
    defaults = vars(_arguments().parse_args([]))
    context = serve_command.context_class(serve_command)  # Feast's click, without importing it here
    compared = []
    for param in serve_command.params:
        if param.name == "type_":
            continue
        long_flag = next(flag for flag in param.opts if flag.startswith("--"))
        assert long_flag in ours, f"feast serve has {long_flag}; python -m hybridops.features.server does not"
        feast_default = param.get_default(context)
        assert defaults[ours[long_flag]] == feast_default, (
            long_flag,
            defaults[ours[long_flag]],
            feast_default,
        )
        compared.append(long_flag)
    assert {"--host", "--port", "--metrics", "--no-access-log", "--registry_ttl_sec"} <= set(compared)
