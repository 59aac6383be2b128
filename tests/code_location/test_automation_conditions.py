"""The automation conditions evaluated on a real instance, as the daemon's automation sensor does.

Upstream materializations and check results are recorded as events on the instance; each evaluation
(``dg.evaluate_automation_conditions``, cursor carried over) must request exactly the assets whose
inputs are ready: nothing below a month whose blocking check failed, even after a later month passes,
nothing while an upstream is missing, and the next layer once the previous one materialized.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,  # no public name; runs fill it in themselves
)

from dagster_project.build import build_definitions
from dagster_project.partitions import MONTHS
from hybridops.settings import OrchestrationSettings, QualitySettings

JAN, FEB, MAR = "2013-01", "2013-02", "2013-03"
DIMENSIONS = ("planes", "airlines", "airports")


@pytest.fixture
def instance(tmp_path: Path):
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        instance.add_dynamic_partitions(MONTHS, [JAN, FEB, MAR])
        yield instance


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return build_definitions("hybrid", OrchestrationSettings())


class Ticks:
    """Consecutive evaluations sharing the cursor, as consecutive ticks of the sensor."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance, self.cursor = defs, instance, None
        self.last: dg.EvaluateAutomationConditionsResult | None = None

    def requested(self) -> set[tuple[str, str | None]]:
        # The daemon reads the dynamic partitions once per tick through a caching loader; the tester asks
        # the instance again for every partitioned subset it serializes (~1,000 queries): cached here
        # for the one evaluation, the keys do not change during it.
        instance, read = self.instance, type(self.instance).get_dynamic_partitions
        keys = {MONTHS: read(instance, MONTHS)}
        instance.get_dynamic_partitions = lambda partitions_def_name: (
            keys.get(partitions_def_name)
            or read(  # type: ignore[method-assign]
                instance, partitions_def_name
            )
        )
        try:
            result = dg.evaluate_automation_conditions(defs=self.defs, instance=instance, cursor=self.cursor)
        finally:
            del instance.get_dynamic_partitions
        self.cursor, self.last = result.cursor, result
        graph = self.defs.resolve_asset_graph()
        return {
            (key.to_user_string(), partition)
            for key in graph.get_all_asset_keys()
            for partition in result.get_requested_partitions(key)
        }


def _materialize(instance: dg.DagsterInstance, asset: str, partition: str | None = None) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=partition))


def _checks(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    asset: str,
    partition: str | None,
    passed: bool = True,
    failing: frozenset[str] = frozenset(),
) -> None:
    """Report every check of ``asset``: the blocking ones pass as ``passed`` says, those in ``failing``
    fail (ERROR if their spec is blocking, WARN otherwise, as the validated assets report them)."""
    graph = defs.resolve_asset_graph()
    # A check result counts for the materialization it evaluated, as in a run: the latest one.
    (latest,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records
    target = AssetCheckEvaluationTargetMaterializationData(
        storage_id=latest.storage_id, run_id=latest.run_id, timestamp=latest.timestamp
    )
    for check_key in graph.asset_check_keys:
        if check_key.asset_key.to_user_string() != asset:
            continue
        spec = graph.get_check_spec(check_key)
        fails = check_key.name in failing or not (passed or not spec.blocking)
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=check_key.asset_key,
                check_name=check_key.name,
                passed=not fails,
                severity=dg.AssetCheckSeverity.ERROR if spec.blocking else dg.AssetCheckSeverity.WARN,
                blocking=spec.blocking,
                partition=partition if spec.partitions_def else None,
                target_materialization_data=target,
            )
        )


