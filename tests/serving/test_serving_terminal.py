"""What a person running ``hybridops serve`` in a terminal sees: the service's own lines, and Ctrl-C as the
ordinary way to stop it.

Before, the terminal showed SQLAlchemy's deprecation warning from MLflow's store (Feast turns deprecation
warnings back on when it is imported), a progress bar per model file downloaded, and on Ctrl-C "interrupted;
a step cut short is not recorded as done: run the command again" with exit 130.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

from serving_support import World, start_service_process

OWN_LINES = [
    re.compile(
        r"inference service on http://127\.0\.0\.1:\d+ \(POST /predict, /healthz, /readyz, /metrics, /docs\)"
    ),
    re.compile(r"serving flight_delay version \d+ \(from registry\)"),
    re.compile(r"inference service stopped"),
]


def test_the_terminal_shows_the_services_own_lines_and_ctrl_c_stops_it(world: World, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"  # stdout and stderr together, as a terminal shows them
    running = start_service_process(world.settings, log)
    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(timeout=30) == 0, log.read_text()
    lines = log.read_text().splitlines()
    assert len(lines) == len(OWN_LINES), lines
    for line, pattern in zip(lines, OWN_LINES, strict=True):
        assert pattern.fullmatch(line), (line, lines)
