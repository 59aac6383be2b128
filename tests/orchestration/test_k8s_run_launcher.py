"""Scenario 1 (issue 14) on the chart's Kubernetes run launcher: a run worker (the run's Job) SIGKILLed
mid-run is found by the daemon's run monitoring through the Kubernetes API, failed, retried as a new Job, and
every asset partition is written exactly once.

No cluster here: the API is the HTTP double of tests/deploy (``k8s_double``), whose Job runner
(``k8s_jobs``) runs each Job the launcher creates as a local process (the pod template's container:
``args``, ``env`` and ``envFrom`` resolved from the chart's Secrets and a ConfigMap the double holds) and
reports the Job's and the pod's status from that process. Dagster's instance takes the chart's rendered
``run_launcher``, ``run_monitoring`` and ``run_retries`` sections (changes below, each with its reason); a
real ``dagster-daemon`` launches the runs through ``dagster_k8s.K8sRunLauncher`` with the chart's
ServiceAccount token, so the chart's RBAC is what authorizes the launcher's calls. Last, a run terminated
through the run coordinator (the UI's Terminate): its Job and pod are deleted, its worker stops, it is CANCELED.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import pytest
import yaml
from faults_support import (
    assert_resumed_once,
    events,
    fault_env,
    launch,
    run_ended,
    running_daemon,
    small_source,
    started_steps,
    succeeded_steps,
    wait_for,
    wait_retry,
    wait_status,
    wait_success,
)

from hybridops.orchestration.instance import initialize_storage
from hybridops.rehearsal.kubelet import image_env, secret_data
from hybridops.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from deploy_support import find, objects
from k8s_double import running
from k8s_jobs import JobRunner

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MONTH = "2013-01"
KILL_AT = "online_features"
RUN_TIMEOUT_S = 420
NAMESPACE = "hybridops"  # the release namespace of the rendered chart (job_namespace)
CONFIG_MAP = "hybridops-config"  # the run pods' envFrom
SERVICE_ACCOUNT = "hybridops-dagster"  # the daemon's and the run pods' ServiceAccount


def instance_sections(
    objs: tuple[dict[str, Any], ...], dagster_home: Path, kubeconfig: Path
) -> dict[str, Any]:
    """The chart's run_launcher, run_monitoring and run_retries, changed only where they point at a cluster
    (or would make the test wait minutes)."""
    rendered = yaml.safe_load(find(objs, "ConfigMap", "hybridops-dagster-instance")["data"]["dagster.yaml"])
    sections = {key: rendered[key] for key in ("run_launcher", "run_monitoring", "run_retries")}
    launcher = sections["run_launcher"]["config"]
    assert launcher["load_incluster_config"] is True, launcher
    # The daemon is not in a pod: the API server and its credentials from a kubeconfig, not the pod's mount.
    launcher["load_incluster_config"] = False
    launcher["kubeconfig_file"] = str(kubeconfig)
    # Where the instance ConfigMap is mounted in a run pod; the local run worker reads the temp home instead.
    launcher["dagster_home"] = str(dagster_home)
    container = launcher["run_k8s_config"]["container_config"]
    # The chart's plain env values point at the cluster (HYBRIDOPS_HOME=/data on the PVC, the in-cluster
    # PostgreSQL, Redis and MLflow services). Kept: the secretKeyRef entries (the double resolves them from
    # the chart's Secrets) and envFrom (the chart's ConfigMap name, which the double holds with this test's
    # settings: the temp home and source).
    container["env"] = [item for item in container["env"] if "secretKeyRef" in item.get("valueFrom", {})]
    assert container["env"] and container["envFrom"] == [{"configMapRef": {"name": CONFIG_MAP}}], container
    # Run monitoring polls the API every 120 s in the chart: 2 s here, or the test would wait minutes.
    assert sections["run_monitoring"]["poll_interval_seconds"] == 120, sections["run_monitoring"]
    sections["run_monitoring"]["poll_interval_seconds"] = 2
    return sections


def test_k8s_launcher_run_monitoring_fails_a_killed_run_job_and_its_retry_writes_each_partition_once(
    tmp_path: Path,
) -> None:
    from dagster_project.partitions import add_months

    objs = objects("hybrid")
    image = find(objs, "Deployment", "hybridops-dagster-user-code")["spec"]["template"]["spec"]["containers"][
        0
    ]["image"]
    source = small_source(tmp_path)
    home = tmp_path / "home"
    env = fault_env(home, source, run_retries=1)
    # The code server's image (the chart's user-code Deployment sets it too): the run Jobs' image.
    env["DAGSTER_CURRENT_IMAGE"] = image
    saved = os.environ.copy()
    os.environ.update({k: v for k, v in env.items() if k.startswith("HYBRIDOPS_ORCHESTRATION__")})
    try:
        initialize_storage(Settings(home=home, source_dir=source))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    dagster_home = home / "dagster"
    kubeconfig = tmp_path / "kubeconfig"
    config = yaml.safe_load((dagster_home / "dagster.yaml").read_text())
    config.update(instance_sections(objs, dagster_home, kubeconfig))
    # Written without hybridops' first-line marker: a file the user took over, which hybridops keeps.
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    log = tmp_path / "daemon.log"
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    add_months(instance, [MONTH])

    pod_tmp = tmp_path / "pod-tmp"  # the run pod's /tmp emptyDir, where the image puts HOME and caches
    pod_tmp.mkdir()

    def node_image_env(name: str) -> dict[str, str]:
        return image_env(name) | {"HOME": str(pod_tmp), "XDG_CACHE_HOME": str(pod_tmp / ".cache")}

    (tmp_path / "pods").mkdir()
    runner = JobRunner(node_image_env, tmp_path / "pods", tmp_path)
    with running() as double:
        double.load(objs, NAMESPACE)
        settings_env = {k: v for k, v in env.items() if k.startswith("HYBRIDOPS_")}
        double.objects[f"/api/v1/namespaces/{NAMESPACE}/configmaps/{CONFIG_MAP}"]["data"] = settings_env
        double.runner = runner
        token = double.service_account_token(NAMESPACE, SERVICE_ACCOUNT)
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "double", "cluster": {"server": double.url}}],
                    "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
                    "contexts": [
                        {"name": "double", "context": {"cluster": "double", "user": SERVICE_ACCOUNT}}
                    ],
                    "current-context": "double",
                }
            )
        )
        try:
            with running_daemon(env, log) as daemon:
                wait_success(instance, launch(env, "dimensions"), RUN_TIMEOUT_S, log)
                started = time.monotonic()
                run_id = launch(env, "monthly_partition", MONTH)
                job_key = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/dagster-run-{run_id}"
                ended = run_ended(instance, run_id)
                pod = wait_for(
                    "the run's Job", lambda: runner.pods.get(job_key), RUN_TIMEOUT_S, log, abort=ended
                )
                assert pod.process is not None, pod.waiting
                wait_for(
                    f"step {KILL_AT}",
                    lambda: KILL_AT in started_steps(instance, run_id),
                    RUN_TIMEOUT_S,
                    log,
                    abort=ended,
                )
                os.kill(pod.process.pid, signal.SIGKILL)
                killed_at = time.monotonic()
                assert daemon.poll() is None, "the daemon died with the run worker"

                wait_status(instance, run_id, dg.DagsterRunStatus.FAILURE, 120, log)
                marked_failed_s = time.monotonic() - killed_at
                done_before_kill = succeeded_steps(instance, run_id)
                assert KILL_AT not in done_before_kill
                failure = [
                    e.message or ""
                    for e in events(instance, run_id)
                    if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE"
                ]
                # Run monitoring's verdict, with the pod the API reported: SIGKILL is exit code 137.
                assert len(failure) == 1, failure
                assert "Run has not completed but K8s job has no active pods" in failure[0], failure
                assert f"Debug information for pod dagster-run-{run_id}-" in failure[0], failure
                assert "Pod status: Failed" in failure[0], failure
                assert "Terminated with exit code 137: Error" in failure[0], failure

                retry_run = wait_retry(instance, run_id, log)
                retry_created_s = time.monotonic() - killed_at
                retry_key = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/dagster-run-{retry_run.run_id}"
                # Launched when the killed run's pool slot is freed (free_slots_after_run_end_seconds).
                retry_pod = wait_for("the retry's Job", lambda: runner.pods.get(retry_key), 120, log)
                retry_job_s = time.monotonic() - killed_at

                wait_success(instance, retry_run.run_id, RUN_TIMEOUT_S, log)
                total_s = time.monotonic() - started

                # Terminating a run (what the UI's Terminate calls): the launcher deletes the run's Job and
                # its pod through the API (a Job's deletion leaves its pods), and the pod's process stops.
                assert instance.run_launcher  # built now, not when the run to terminate is already going
                cancel_id = launch(env, "dimensions")
                cancel_key = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/dagster-run-{cancel_id}"
                cancel_ended = run_ended(instance, cancel_id)
                cancel_pod = wait_for(
                    "the Job to terminate", lambda: runner.pods.get(cancel_key), 120, log, abort=cancel_ended
                )
                wait_for(
                    "the run to terminate started",
                    lambda: (
                        (run := instance.get_run_by_id(cancel_id))
                        and run.status == dg.DagsterRunStatus.STARTED
                    ),
                    RUN_TIMEOUT_S,
                    log,
                    poll=0.05,
                    abort=cancel_ended,
                )
                terminated_at = time.monotonic()
                assert instance.run_coordinator.cancel_run(cancel_id), [
                    e.message for e in events(instance, cancel_id)
                ][-5:]
                assert cancel_pod.process is not None
                wait_for(
                    "the terminated run's process gone",
                    lambda: cancel_pod.process.poll() is not None,
                    60,
                    log,
                )
                worker_gone_s = time.monotonic() - terminated_at
                cancelled = wait_for(
                    "the terminated run finished",
                    lambda: (
                        (run := instance.get_run_by_id(cancel_id)) is not None and run.is_finished and run
                    ),
                    120,
                    log,
                )
                cancel_messages = [e.message for e in events(instance, cancel_id)]
                assert cancelled.status == dg.DagsterRunStatus.CANCELED, cancel_messages[-8:]
                assert any(m.endswith("Run was terminated successfully.") for m in cancel_messages), (
                    cancel_messages
                )
        finally:
            runner.stop()
        requests, reads = list(double.requests), list(double.reads)
        assert retry_pod.exit_code() == 0 and runner.job_status(retry_key) == {
            "succeeded": 1,
            "startTime": retry_pod.started,
            "completionTime": retry_pod.finished,
            "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": retry_pod.finished}],
        }

    # The launcher's calls: one Job per run (dimensions, the killed run, its retry, the terminated run), in
    # the chart's namespace with the chart's ServiceAccount and labels, every call allowed by the chart's RBAC.
    assert not [r for r in requests if r[0] == "FORBIDDEN"], [r for r in requests if r[0] == "FORBIDDEN"]
    created = {path: body for method, path, body in requests if method == "POST" and "/jobs/" in path}
    assert len(created) == 4 and {job_key, retry_key, cancel_key} <= set(created), sorted(created)
    run_labels = find(objs, "ConfigMap", "hybridops-dagster-instance")  # the chart's labels, as rendered
    chart_labels = yaml.safe_load(run_labels["data"]["dagster.yaml"])["run_launcher"]["config"]["labels"]
    for path, body in created.items():
        assert body is not None
        spec = body["spec"]["template"]["spec"]
        assert path.startswith(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/dagster-run-"), path
        assert spec["serviceAccountName"] == SERVICE_ACCOUNT, spec
        assert spec["containers"][0]["image"] == image, spec["containers"][0]
        assert spec["containers"][0]["args"][:3] == ["dagster", "api", "execute_run"], spec["containers"][0]
        for labels in (body["metadata"]["labels"], body["spec"]["template"]["metadata"]["labels"]):
            assert chart_labels.items() <= labels.items(), labels
            assert labels["dagster/run-id"] == path.rsplit("dagster-run-", 1)[1], labels
    assert created[retry_key]["metadata"]["labels"]["dagster/job"] == "monthly_partition"
    deleted = [path for method, path, _ in requests if method == "DELETE"]
    assert deleted == [cancel_key, cancel_pod.path], deleted
    # Run monitoring asked the API: the killed run's Job status, then its pods (the debug information).
    job_name = f"dagster-run-{run_id}"
    assert f"{job_key}/status" in reads, sorted(set(reads))[:20]
    pod_queries = [
        parse_qs(urlsplit(r).query) for r in reads if r.startswith(f"/api/v1/namespaces/{NAMESPACE}/pods?")
    ]
    assert {"labelSelector": [f"job-name={job_name}"]} in pod_queries, pod_queries
    # The run worker's environment, as the kubelet resolved it: the chart's Secret, the ConfigMap's settings.
    password = secret_data(find(objs, "Secret", "hybridops-postgresql"))["dagster-password"]
    assert pod.env["DAGSTER_PG_PASSWORD"] == password
    assert pod.env["HYBRIDOPS_HOME"] == str(home) and pod.env["DAGSTER_HOME"] == str(dagster_home), pod.env
    assert pod.env["DAGSTER_RUN_JOB_NAME"] == "monthly_partition", pod.env

    rerun, counts = assert_resumed_once(instance, run_id, retry_run.run_id, done_before_kill, KILL_AT, MONTH)
    instance.dispose()
    print(
        f"\nscenario 1 (K8sRunLauncher, API double): killed {KILL_AT} (Job dagster-run-{run_id}); "
        f"{len(done_before_kill)} steps done before, {len(rerun)} re-run; marked FAILURE by run monitoring "
        f"{marked_failed_s:.1f} s after the kill, retry run created {retry_created_s:.1f} s and its Job "
        f"{retry_job_s:.1f} s after it; {len(counts)} asset partitions written once; launch to retry SUCCESS "
        f"{total_s:.1f} s; terminated run's worker gone {worker_gone_s:.1f} s after Terminate; {len(reads)} "
        f"reads and {len(requests)} writes to the API"
    )
