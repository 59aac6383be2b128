"""Usage telemetry of the libraries hybridops runs: off unless ``Settings.telemetry`` turns it on.

- MLflow 3.x reports anonymous usage (client and the tracking server's UI endpoint) unless
  ``MLFLOW_DISABLE_TELEMETRY`` or ``DO_NOT_TRACK`` is true; it reads them at each check
  (``mlflow.telemetry.utils.is_telemetry_disabled``), so they work when set before a command runs.
- ``DO_NOT_TRACK=true`` is the cross-tool opt-out convention, for any other library that honours it.
- Dagster's instances are written with ``telemetry: enabled:`` set to the same setting
  (orchestration/instance.py and the chart's instance ConfigMap). Feast 0.67 has no usage reporting.

Nothing here runs at import: the command line's entry point applies :func:`telemetry_env` to its own
process, which every process it starts inherits; the chart sets the same variables in its pods.
"""

from __future__ import annotations

# Environment variable of the setting (Settings.telemetry) and the libraries' off switches.
TELEMETRY_SETTING_ENV = "HYBRIDOPS_TELEMETRY"
TELEMETRY_OFF: dict[str, str] = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def telemetry_env(enabled: bool) -> dict[str, str]:
    """The variables to add to the environment of processes hybridops starts: the libraries' off
    switches, or none when the user turned telemetry on (then the libraries' own defaults apply)."""
    return {} if enabled else dict(TELEMETRY_OFF)
