"""Processes that write and read one lakehouse table at once, for the concurrency tests.

Run as a script: ``writer HOME MONTH ROWS ROUNDS GO_FILE`` replaces its month ``ROUNDS`` times (round r
writes ``ROWS + r`` rows tagged ``round = r``); ``reader HOME STOP_FILE`` opens sessions until the stop file
appears and checks that every month it sees is one whole write (one round, that round's row count).
The catalog comes from the environment (``HYBRIDOPS_WAREHOUSE__*``), as in a run pod.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import pandas as pd

TABLE = "concurrent_facts"


def deploy_postgres() -> ModuleType:
    """tests/deploy/deploy_postgres.py (the throwaway PostgreSQL server), imported by path."""
    path = Path(__file__).parents[1] / "deploy" / "deploy_postgres.py"
    spec = importlib.util.spec_from_file_location("deploy_postgres", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def month_frame(month: str, rows: int, round_: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "month_key": [month] * rows,
            "round": [round_] * rows,
            "i": range(rows),
            "payload": [f"{month}-{round_}-{i}" for i in range(rows)],
        }
    )


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} never appeared")
        time.sleep(0.01)


def writer(home: str, month: str, rows: int, rounds: int, go: str) -> None:
    from hybridops.settings import Settings
    from hybridops.warehouse.db import connect, replace_rows

    settings = Settings(home=Path(home))
    _wait_for(Path(go))
    for round_ in range(1, rounds + 1):
        with connect(settings) as con:
            replace_rows(con, TABLE, month_frame(month, rows + round_, round_), {"month_key": month})
    print("ok", flush=True)


def reader(home: str, stop: str) -> None:
    from hybridops.settings import Settings
    from hybridops.warehouse.db import connect, table_exists

    settings = Settings(home=Path(home))
    checks = 0
    while not Path(stop).exists():
        with connect(settings, read_only=True) as con:
            if table_exists(con, TABLE):
                for month, n, rounds, round_, distinct in con.execute(
                    f"select month_key, count(*), count(distinct round), min(round), count(distinct i) "
                    f"from {TABLE} group by 1"
                ).fetchall():
                    if rounds != 1 or distinct != n or n != BASE_ROWS + round_:
                        raise SystemExit(f"half a partition: {month} has {n} rows of {rounds} rounds")
                    checks += 1
    print(checks, flush=True)


BASE_ROWS = 20_000

if __name__ == "__main__":
    role, *args = sys.argv[1:]
    if role == "writer":
        writer(args[0], args[1], int(args[2]), int(args[3]), args[4])
    else:
        reader(args[0], args[1])
