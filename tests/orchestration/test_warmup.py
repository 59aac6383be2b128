"""The ML libraries load on a second thread: the code location does not import them, the warm-up does."""

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


def test_warmup_imports_what_the_ml_steps_need() -> None:
    loaded = _run(
        "import sys\n"
        "from hybridops.orchestration.warmup import ML_MODULES, start_warmup\n"
        "start_warmup().join()\n"
        f"print(','.join(m for m in (*ML_MODULES, *{ML_LIBRARIES!r}) if m in sys.modules))"
    )
    from hybridops.orchestration.warmup import ML_MODULES

    assert loaded.split(",") == [*ML_MODULES, *ML_LIBRARIES]


def test_warmup_stops_quietly_on_a_broken_module() -> None:
    # The step that needs the module imports it again and reports the error there.
    out = _run(
        "from hybridops.orchestration.warmup import start_warmup\n"
        "thread = start_warmup(['hybridops.no_such_module', 'hybridops.monitoring.drift'])\n"
        "thread.join()\n"
        "import sys; print('hybridops.monitoring.drift' in sys.modules, thread.is_alive())"
    )
    # No exception escapes the thread (no traceback on stderr), and it stops at the first failure.
    assert out == "False False"
