"""The executor of launched runs, chosen by ``settings.orchestration.executor`` when the definitions load.

``multiprocess`` (the default, laptops and the chart) runs each step in a process of the run's pod;
``in_process`` runs every step in the run's own process (no per-step start-up: a small machine);
``k8s`` runs each step as a Kubernetes Job through dagster-k8s's ``k8s_job_executor``. dagster-k8s
0.29.27 no longer refuses to start off a ``K8sRunLauncher`` instance (it would fail later, loading an
in-cluster config that is not there), so this executor refuses first, with a message saying what to do.
"""

from __future__ import annotations

from typing import Literal

import dagster as dg

K8S_LAUNCHER = "K8sRunLauncher"


def k8s_requirement_error(launcher: object) -> str | None:
    """Why the k8s executor cannot run on an instance with ``launcher``, or None when it can."""
    if type(launcher).__name__ == K8S_LAUNCHER:
        return None
    return (
        f"the k8s executor (dagster.executor: k8s, HYBRIDOPS_ORCHESTRATION__EXECUTOR=k8s) launches each "
        f"step as a Kubernetes Job and needs the instance's run launcher to be {K8S_LAUNCHER}; this "
        f"instance uses {type(launcher).__name__}. Set dagster.executor: multiprocess (or unset "
        "HYBRIDOPS_ORCHESTRATION__EXECUTOR), or run on the chart's instance"
    )


def _k8s_executor() -> dg.ExecutorDefinition:
    from dagster_k8s import k8s_job_executor

    @dg.executor(
        name="k8s",
        config_schema=k8s_job_executor.config_schema,
        requirements=dg.multiple_process_executor_requirements(),
    )
    def k8s_executor(init_context: dg.InitExecutorContext):
        error = k8s_requirement_error(init_context.instance.run_launcher)
        if error:
            raise dg.DagsterUnmetExecutorRequirementsError(error)
        return k8s_job_executor.executor_creation_fn(init_context)  # type: ignore[misc]

    return k8s_executor


def executor_for(kind: Literal["multiprocess", "in_process", "k8s"]) -> dg.ExecutorDefinition:
    if kind == "k8s":
        return _k8s_executor()
    if kind == "in_process":
        return dg.in_process_executor
    return dg.multiprocess_executor
