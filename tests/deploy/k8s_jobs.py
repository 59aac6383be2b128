"""The Job controller and kubelet of the Kubernetes API double: each Job it is sent runs as a local process.

A :class:`JobRunner` given to :class:`k8s_double.K8sDouble` (``double.runner``) starts, for every Job created
through the API, one pod: the first container of the Job's pod template as a process of this machine, its
argv the container's ``command`` + ``args`` and its environment what a kubelet gives it (the image's ``ENV``
from ``image_env``, then ``envFrom`` ConfigMaps and Secrets, then ``env`` with ``$(VAR)`` expansion,
``secretKeyRef`` and ``configMapKeyRef``), resolved from the objects the double holds. A reference to a
missing object leaves the pod waiting in ``CreateContainerConfigError``, as on a cluster.

The Job's and its pod's status are read from the process when asked, in the API's shapes: a running
process is an ``active`` Job and a ``Running`` pod; its exit a ``succeeded`` Job (``Complete``) or a
``failed`` one (``Failed``, ``BackoffLimitExceeded``) and a terminated container with its exit code (128 +
the signal for a killed process, reason ``Error``). One pod per Job: Jobs with ``backoffLimit`` other than 0
are refused. Deleting the Job or its pod terminates the process (SIGTERM to its process group).

Not emulated: volumes, resources, security contexts, images (the process runs this machine's code).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import os
import signal
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hybridops.deploy.kube import _path
from hybridops.rehearsal.kubelet import k8s_expand


class MissingReference(Exception):
    """The container references a ConfigMap, Secret or key the cluster does not hold."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RunPod:
    """The one pod of a Job, and the process that is its container."""

    job_key: str  # the Job's API path
    obj: dict[str, Any]  # the Pod object without status
    process: subprocess.Popen[bytes] | None
    started: str
    waiting: str = ""  # why the container could not start (CreateContainerConfigError's message)
    env: dict[str, str] = field(default_factory=dict)  # the container's environment, as the kubelet gave it
    finished: str | None = None

    @property
    def path(self) -> str:
        meta = self.obj["metadata"]
        return _path("v1", "Pod", meta["namespace"], meta["name"])

    def exit_code(self) -> int | None:
        if self.process is None or self.process.poll() is None:
            return None
        if self.finished is None:
            self.finished = _now()
        code = self.process.returncode
        return 128 - code if code < 0 else code  # killed by signal n: 128 + n, as the container runtime says

    def status(self) -> dict[str, Any]:
        container = self.obj["spec"]["containers"][0]
        base = {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "",
            "restartCount": 0,
        }
        code = self.exit_code()
        if self.waiting:
            state = {"waiting": {"reason": "CreateContainerConfigError", "message": self.waiting}}
            phase, ready = "Pending", False
        elif code is None:
            state, phase, ready = {"running": {"startedAt": self.started}}, "Running", True
        else:
            reason = "Completed" if code == 0 else "Error"
            state = {
                "terminated": {
                    "exitCode": code,
                    "reason": reason,
                    "startedAt": self.started,
                    "finishedAt": self.finished,
                }
            }
            phase, ready = ("Succeeded" if code == 0 else "Failed"), False
        return {
            "phase": phase,
            "startTime": self.started,
            "containerStatuses": [{**base, "ready": ready, "started": ready, "state": state}],
        }


