"""`hybridops run` registers its months as partitions and plans range runs over the instance's key order."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg

from hybridops.orchestration.instance import initialize_storage
from hybridops.orchestration.run_plan import key_ordered_spans, plan_runs
from hybridops.orchestration.runner import register_months
from hybridops.settings import Settings


def test_spans_follow_the_calendar_and_the_key_order():
    months = ["2013-01", "2013-02", "2013-03", "2013-05"]
    assert key_ordered_spans(months, months) == [("2013-01", "2013-03"), ("2013-05", "2013-05")]
    # March arrived first: a range 01..03 over the key order would miss it, so it is a run of its own.
    keys = ["2013-03", "2013-01", "2013-02", "2013-05"]
    assert key_ordered_spans(months, keys) == [
        ("2013-01", "2013-02"),
        ("2013-03", "2013-03"),
        ("2013-05", "2013-05"),
    ]
    planned = plan_runs(["2013-02", "2013-01"], keys)
    assert [run.label for run in planned] == ["dimensions", "monthly_partition 2013-01..2013-02", "report"]


def test_processes_registering_months_at_once_each_get_them_once(tmp_path: Path):
    settings = Settings(home=tmp_path)
    initialize_storage(settings)
    home = str(settings.dagster_home)
    batches = [
        ["2013-01", "2013-02", "2013-03"],
        ["2013-02", "2013-03", "2013-04"],
        ["2013-04", "2013-05"],
    ] * 2

    def register(months: list[str]) -> list[str]:
        with dg.DagsterInstance.from_config(home) as instance:
            return register_months(instance, months)

    with ThreadPoolExecutor(max_workers=len(batches)) as pool:
        added = list(pool.map(register, batches))
    with dg.DagsterInstance.from_config(home) as instance:
        keys = instance.get_dynamic_partitions("months")
    assert sorted(keys) == [f"2013-0{m}" for m in range(1, 6)]
    assert len(keys) == 5
    assert sorted(month for months in added for month in months) == sorted(keys)
