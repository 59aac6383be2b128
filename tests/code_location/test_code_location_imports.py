"""The code location loads without the ML libraries: the steps that use them import them."""

from __future__ import annotations

import subprocess
import sys

ML_LIBRARIES = ("lightgbm", "sklearn", "scipy", "mlflow")


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout.strip()


def test_the_code_location_loads_without_the_ml_libraries() -> None:
    # The data half of a run, the webserver and the daemon never wait for them.
    loaded = _run(
        "import sys, dagster_project.definitions\n"
        f"print(','.join(m for m in {ML_LIBRARIES!r} if m in sys.modules))"
    )
    assert loaded == ""
