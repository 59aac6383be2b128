"""on_time_table / build_report on the mini warehouse, with numbers computed by hand."""

from __future__ import annotations

import base64
import csv
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from hybridops.warehouse.conform import build_fct_flights
from hybridops.warehouse.report import ON_TIME_COLUMNS, build_report, on_time_table

GENERATED_AT = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

# month_key, carrier, origin: flights, cancelled, cancellation_rate, on_time_rate, mean dep, mean arr, p90 dep
EXPECTED = {
    # dep delays 10, 20 (arr 5, 25): p90 = 10 + 0.9 * (20 - 10)
    ("2013-03", "AA", "JFK"): (2, 0, 0.0, 0.5, 15.0, 15.0, 19.0),
    # one cancelled flight: no departed flight, so no rate or delays
    ("2013-03", "AA", "LGA"): (1, 1, 1.0, None, None, None, None),
    # dep delays -3, 15 (15 is not on time); arr -10 and NULL: p90 = -3 + 0.9 * 18
    ("2013-03", "UA", "EWR"): (2, 0, 0.0, 0.5, 6.0, -10.0, 13.2),
    # dep delays 0, 30 (arr 5, 40): p90 = 0 + 0.9 * 30
    ("2013-11", "B6", "JFK"): (2, 0, 0.0, 0.5, 15.0, 22.5, 27.0),
}


@pytest.fixture
def fct_con(mini_con: duckdb.DuckDBPyConnection, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    for month_key in ("2013-03", "2013-11"):
        build_fct_flights(mini_con, tmp_path / "parquet", month_key)
    return mini_con


def _close(actual: object, expected: float | None) -> bool:
    if expected is None:
        return actual is None or (isinstance(actual, float) and math.isnan(actual))
    return isinstance(actual, int | float) and math.isclose(float(actual), expected, abs_tol=1e-9)


def test_on_time_table_by_hand(fct_con: duckdb.DuckDBPyConnection) -> None:
    table = on_time_table(fct_con)
    assert tuple(table.columns) == ON_TIME_COLUMNS
    keys = list(zip(table["month_key"], table["carrier"], table["origin"], strict=True))
    assert keys == list(EXPECTED)  # sorted by month, carrier, origin
    measures = ON_TIME_COLUMNS[4:]
    for record in table.to_dict("records"):
        expected = EXPECTED[(record["month_key"], record["carrier"], record["origin"])]
        for column, value in zip(measures, expected, strict=True):
            assert _close(record[column], value), (record["carrier"], record["origin"], column)
    names = dict(zip(table["carrier"], table["carrier_name"], strict=False))
    assert names == {"AA": "American Airlines Inc.", "UA": "United Air Lines Inc.", "B6": "JetBlue Airways"}


def test_on_time_table_without_fct_flights_says_so(mini_con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError, match="fct_flights"):
        on_time_table(mini_con)


def test_build_report_outputs(fct_con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    result = build_report(fct_con, out, generated_at=GENERATED_AT)

    assert result.rows == 4
    assert result.html_path == out / "on_time_report.html"
    assert result.csv_path == out / "on_time_by_carrier.csv"
    stored = fct_con.execute("select count(*), sum(flights) from rpt_on_time").fetchall()
    assert stored == [(4, 7)]

    headline = result.headline
    assert headline["flights"] == 7
    assert headline["cancelled"] == 1
    assert math.isclose(headline["cancellation_rate"], 1 / 7)
    assert math.isclose(headline["on_time_rate"], 3 / 6)  # 10, -3, 0 of 10, 20, -3, 15, 0, 30
    assert math.isclose(headline["mean_dep_delay"], 72 / 6)
    assert math.isclose(headline["mean_arr_delay"], 65 / 5)
    assert math.isclose(headline["p90_dep_delay"], 25.0)  # 20 + 0.5 * (30 - 20)
    assert (headline["first_month"], headline["last_month"], headline["months"]) == ("2013-03", "2013-11", 2)
    assert (headline["carriers"], headline["origins"]) == (3, 3)

    with result.csv_path.open(newline="") as handle:
        carriers = {row["carrier"]: row for row in csv.DictReader(handle)}
    assert list(carriers) == ["AA", "B6", "UA"]
    assert (carriers["AA"]["flights"], carriers["AA"]["cancelled"]) == ("3", "1")
    assert math.isclose(float(carriers["AA"]["cancellation_rate"]), 1 / 3)
    assert math.isclose(float(carriers["AA"]["on_time_rate"]), 0.5)
    assert math.isclose(float(carriers["UA"]["p90_dep_delay"]), 13.2)
    assert math.isclose(float(carriers["B6"]["mean_arr_delay"]), 22.5)


def test_html_is_self_contained_with_embedded_pngs(
    fct_con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    result = build_report(fct_con, tmp_path / "reports", generated_at=GENERATED_AT)
    text = result.html_path.read_text(encoding="utf-8")
    # base64 payloads may spell anything; check the markup around them
    markup = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:", text)

    assert "http" not in markup
    assert 'src="/' not in markup and "src='/" not in markup
    assert "<script" not in markup and "<link" not in markup and "url(" not in markup
    sources = re.findall(r'src="([^"]*)"', text)
    assert len(sources) >= 3
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    for needle in ("AA", "UA", "B6", "American Airlines Inc.", "JetBlue Airways", "LGA", "2013-11"):
        assert needle in text
    assert '<div class="value">14.3%</div>' in text  # cancellation rate 1/7
    assert '<div class="value">50.0%</div>' in text  # on-time rate 3/6
    assert "Generated at 2024-01-02 03:04:05 UTC" in text


def test_html_escapes_table_text(mini_con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    mini_con.execute("update airlines set name = 'United <b>Air</b> & Lines' where carrier = 'UA'")
    build_fct_flights(mini_con, tmp_path / "parquet", "2013-03")
    text = build_report(mini_con, tmp_path / "reports", generated_at=GENERATED_AT).html_path.read_text()
    assert "United &lt;b&gt;Air&lt;/b&gt; &amp; Lines" in text
    assert "<b>Air</b>" not in text


def test_report_is_deterministic_and_replaces_the_table(
    fct_con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    first = build_report(fct_con, tmp_path / "a", generated_at=GENERATED_AT)
    second = build_report(fct_con, tmp_path / "b", generated_at=GENERATED_AT)
    assert first.html_path.read_bytes() == second.html_path.read_bytes()
    assert first.csv_path.read_bytes() == second.csv_path.read_bytes()
    assert fct_con.execute("select count(*) from rpt_on_time").fetchall() == [(4,)]

    fct_con.execute("delete from fct_flights where month_key = '2013-11'")
    third = build_report(fct_con, tmp_path / "c", generated_at=GENERATED_AT)
    assert third.rows == 3
    assert fct_con.execute("select count(*) from rpt_on_time").fetchall() == [(3,)]
