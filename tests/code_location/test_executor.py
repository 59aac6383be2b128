"""The executor follows ``orchestration.executor`` when the definitions load; k8s refuses a non-K8s launcher.

dagster-k8s 0.29.27 no longer checks the run launcher itself (it would fail later, loading an in-cluster
Kubernetes config): the run is refused up front, with the setting to change in the message.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from dagster_project.build import build_definitions
from hybridops.settings import OrchestrationSettings


def _k8s_report_job() -> dg.JobDefinition:
    # Module-level: a run outside this process rebuilds the job from here (dg.reconstructable).
    return build_definitions("hybrid", OrchestrationSettings(executor="k8s")).resolve_job_def("report")


def test_the_default_executor_is_multiprocess():
    defs = build_definitions("hybrid", OrchestrationSettings())
    assert defs.resolve_job_def("report").executor_def.name == "multiprocess"


def test_the_k8s_executor_refuses_an_instance_without_the_k8s_run_launcher(tmp_path: Path):
    assert _k8s_report_job().executor_def.name == "k8s"
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = dg.execute_job(dg.reconstructable(_k8s_report_job), instance=instance, raise_on_error=False)
        assert not result.success
        failures = [
            event.event_specific_data.error.message  # type: ignore[union-attr]
            for event in result.all_events
            if event.is_run_failure and event.event_specific_data.error  # type: ignore[union-attr]
        ] + [
            record.user_message
            for record in instance.all_logs(result.run_id)
            if "K8sRunLauncher" in (record.user_message or "")
        ]
    text = "\n".join(failures)
    assert "needs the instance's run launcher to be K8sRunLauncher" in text, text
    assert "DefaultRunLauncher" in text and "dagster.executor: multiprocess" in text
