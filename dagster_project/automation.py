"""What runs by itself: the automation condition of every asset, in one table.

* Roots (``raw_*``) have none: the source sensor (``dagster_project.arrivals``) requests them for the
  months whose data arrived, so nothing is ever materialized for a month without data.
* Every other asset is *eager* for every partition (not only the latest time window): it runs after an
  upstream updated, never while an upstream is missing or in progress, and never below an upstream
  blocking check that failed for that month (checks of monthly tables are per month).
* Within one partitioning (a month's chain, or the unpartitioned chain training -> gate) an asset may be
  requested in the same tick as its upstream: Dagster puts them in one run, in order, and a failed
  blocking check in that run stops what follows. Across partitionings (the report and the training set
  over every month, a month's scoring after a new champion) requests of one tick become separate runs
  that would start side by side, so such an upstream counts only once it has materialized.
* The report follows any month; the training set is first trained as soon as there is data, then on a
  cadence (and whenever the retraining loop's sensor decides, with its own run config); scoring and
  monitoring follow new months with the current champion (a new champion does not rescore old months,
  as ``hybridops run``); the skew audit runs on a cadence, since served rows arrive without any upstream
  materialization.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from hybridops.settings import OrchestrationSettings

AC = dg.AutomationCondition


def _materialized() -> dg.AutomationCondition:
    # An update by the very run that would also run this asset does not count (Dagster's eager does so).
    return AC.newly_updated() & ~AC.executed_with_root_target()


def eager_across(
    same: dg.AssetSelection,
    other: dg.AssetSelection,
    ignore: Iterable[str] = (),
    other_may_miss: bool = False,
) -> dg.AutomationCondition:
    """Eager over every partition. ``same``: upstreams of the asset's own partitioning (an in-tick
    request counts); ``other``: upstreams of another partitioning (only a finished materialization
    counts, and a pending request holds the asset back); ``ignore``: upstreams whose updates alone do not
    trigger it. ``other_may_miss``: an asset over every month runs with the months there are (a month
    not loaded yet, or blocked, must not hold the report or the training back forever)."""
    ignored = dg.AssetSelection.assets(*ignore)
    updated = (
        AC.newly_missing()
        | AC.any_deps_match(_materialized() | AC.will_be_requested()).allow(same).ignore(ignored)
        | AC.any_deps_match(_materialized()).allow(other).ignore(ignored)
    ).since_last_handled()
    pending = AC.will_be_requested() if other_may_miss else AC.missing() | AC.will_be_requested()
    not_ready = AC.any_deps_match(AC.missing() & ~AC.will_be_requested()).allow(same) | AC.any_deps_match(
        pending
    ).allow(other)
    return (
        updated
        & ~not_ready
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
        & AC.all_deps_blocking_checks_passed()
    )


def on_cadence(cron: str, needs: dg.AssetSelection | None = None) -> dg.AutomationCondition:
    """Once per cron tick (UTC), once an upstream (of ``needs``) has data, when nothing upstream is missing
    or in progress."""
    has_data = AC.any_deps_match(~AC.missing())
    return (
        AC.cron_tick_passed(cron).since_last_handled()
        # An upstream of monthly partitions has none before the first month arrives: nothing to do yet.
        & (has_data.allow(needs) if needs is not None else has_data)
        & ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label(f"on_cadence({cron})")


def while_missing() -> dg.AutomationCondition:
    """A root without inputs: materialized while it is missing, unless its last attempt failed (a failed
    registry is repaired by a person, not retried every tick)."""
    return (AC.missing() & ~AC.in_progress() & ~AC.execution_failed()).with_label("while_missing")


def conditions(
    settings: OrchestrationSettings, monthly: Iterable[str], unpartitioned: Iterable[str]
) -> dict[str, dg.AutomationCondition]:
    """The condition of each asset by name (assets not listed, the roots, have none).

    ``monthly`` and ``unpartitioned`` name the assets of the location by partitioning.
    """
    months = dg.AssetSelection.assets(*monthly)
    whole = dg.AssetSelection.assets(*unpartitioned)
    month_chain = eager_across(months, whole).with_label("eager_per_month")
    whole_chain = eager_across(whole, months, other_may_miss=True).with_label("eager_unpartitioned")
    # Only a month's data starts the first training (not the registry alone).
    first_training = (
        AC.missing() & eager_across(whole, months, ignore=["feast_registry"], other_may_miss=True)
    ).with_label("until_first_champion")
    return {
        # DataOps: validated tables, SPC, warehouse, report.
        "flights": month_chain,
        "weather": month_chain,
        "planes": whole_chain,
        "airlines": whole_chain,
        "airports": whole_chain,
        "spc_daily_metrics": month_chain,
        "fct_flights": month_chain,
        "on_time_report": whole_chain,
        # Features: offline tables, the Feast registry (whenever it is missing), the online store.
        "feature_tables": month_chain,
        "feast_registry": while_missing(),
        "online_features": month_chain,
        # Training: the first champion as soon as there is data, then the cadence.
        "training_set": (first_training | on_cadence(settings.training_cron, needs=months)).with_label(
            f"first_then_on_cadence({settings.training_cron})"
        ),
        "candidate_model": whole_chain,
        "champion_model": whole_chain,
        # Scoring and monitoring of new months by the current champion.
        "batch_predictions": eager_across(months, whole, ignore=["champion_model"]).with_label(
            "eager_new_months"
        ),
        "model_monitoring": month_chain,
        "feature_skew_audit": on_cadence(settings.skew_audit_cron),
    }


def automation_sensor(settings: OrchestrationSettings) -> dg.AutomationConditionSensorDefinition:
    """The sensor that evaluates the conditions, running by default (no toggle in the UI needed)."""
    return dg.AutomationConditionSensorDefinition(
        "hybridops_automation",
        target=dg.AssetSelection.all(),
        default_status=default_status(settings),
        minimum_interval_seconds=settings.sensor_interval_seconds,
        description="Declarative automation of every asset (see docs/deploy.md, 'Automation and fan-out').",
        # One run per month, tagged with its partition, never a backfill: a backfill's runs carry a
        # partition *range* (even of one month), and Dagster records the checks of such a run without
        # their partition, so a month's blocking checks never count as passed and the month stops at its
        # validated tables. Runs are still one per month, side by side up to the run limit.
        emit_backfills=False,
    )


def default_status(settings: OrchestrationSettings) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if settings.automation else dg.DefaultSensorStatus.STOPPED