@dataclass
class JobRunner:
    """Runs the Jobs of a :class:`k8s_double.K8sDouble` as local processes (see the module's docstring)."""

    image_env: Callable[[str], dict[str, str]]  # the image's ENV on this machine (PATH to its programs, ...)
    log_dir: Path  # each pod's output: <pod>.log
    workdir: Path
    pods: dict[str, RunPod] = field(default_factory=dict)  # Job path -> its pod
    deleted: list[RunPod] = field(default_factory=list)  # deleted pods whose process may still be exiting

    def start(self, job_key: str, job: dict[str, Any], objects: dict[str, dict[str, Any]]) -> str | None:
        """Start the Job's pod; an error message (the Job is refused) for what this runner cannot run."""
        if job["spec"].get("backoffLimit", 6) != 0:
            return "the double's Job runner runs one pod per Job: spec.backoffLimit must be 0"
        meta = job["metadata"]
        namespace = meta.get("namespace") or job_key.split("/")[5]
        meta.setdefault("uid", str(uuid.uuid4()))
        template = copy.deepcopy(job["spec"]["template"])
        name = f"{meta['name']}-{uuid.uuid4().hex[:5]}"  # the Job controller's generated pod name
        labels = {
            **(template.get("metadata", {}).get("labels") or {}),
            "job-name": meta["name"],
            "batch.kubernetes.io/job-name": meta["name"],
            "controller-uid": meta["uid"],
            "batch.kubernetes.io/controller-uid": meta["uid"],
        }
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"]}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "labels": labels,
                "ownerReferences": [{**owner, "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": template["spec"],
        }
        container = template["spec"]["containers"][0]
        run = RunPod(job_key, pod, None, _now())
        try:
            env = self.container_env(namespace, container, objects)
        except MissingReference as missing:
            run.waiting = str(missing)
        else:
            run.env = env
            argv = [
                k8s_expand(word, env) for word in [*container.get("command", []), *container.get("args", [])]
            ]
            log = (self.log_dir / f"{name}.log").open("ab")
            run.process = subprocess.Popen(
                argv, env=env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            log.close()
        self.pods[job_key] = run
        return None

    def container_env(
        self, namespace: str, container: dict[str, Any], objects: dict[str, dict[str, Any]]
    ) -> dict[str, str]:
        def data(kind: str, name: str) -> dict[str, str]:
            obj = objects.get(_path("v1", kind, namespace, name))
            if obj is None:
                raise MissingReference(f'{kind.lower()} "{name}" not found')
            if kind == "Secret":
                decoded = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
                return decoded | (obj.get("stringData") or {})
            return dict(obj.get("data") or {})

        env = dict(self.image_env(container.get("image", "")))
        for source in container.get("envFrom") or []:
            kind, ref = (
                ("ConfigMap", source["configMapRef"])
                if "configMapRef" in source
                else ("Secret", source["secretRef"])
            )
            values = data(kind, ref["name"])
            env.update({source.get("prefix", "") + key: value for key, value in values.items()})
        for item in container.get("env") or []:
            if "valueFrom" not in item:
                env[item["name"]] = k8s_expand(item.get("value", ""), env)
                continue
            source = item["valueFrom"]
            kind, ref = (
                ("Secret", source.get("secretKeyRef"))
                if "secretKeyRef" in source
                else ("ConfigMap", source.get("configMapKeyRef"))
            )
            if ref is None:
                raise MissingReference(f"env {item['name']}: unsupported source {sorted(source)}")
            values = data(kind, ref["name"])
            if ref["key"] not in values:
                raise MissingReference(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}")
            env[item["name"]] = values[ref["key"]]
        return env

    def job_status(self, job_key: str) -> dict[str, Any] | None:
        """The Job controller's status of a Job this runner runs (None: not one of them)."""
        run = self.pods.get(job_key)
        if run is None:
            return None
        code = run.exit_code()
        if code is None:
            return {"active": 1, "ready": 0 if run.waiting else 1, "startTime": run.started}
        if code == 0:
            condition = {"type": "Complete", "status": "True", "lastTransitionTime": run.finished}
            return {
                "succeeded": 1,
                "startTime": run.started,
                "completionTime": run.finished,
                "conditions": [condition],
            }
        condition = {
            "type": "Failed",
            "status": "True",
            "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit",
            "lastTransitionTime": run.finished,
        }
        return {"failed": 1, "startTime": run.started, "conditions": [condition]}

    def pod_objects(self) -> list[dict[str, Any]]:
        return [{**run.obj, "status": run.status()} for run in self.pods.values()]

    def delete_pod(self, path: str) -> bool:
        """Delete the pod at ``path``, its process sent SIGTERM; False: not one of this runner's. (Deleting a
        Job leaves its pod: the API's default propagation for Jobs orphans them.)"""
        for job_key, run in list(self.pods.items()):
            if path == run.path:
                del self.pods[job_key]
                if run.process is not None and run.process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(run.process.pid, signal.SIGTERM)
                    self.deleted.append(run)
                return True
        return False

    def stop(self) -> None:
        """Kill every process this runner started (and the processes they started) and reap them."""
        for run in [*self.pods.values(), *self.deleted]:
            if run.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.process.pid, signal.SIGKILL)
                run.process.wait(10)
