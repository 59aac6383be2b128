"""The warehouse interface on both backends, chosen through the environment as in a deployment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
from pydantic import ValidationError

from hybridops.settings import DuckDBWarehouse, LakehouseWarehouse, Settings
from hybridops.warehouse.conform import FCT_FLIGHTS_SCHEMA, build_fct_flights_months
from hybridops.warehouse.db import append_rows, connect, exists, read_frame, replace_rows, table_exists


@pytest.fixture(params=["duckdb", "lakehouse"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("HYBRIDOPS_WAREHOUSE__BACKEND", request.param)
    return Settings(home=tmp_path / "home")


def test_the_environment_selects_the_backend_and_the_settings_derive_its_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(Settings(home=tmp_path).warehouse, DuckDBWarehouse)  # the laptop default
    monkeypatch.setenv("HYBRIDOPS_WAREHOUSE__BACKEND", "lakehouse")
    settings = Settings(home=tmp_path)
    assert isinstance(settings.warehouse, LakehouseWarehouse)
    assert settings.warehouse.namespace == "hybridops"
    assert settings.warehouse_catalog_url == f"sqlite:///{tmp_path.resolve()}/warehouse/catalog.db"
    assert settings.warehouse_location == f"{tmp_path.resolve()}/warehouse/iceberg"
    monkeypatch.setenv("HYBRIDOPS_WAREHOUSE__CATALOG_URL", "postgresql+psycopg2://u:p@db/lake")
    monkeypatch.setenv("HYBRIDOPS_WAREHOUSE__LOCATION", "s3://bucket/lake")
    monkeypatch.setenv("HYBRIDOPS_WAREHOUSE__COMMIT_ATTEMPTS", "3")
    settings = Settings(home=tmp_path)
    assert settings.warehouse_catalog_url == "postgresql+psycopg2://u:p@db/lake"
    assert settings.warehouse_location == "s3://bucket/lake"
    assert isinstance(settings.warehouse, LakehouseWarehouse) and settings.warehouse.commit_attempts == 3
    monkeypatch.setenv("HYBRIDOPS_WAREHOUSE__BACKEND", "duckdb")
    with pytest.raises(ValidationError, match="catalog_url"):  # a lakehouse field on duckdb is a mistake
        Settings(home=tmp_path)
    monkeypatch.delenv("HYBRIDOPS_WAREHOUSE__CATALOG_URL")
    monkeypatch.delenv("HYBRIDOPS_WAREHOUSE__LOCATION")
    monkeypatch.delenv("HYBRIDOPS_WAREHOUSE__COMMIT_ATTEMPTS")
    monkeypatch.setenv("HYBRIDOPS_WAREHOUSE__BACKEND", "iceberg")
    with pytest.raises(ValidationError, match="duckdb"):
        Settings(home=tmp_path)


def test_pyiceberg_is_imported_only_for_the_lakehouse(tmp_path: Path) -> None:
    probe = (
        "import sys, pandas as pd\n"
        "from hybridops.settings import Settings\n"
        "from hybridops.warehouse.db import connect, replace_rows\n"
        f"with connect(Settings(home={str(tmp_path)!r})) as con:\n"
        "    replace_rows(con, 't', pd.DataFrame({'a': [1]}))\n"
        "print(any(name.startswith('pyiceberg') for name in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_replace_rows_replaces_partitions_and_tables_are_visible(settings: Settings) -> None:
    assert not exists(settings)
    with connect(settings) as con:
        assert not table_exists(con, "m")
        months = pd.DataFrame({"month_key": ["2013-01", "2013-02", "2013-03"], "n": [1, 2, 3]})
        assert replace_rows(con, "m", months) == 3
        assert table_exists(con, "m")
        replace_rows(
            con,
            "m",
            pd.DataFrame({"month_key": ["2013-01"], "n": [10]}),
            {"month_key": ["2013-01", "2013-02"]},
        )
        assert con.execute("select month_key, n from m order by 1").fetchall() == [
            ("2013-01", 10),
            ("2013-03", 3),
        ]
        # A where on a column that is not the partition: only the matching rows of the month go.
        replace_rows(
            con, "q", pd.DataFrame({"month_key": ["2013-01"] * 2, "table_name": ["a", "b"], "n": [1, 2]})
        )
        replace_rows(
            con,
            "q",
            pd.DataFrame({"month_key": ["2013-01"], "table_name": ["a"], "n": [5]}),
            {"table_name": "a", "month_key": "2013-01"},
        )
        assert con.execute("select table_name, n from q order by 1").fetchall() == [("a", 5), ("b", 2)]
    assert exists(settings)
    with connect(settings, read_only=True) as con:  # a new session sees what the last one wrote
        assert read_frame(con, "select sum(n) as s from m")["s"][0] == 13
        assert table_exists(con, "q") and not table_exists(con, "nope")


def test_append_rows_and_a_new_column_evolves_the_table(settings: Settings) -> None:
    schema = pa.schema([("at", pa.timestamp("us")), ("alias", pa.string()), ("from_version", pa.string())])
    first = pa.Table.from_pylist(
        [{"at": pd.Timestamp("2013-01-01"), "alias": "c", "from_version": None}], schema
    )
    with connect(settings) as con:
        append_rows(con, "events", first)
        append_rows(con, "events", first)
        assert con.execute("select count(*), count(from_version) from events").fetchall() == [(2, 0)]
        wider = pd.DataFrame({"month_key": ["2013-02"], "n": [2], "note": ["new column"]})
        replace_rows(con, "m", pd.DataFrame({"month_key": ["2013-01"], "n": [1]}), {"month_key": "2013-01"})
        replace_rows(con, "m", wider, {"month_key": "2013-02"})
        rows = con.execute("select month_key, n, note from m order by 1").fetchall()
    assert rows == [("2013-01", 1, None), ("2013-02", 2, "new column")]


def test_fct_flights_is_built_through_the_backend(
    settings: Settings, mini_con: duckdb.DuckDBPyConnection
) -> None:
    with connect(settings) as con:
        for table in ("flights", "weather", "planes", "airlines"):  # the inputs, stored by the backend
            replace_rows(con, table, mini_con.sql(f"select * from {table}").to_arrow_table())
        counts = build_fct_flights_months(con, settings.parquet_dir, ["2013-03", "2013-11"])
        again = build_fct_flights_months(con, settings.parquet_dir, ["2013-03"])  # idempotent
    assert counts == {"2013-03": 5, "2013-11": 2} and again == {"2013-03": 5}
    with connect(settings, read_only=True) as con:
        types = dict(con.execute("select column_name, column_type from (describe fct_flights)").fetchall())
        assert con.execute("select count(*) from fct_flights").fetchall() == [(7,)]
    assert types == FCT_FLIGHTS_SCHEMA
    assert len(pd.read_parquet(settings.parquet_dir / "fct_flights" / "month_key=2013-03")) == 5


def test_a_failed_write_leaves_the_previous_partition(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connect(settings) as con:
        replace_rows(con, "m", pd.DataFrame({"month_key": ["2013-01", "2013-02"], "n": [1, 2]}))
    if isinstance(settings.warehouse, LakehouseWarehouse):
        from pyiceberg.catalog.sql import SqlCatalog

        def crash(*args: object, **kwargs: object) -> None:  # after the data files are written
            raise RuntimeError("the process died before its commit")

        monkeypatch.setattr(SqlCatalog, "commit_table", crash)
        error: type[Exception] = RuntimeError
        bad = pd.DataFrame({"month_key": ["2013-01"] * 3, "n": [7, 8, 9]})
    else:
        error = duckdb.ConversionException
        bad = pd.DataFrame({"month_key": ["2013-01"], "n": ["not a number"]})
    with connect(settings) as con, pytest.raises(error):
        replace_rows(con, "m", bad, {"month_key": "2013-01"})
    monkeypatch.undo()
    monkeypatch.setenv("HYBRIDOPS_WAREHOUSE__BACKEND", settings.warehouse.backend)
    with connect(settings) as con:
        assert con.execute("select month_key, n from m order by 1").fetchall() == [
            ("2013-01", 1),
            ("2013-02", 2),
        ]