def _dimensions_loaded(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    for table in DIMENSIONS:
        _materialize(instance, f"raw_{table}")
        _materialize(instance, table)
        _checks(defs, instance, table, None)


def _month_validated(defs, instance, month: str, passed: bool = True) -> None:
    for table in ("flights", "weather"):
        _materialize(instance, f"raw_{table}", month)
        _materialize(instance, table, month)
        _checks(defs, instance, table, month, passed=passed or table == "weather")


MONTH_CHAIN = ("flights", "weather", "spc_daily_metrics", "fct_flights", "feature_tables", "online_features")


def test_each_layer_follows_the_one_before_it(defs, instance):
    ticks = Ticks(defs, instance)
    # Nothing has data: only the Feast registry (a root that is simply missing) is asked for.
    assert ticks.requested() == {("feast_registry", None)}
    _materialize(instance, "feast_registry")
    _dimensions_loaded(defs, instance)
    for table in ("flights", "weather"):
        _materialize(instance, f"raw_{table}", JAN)
    # The raw month landed (as the source sensor's run does): the month's chain, as one run of that
    # month; nothing over every month (report, training) while the month is only requested.
    assert ticks.requested() == {(asset, JAN) for asset in MONTH_CHAIN}
    assert ticks.requested() == set()  # handled: not asked twice

    for asset in MONTH_CHAIN:
        _materialize(instance, asset, JAN)
    for table in ("flights", "weather"):
        _checks(defs, instance, table, JAN)
    # The month is in: the report, and the first training with its gate (no champion yet, no scoring).
    assert ticks.requested() == {
        ("on_time_report", None),
        ("training_set", None),
        ("candidate_model", None),
        ("champion_model", None),
    }

    for asset in ("on_time_report", "training_set", "candidate_model", "champion_model"):
        _materialize(instance, asset)
    _checks(defs, instance, "champion_model", None)
    # A champion passed the gate: the month is scored and monitored.
    assert ticks.requested() == {("batch_predictions", JAN), ("model_monitoring", JAN)}


def test_no_scoring_below_a_failed_gate(defs, instance):
    ticks = Ticks(defs, instance)
    _materialize(instance, "feast_registry")
    _dimensions_loaded(defs, instance)
    for asset in MONTH_CHAIN:
        _materialize(instance, asset, JAN)
    ticks.requested()
    for asset in ("training_set", "candidate_model", "champion_model"):
        _materialize(instance, asset)
    _checks(defs, instance, "champion_model", None, passed=False)
    assert not {asset for asset, _ in ticks.requested()} & {"batch_predictions", "model_monitoring"}


def test_a_failed_blocking_check_holds_its_month_even_after_a_later_month_passes(defs, instance):
    ticks = Ticks(defs, instance)
    _materialize(instance, "feast_registry")
    _dimensions_loaded(defs, instance)
    ticks.requested()

    _month_validated(defs, instance, FEB, passed=False)  # flights of February: a blocking check failed
    held = ticks.requested()
    assert ("fct_flights", FEB) not in held and ("spc_daily_metrics", FEB) not in held

    _month_validated(defs, instance, MAR)
    later = ticks.requested()
    assert ("fct_flights", MAR) in later
    assert ("fct_flights", FEB) not in later, "a later month's pass released the blocked month"


@pytest.mark.parametrize(("severity", "held"), [("blocking", True), ("warn", False)])
def test_a_failed_completeness_check_holds_its_month_only_when_it_blocks(instance, severity, held):
    """``quality.completeness_severity: warn`` declares the completeness checks non-blocking when the code
    location loads: a month with an airport's weather hours missing goes on under automation (with the
    WARN result on record) instead of waiting for a manual run."""
    defs = build_definitions(
        "hybrid", OrchestrationSettings(), QualitySettings(completeness_severity=severity)
    )
    ticks = Ticks(defs, instance)
    _materialize(instance, "feast_registry")
    _dimensions_loaded(defs, instance)
    ticks.requested()
    for table in ("flights", "weather"):
        _materialize(instance, f"raw_{table}", FEB)
        _materialize(instance, table, FEB)
    _checks(defs, instance, "flights", FEB)
    _checks(defs, instance, "weather", FEB, failing=frozenset({"weather_hours_complete"}))
    assert (("fct_flights", FEB) not in ticks.requested()) is held


def test_a_second_month_whose_tables_land_apart_goes_on_to_the_fact_table(defs, instance):
    """The rehearsal's order: January carried to a champion; February's flights land (and are validated)
    one tick before its weather; the month's chain must still go on past the validated tables."""
    ticks = Ticks(defs, instance)
    _materialize(instance, "feast_registry")
    _dimensions_loaded(defs, instance)
    for table in ("flights", "weather"):
        _materialize(instance, f"raw_{table}", JAN)
    ticks.requested()
    for asset in MONTH_CHAIN:
        _materialize(instance, asset, JAN)
    for table in ("flights", "weather"):
        _checks(defs, instance, table, JAN)
    ticks.requested()
    for asset in ("on_time_report", "training_set", "candidate_model", "champion_model"):
        _materialize(instance, asset)
    _checks(defs, instance, "champion_model", None)
    ticks.requested()
    for asset in ("batch_predictions", "model_monitoring"):
        _materialize(instance, asset, JAN)

    requested: set[tuple[str, str | None]] = set()
    _materialize(instance, "raw_flights", FEB)
    requested |= ticks.requested()
    assert ("flights", FEB) in requested
    _materialize(instance, "flights", FEB)
    _checks(defs, instance, "flights", FEB)
    requested |= ticks.requested()
    _materialize(instance, "raw_weather", FEB)
    requested |= ticks.requested()
    _materialize(instance, "weather", FEB)
    _checks(defs, instance, "weather", FEB)
    requested |= ticks.requested()
    requested |= ticks.requested()
    assert ("fct_flights", FEB) in requested, sorted(requested)


def test_months_requested_together_become_one_partition_run_each_never_a_backfill(defs, instance):
    """What the daemon launches for a tick that requests two months: the sensor's own run requests (built
    by Dagster's daemon code from the evaluation, with the sensor's ``emit_backfills``). A backfill's runs
    carry a one-month partition *range*, and Dagster records the checks of such a run without their
    partition: the month's blocking checks then never pass and it stops at its validated tables (what the
    rehearsal saw of February). Each run must carry its month as ``dagster/partition``."""
    from dagster._core.definitions.automation_tick_evaluation_context import build_run_requests
    from dagster._core.definitions.partitions.context import partition_loading_context

    (sensor,) = [s for s in defs.sensors if s.name == "hybridops_automation"]
    ticks = Ticks(defs, instance)
    _materialize(instance, "feast_registry")
    _dimensions_loaded(defs, instance)
    ticks.requested()
    for month in (JAN, FEB):
        for table in ("flights", "weather"):
            _materialize(instance, f"raw_{table}", month)
    assert ("flights", JAN) in (requested := ticks.requested()) and ("flights", FEB) in requested
    assert ticks.last is not None
    with partition_loading_context(dynamic_partitions_store=instance):
        requests = build_run_requests(
            ticks.last._requested_subsets,  # what the daemon builds its requests from (no public name)
            defs.resolve_asset_graph(),
            run_tags=None,
            emit_backfills=sensor.emit_backfills,
        )
    assert [r.requires_backfill_daemon() for r in requests] == [False] * len(requests)
    by_month = {r.partition_key: {k.to_user_string() for k in r.asset_selection or []} for r in requests}
    assert by_month == {JAN: set(MONTH_CHAIN), FEB: set(MONTH_CHAIN)}
