from pathlib import Path

import pandas as pd

from hybridops.quality.quarantine import QUARANTINE_COLUMNS, empty_quarantine, write_quarantine
from hybridops.warehouse.db import connect, read_frame


def rows(month: str, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "table_name": ["weather"] * n,
            "month_key": [month] * n,
            "source_file": ["weather.csv"] * n,
            "source_line": list(range(2, n + 2)),
            "check_name": ["range"] * n,
            "reason": ["range: bad"] * n,
            "record_json": ["{}"] * n,
            "run_id": ["r1"] * n,
            "quarantined_at": [pd.Timestamp("2024-01-01")] * n,
        }
    )


def test_write_quarantine_replaces_one_partition(tmp_path: Path) -> None:
    with connect(tmp_path / "wh.duckdb") as con:
        assert write_quarantine(con, "weather", "static", empty_quarantine()) == 0
        write_quarantine(con, "weather", "2013-01", rows("2013-01", 3))
        write_quarantine(con, "weather", "2013-02", rows("2013-02", 2))
        write_quarantine(con, "weather", "2013-01", rows("2013-01", 1))
        counts = read_frame(con, "select month_key, count(*) n from quarantine group by 1 order by 1")
        assert counts.to_dict("list") == {"month_key": ["2013-01", "2013-02"], "n": [1, 2]}
        assert list(read_frame(con, "select * from quarantine").columns) == list(QUARANTINE_COLUMNS)
        write_quarantine(con, "weather", "2013-02", empty_quarantine())
        assert read_frame(con, "select count(*) n from quarantine")["n"][0] == 1
