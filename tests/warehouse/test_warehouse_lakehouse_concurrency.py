"""Many processes writing one lakehouse table at once, on a SQLite catalog and on a real PostgreSQL one.

Four writer processes each replace their own month three times, all released at the same instant; a
reader process opens sessions throughout and fails if it ever sees a month that is not one whole write.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lakehouse_support import BASE_ROWS, TABLE, deploy_postgres

from hybridops.settings import Settings
from hybridops.warehouse.db import connect

SCRIPT = Path(__file__).with_name("lakehouse_support.py")
MONTHS = ["2013-01", "2013-02", "2013-03", "2013-04"]
ROUNDS = 3


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    env = {"HYBRIDOPS_WAREHOUSE__BACKEND": "lakehouse"}
    if request.param == "sqlite":
        yield env  # the default catalog: <home>/warehouse/catalog.db
        return
    with deploy_postgres().throwaway_postgres() as url:
        yield {
            **env,
            "HYBRIDOPS_WAREHOUSE__CATALOG_URL": url.replace("postgresql://", "postgresql+psycopg2://"),
        }


def test_four_writers_of_different_months_and_a_reader_at_once(
    tmp_path: Path, catalog_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, go, stop = tmp_path / "home", tmp_path / "go", tmp_path / "stop"
    env = {**os.environ, **catalog_env, "PYTHONPATH": os.pathsep.join(sys.path)}
    reader = subprocess.Popen(
        [sys.executable, str(SCRIPT), "reader", str(home), str(stop)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    writers = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), "writer", str(home), month, str(BASE_ROWS), str(ROUNDS), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for month in MONTHS
    ]
    go.touch()
    results = [writer.communicate(timeout=300) for writer in writers]
    stop.touch()
    checks, _ = reader.communicate(timeout=120)
    for writer, (out, err) in zip(writers, results, strict=True):
        assert writer.returncode == 0 and out.strip() == "ok", err[-3000:]
    assert reader.returncode == 0, checks
    assert int(checks) > 0  # the reader did look at the table while it was written

    for key, value in catalog_env.items():
        monkeypatch.setenv(key, value)
    with connect(Settings(home=home), read_only=True) as con:
        rows = con.execute(
            f"select month_key, count(*), min(round), max(round), count(distinct i) from {TABLE} group by 1 order by 1"
        ).fetchall()
    expected_rows = BASE_ROWS + ROUNDS
    assert rows == [(month, expected_rows, ROUNDS, ROUNDS, expected_rows) for month in MONTHS]
