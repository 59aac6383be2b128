"""Writers killed mid-write (SIGKILL) leave the old file intact, and the next write leaves nothing behind.

Each writer of a file the pipeline replaces (a Parquet partition of the warehouse or the feature tables, a
source file copied into the landing zone) runs in a child process that is SIGKILLed while its staged file
is being written. Then: the target still holds the previous version whole, the dead writer's staged file
is there (the crash was mid-write), and the next write of the same target removes it and lands the new
version. ``remove_stale_staged`` keeps the staged file of a writer that is still alive.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridops.files import remove_stale_staged, staged_path, write_atomically
from hybridops.ingest.landing import land_file, sha256_of
from hybridops.warehouse.db import write_parquet_partition

ATTEMPTS = 5

_PARQUET_CHILD = """
import sys
from pathlib import Path
import numpy as np, pandas as pd
from hybridops.warehouse.db import write_parquet_partition
n = int(sys.argv[2])
frame = pd.DataFrame({"a": np.arange(n), "b": np.random.default_rng(2).random(n), "s": np.arange(n).astype(str)})
write_parquet_partition(frame, Path(sys.argv[1]), "t", "2013-01")
"""

_LANDING_CHILD = """
import sys
from pathlib import Path
from hybridops.ingest.landing import land_file
land_file(Path(sys.argv[1]), "flights", Path(sys.argv[2]))
"""


def _kill_when_staged(args: list[str], folder_glob: tuple[Path, str], timeout: float = 120) -> bool:
    """Run a child writer; SIGKILL it as soon as a staged file appears. True when it was killed mid-write."""
    folder, pattern = folder_glob
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", *args], env=env)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if any(folder.rglob(pattern)):
                child.send_signal(signal.SIGKILL)
                child.wait(30)
                return child.returncode == -signal.SIGKILL
            if child.poll() is not None:
                return False  # finished before we saw its staged file
            time.sleep(0.001)
        raise AssertionError("the child writer neither staged a file nor finished")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)


def test_parquet_partition_killed_mid_write(tmp_path: Path) -> None:
    old = pd.DataFrame({"a": [1, 2], "b": [0.5, 0.25], "s": ["1", "2"]})
    target = write_parquet_partition(old, tmp_path, "t", "2013-01")
    rows = 2_000_000
    for _ in range(ATTEMPTS):
        if _kill_when_staged(
            [_PARQUET_CHILD, str(tmp_path), str(rows)], (target.parent, ".data.parquet.*.tmp")
        ):
            break
        rows *= 2
        write_parquet_partition(old, tmp_path, "t", "2013-01")  # the child finished: back to the old one
    else:
        pytest.fail("never caught the writer mid-write")
    leftovers = list(target.parent.glob(".*.tmp"))
    assert leftovers, "the killed writer left no staged file: it was not killed mid-write"
    pd.testing.assert_frame_equal(pd.read_parquet(target), old)  # the old version, whole

    new = pd.DataFrame({"a": [3], "b": [0.125], "s": ["3"]})
    write_parquet_partition(new, tmp_path, "t", "2013-01")
    pd.testing.assert_frame_equal(pd.read_parquet(target), new)
    assert sorted(p.name for p in target.parent.iterdir()) == ["data.parquet"]


def test_landing_copy_killed_mid_write(tmp_path: Path) -> None:
    source = tmp_path / "source" / "flights.csv"
    source.parent.mkdir()
    landing = tmp_path / "landing"
    size = 64 << 20
    for _ in range(ATTEMPTS):
        source.write_bytes(np.random.default_rng(size).bytes(size))
        if _kill_when_staged([_LANDING_CHILD, str(source), str(landing)], (landing, ".flights.csv.*.tmp")):
            break
        size *= 2
    else:
        pytest.fail("never caught the copy mid-write")
    sha = sha256_of(source)
    folder = landing / "flights" / sha
    assert list(folder.glob(".*.tmp")), "the killed copy left no staged file"
    assert not (folder / "flights.csv").exists()  # nothing landed under the hash

    landed = land_file(source, "flights", landing)
    assert landed.sha256 == sha == sha256_of(landed.landed_path)
    assert sorted(p.name for p in folder.iterdir()) == ["flights.csv"]


def test_staged_files_of_live_writers_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "dagster.yaml"
    # A writer still at work (a live process of this host) keeps its staged file.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = target.with_name(f".{target.name}.{socket.gethostname()}.{sleeper.pid}-1.tmp")
        live.write_text("being written")
        # A dead writer of this host, and one of another host: recent (kept) and stale (removed).
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)  # fmt: skip
        gone = target.with_name(f".{target.name}.{socket.gethostname()}.{dead.stdout.strip()}-1.tmp")
        gone.write_text("partial")
        elsewhere = target.with_name(f".{target.name}.other-pod.12-1.tmp")
        elsewhere.write_text("partial")
        stale = target.with_name(f".{target.name}.other-pod.13-1.tmp")
        stale.write_text("partial")
        os.utime(stale, (time.time() - 7200, time.time() - 7200))

        write_atomically(target, "telemetry: {}\n")
        assert target.read_text() == "telemetry: {}\n"
        assert live.exists() and elsewhere.exists()
        assert not gone.exists() and not stale.exists()
        assert staged_path(target) not in target.parent.iterdir()
    finally:
        sleeper.kill()
        sleeper.wait(10)
    assert remove_stale_staged(target) == [live]


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "data.parquet"
    with pytest.raises(TypeError):
        write_atomically(target, 42)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
