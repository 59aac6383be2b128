"""What runs by itself: the automation condition of every asset, in one table.

* Roots (``raw_*``) have none: the source sensor (``dagster_project.arrivals``) requests them for the
  months whose data arrived, so nothing is ever materialized for a month without data.
* Downstream monthly assets are *eager* for every partition (not only the latest time window), and never
  while an upstream is in progress, while an upstream is missing, or while an upstream blocking check of
  that month has failed: a blocked batch stops everything after it.
* The report and the training set read every month: they follow any month's update (no "missing month"
  gate, or one blocked month would freeze them forever).
* Training: the first champion as soon as data is there, then on a monthly cadence (and whenever the
  retraining loop's sensor decides, with its own run config).
* The skew audit on a cadence: what the inference service served keeps arriving without any upstream
  update.
"""

from __future__ import annotations

import dagster as dg

from hybridops.settings import OrchestrationSettings

AC = dg.AutomationCondition


def downstream() -> dg.AutomationCondition:
    """Eager on every partition, held back by an upstream blocking check that failed."""
    return (AC.eager().without(AC.in_latest_time_window()) & AC.all_deps_blocking_checks_passed()).with_label(
        "eager_unless_blocked"
    )


def after_any_month() -> dg.AutomationCondition:
    """Any upstream (any month) updated, nothing upstream in progress: for assets over every month."""
    return (
        AC.any_deps_updated().since_last_handled()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
        & AC.all_deps_blocking_checks_passed()
    ).with_label("after_any_month")


def on_cadence(cron: str) -> dg.AutomationCondition:
    """Once per cron tick (UTC), when nothing upstream is missing or in progress."""
    return (
        AC.cron_tick_passed(cron).since_last_handled()
        & ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label(f"on_cadence({cron})")


def first_then_on_cadence(cron: str) -> dg.AutomationCondition:
    """Until it first succeeds, after any upstream update; then on the cadence."""
    first = (AC.missing() & after_any_month()).with_label("until_first_success")
    return (first | on_cadence(cron)).with_label(f"first_then_on_cadence({cron})")


def conditions(settings: OrchestrationSettings) -> dict[str, dg.AutomationCondition]:
    """The condition of each asset by name; assets not listed (the roots) have none."""
    eager = downstream()
    return {
        # DataOps: validated tables, SPC, warehouse, report.
        "flights": eager,
        "weather": eager,
        "planes": eager,
        "airlines": eager,
        "airports": eager,
        "spc_daily_metrics": eager,
        "fct_flights": eager,
        "on_time_report": after_any_month(),
        # Features: offline tables, the Feast registry (missing, or its inputs changed), the online store.
        "feature_tables": eager,
        "feast_registry": eager,
        "online_features": eager,
        # Training: first champion as soon as there are months, then the cadence.
        "training_set": first_then_on_cadence(settings.training_cron),
        "candidate_model": eager,
        "champion_model": eager,
        # Scoring and monitoring of new months by the current champion. A new champion does not rescore
        # the months already scored (as `hybridops run`); its next months are scored as they arrive.
        "batch_predictions": (
            AC.eager().without(AC.in_latest_time_window()).ignore(dg.AssetSelection.assets("champion_model"))
            & AC.all_deps_blocking_checks_passed()
            & ~AC.any_deps_missing()
        ).with_label("eager_new_months_unless_blocked"),
        "model_monitoring": eager,
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
    )


def default_status(settings: OrchestrationSettings) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if settings.automation else dg.DefaultSensorStatus.STOPPED
