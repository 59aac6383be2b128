"""``dagster``: the webservers, daemon, user-code server, run launcher and automation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hybridops.deploy.value_blocks import (
    Image,
    Resources,
    Scheduling,
    Service,
    _Values,
    platform_image,
    resources,
)


class DagsterReadOnlyWebserver(_Values):
    enabled: bool = Field(False, description="A second, read-only webserver for wide access.")
    replicas: int = Field(1, ge=1)
    resources: Resources = Field(default_factory=lambda: resources("100m", "256Mi", "500m", "1Gi"))
    service: Service = Field(default_factory=lambda: Service(port=80))


class DagsterWebserver(_Values):
    replicas: int = Field(1, ge=1)
    resources: Resources = Field(default_factory=lambda: resources("100m", "256Mi", "1", "1Gi"))
    service: Service = Field(default_factory=lambda: Service(port=80))
    read_only: DagsterReadOnlyWebserver = Field(default_factory=DagsterReadOnlyWebserver)


class DagsterDaemon(_Values):
    """Always exactly one replica (the daemon must not run twice)."""

    resources: Resources = Field(default_factory=lambda: resources("100m", "256Mi", "1", "1Gi"))
    run_monitoring_start_timeout_seconds: int = Field(300, ge=1)
    heartbeat_tolerance_seconds: int = Field(
        300,
        ge=60,
        le=1800,
        description=(
            "Liveness: the daemon's probe (dagster-daemon liveness-check) fails once a daemon's last "
            "heartbeat is older than this plus Dagster's 30 s heartbeat interval (Dagster's default: 1800)."
        ),
    )
    max_run_retries: int = Field(1, ge=0, description="Default retries of a failed run (run retries on).")
    max_concurrent_runs: int = Field(4, ge=1, description="Queued run coordinator limit.")


class DagsterUserCode(_Values):
    replicas: int = Field(1, ge=1)
    resources: Resources = Field(default_factory=lambda: resources("100m", "512Mi", "1", "2Gi"))
    port: int = Field(3030, ge=1, le=65535)


class DagsterCodeLocation(_Values):
    """The Python module the user-code server loads (``dagster api grpc -m``)."""

    module: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$",
        description=(
            "Module of the Definitions; default the profile's: dagster_project.definitions (hybrid), "
            "dagster_project.definitions_dataops, dagster_project.definitions_mlops."
        ),
    )
    name: str = Field("hybridops", description="Location name in the workspace (and in the UI).")


class DagsterRunLauncher(_Values):
    job_namespace: str | None = Field(None, description="Namespace of run pods; default the release's.")
    resources: Resources = Field(default_factory=lambda: resources("500m", "2Gi", "2", "6Gi"))
    fail_pod_on_run_failure: bool = True


class DagsterAutomation(_Values):
    """Sensors and declarative automation of the code location (docs/deploy.md, "Automation and fan-out")."""

    enabled: bool = Field(
        True, description="Sensors and automation run by default; false leaves them stopped (UI toggles)."
    )
    sensor_interval_seconds: int = Field(
        30, ge=1, description="Least time between two evaluations of the source and automation sensors."
    )


class DagsterPools(_Values):
    """Dagster concurrency pools of the code location: `training` and `online_store`."""

    default_limit: int = Field(
        1, ge=1, description="Steps at once per pool: one training, one online-store writer at a time."
    )


class DagsterValues(_Values):
    enabled: bool = True
    automation: DagsterAutomation = Field(default_factory=DagsterAutomation)
    executor: Literal["multiprocess", "k8s"] = Field(
        "multiprocess",
        description="Executor of runs: a process per step in the run pod, or a Kubernetes Job per step (k8s).",
    )
    pools: DagsterPools = Field(default_factory=DagsterPools)
    image: Image = Field(default_factory=platform_image)
    database: str = Field("dagster", description="Postgres database of the Dagster instance.")
    webserver: DagsterWebserver = Field(default_factory=DagsterWebserver)
    daemon: DagsterDaemon = Field(default_factory=DagsterDaemon)
    user_code: DagsterUserCode = Field(default_factory=DagsterUserCode)
    code_location: DagsterCodeLocation = Field(default_factory=DagsterCodeLocation)
    run_launcher: DagsterRunLauncher = Field(default_factory=DagsterRunLauncher)
    scheduling: Scheduling = Field(default_factory=Scheduling)
