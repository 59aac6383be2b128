"""One check result per run over several months: passes only when every month passed, names the others."""

from __future__ import annotations

from hybridops.quality.combine import combine_all, combine_months
from hybridops.quality.validate import CheckOutcome

WHY = "the flights batch is blocked by file_readable_and_schema_valid"


def _ok(name: str, rows: int = 0) -> CheckOutcome:
    return CheckOutcome(
        name, True, "WARN", False, f"{rows} row(s) quarantined by rule {name}", {"rows": rows}
    )


def test_a_single_month_is_returned_unchanged():
    outcome = CheckOutcome("range", False, "WARN", False, "1 row(s) quarantined", {"rows": 1, "note": "x"})
    assert combine_months("range", False, {"2013-02": outcome}, WHY) is outcome
    assert combine_months("range", False, {"2013-02": None}, WHY) is None


def test_every_month_passing_passes_and_sums_the_numbers():
    combined = combine_months("range", False, {"2013-01": _ok("range"), "2013-02": _ok("range")}, WHY)
    assert combined is not None and combined.passed
    assert combined.message.startswith("passed in every month 2013-01..2013-02")
    assert combined.metadata == {"rows": 0, "months_failed": "none"}


def test_a_failing_month_fails_the_run_and_is_named_with_its_message():
    february = CheckOutcome("range", False, "WARN", False, "1 row(s) quarantined by rule range", {"rows": 1})
    combined = combine_months(
        "range", False, {"2013-01": _ok("range", 0), "2013-02": february, "2013-03": _ok("range", 0)}, WHY
    )
    assert combined is not None and not combined.passed and combined.severity == "WARN"
    assert combined.message == "2013-02: 1 row(s) quarantined by rule range"
    assert combined.metadata["rows"] == 1 and combined.metadata["months_failed"] == "2013-02"


def test_a_blocking_error_in_one_month_blocks_the_range_and_skipped_months_are_said():
    blocked = CheckOutcome("bad_row_ratio", False, "ERROR", True, "5.1% of rows quarantined", {})
    combined = combine_months(
        "bad_row_ratio", True, {"2013-01": _ok("bad_row_ratio"), "2013-02": blocked, "2013-03": None}, WHY
    )
    assert combined is not None and not combined.passed
    assert combined.severity == "ERROR" and combined.blocking
    assert combined.message == f"2013-02: 5.1% of rows quarantined; not evaluated in 2013-03 ({WHY})"
    assert combined.metadata["months_failed"] == "2013-02, 2013-03"


def test_combine_all_keeps_the_declared_order_and_names():
    by_month = {"2013-01": [_ok("type"), _ok("range")], "2013-02": [_ok("type")]}
    combined = combine_all([("range", False), ("type", False)], by_month, WHY)
    assert list(combined) == ["range", "type"]
    assert combined["type"] is not None and combined["type"].passed
    assert combined["range"] is not None and not combined["range"].passed  # not evaluated in February


def test_months_failing_the_same_way_are_said_once():
    broken = CheckOutcome(
        "file_readable_and_schema_valid", False, "ERROR", True, "flights.csv: column dep_delay missing", {}
    )
    combined = combine_months(
        "file_readable_and_schema_valid", True, {"2013-01": broken, "2013-02": broken, "2013-03": broken}, WHY
    )
    assert combined is not None
    assert combined.message == "2013-01, 2013-02, 2013-03: flights.csv: column dep_delay missing"
