"""The release's objects on this machine: Services are loopback ports, volumes are folders, pods processes.

What is adapted to this machine, and only that: every volume is a local folder (one per PVC claim, shared
like the claim; a ``subPath`` mount is that file of the volume), every Service address (``host:port``) is a
loopback port, and listeners bind 127.0.0.1 on a free port instead of 0.0.0.0 on the container port (the
start functions of :mod:`hybridops.rehearsal.workloads` say which words of a command they change).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
import yaml

from hybridops.rehearsal.kubelet import (
    NAMESPACE,
    POD_IP,
    Pod,
    RehearsalError,
    closed_port,
    group_members,
    image_env,
    k8s_expand,
    secret_data,
)

_MACHINE_PATHS = ("PATH", "PYTHONPATH")


def find(objs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    """The rendered object ``kind/name``."""
    for obj in objs:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise RehearsalError(f"the render has no {kind}/{name}")


def workload(
    objs: tuple[dict[str, Any], ...], kind: str, name: str, container: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod spec, its only container) of a workload, or its container named ``container``."""
    spec = find(objs, kind, name)["spec"]["template"]["spec"]
    if container is not None:
        (found,) = [c for c in spec["containers"] if c["name"] == container]
        return spec, found
    (only,) = spec["containers"]
    return spec, only


def replace_once(text: str, old: str, new: str) -> str:
    """An adaptation to this machine that fails loudly when the rendered text no longer has ``old``."""
    if text.count(old) != 1:
        raise RehearsalError(f"expected {old!r} once in the rendered command:\n{text}")
    return text.replace(old, new)


def listen_locally(argv: list[str], pod: Pod, port_name: str) -> list[str]:
    """``--host 0.0.0.0 --port <containerPort>`` (exec form) -> loopback and the pod's local port."""
    out = list(argv)
    host, port = out.index("--host"), out.index("--port")
    if out[host + 1] != "0.0.0.0" or int(out[port + 1]) != pod.ports[port_name][0]:
        raise RehearsalError(f"{pod.name}: unexpected --host/--port in {argv}")
    out[host + 1], out[port + 1] = "127.0.0.1", str(pod.local_port(port_name))
    return out


def check(argv: list[str], env: dict[str, str], timeout: float = 120) -> str:
    """Run a short command to completion: its standard output, or an error with everything it printed."""
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RehearsalError(f"{shlex.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


@dataclass
class Cluster:
    """The release's objects and this machine: Service addresses map to loopback ports, PVCs to folders.

    ``dagster_run_launcher``, when set, replaces the ``run_launcher`` of every ``dagster.yaml`` a pod mounts
    (the rehearsal's one change to the instance: run workers as local processes instead of Kubernetes Jobs).
    ``feast_auth``, when set, replaces ``auth: {type: kubernetes}`` in every ``feature_store.yaml`` a pod
    mounts: Feast's Kubernetes auth reviews tokens with an API server, which this machine does not have.
    """

    objs: tuple[dict[str, Any], ...]
    root: Path
    dagster_run_launcher: dict[str, Any] | None = None
    feast_auth: dict[str, Any] | None = None
    services: dict[str, str] = field(default_factory=dict)  # "name:port" -> "127.0.0.1:port"
    service_pod: dict[str, str] = field(default_factory=dict)  # Service name -> the pod behind it
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    pods: dict[str, Pod] = field(default_factory=dict)  # the pods started, by name
    argv: dict[str, list[str]] = field(default_factory=dict)  # each started pod's command line
    restarts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)

    def secret(self, name: str, key: str) -> str:
        return secret_data(find(self.objs, "Secret", name))[key]

    def expose(self, service: str, pod: Pod, *sidecars: Pod) -> None:
        """The Service's ports now reach the pod's local ports (a port a sidecar declares: the sidecar's)."""
        self.service_pod[service] = pod.name
        for port in find(self.objs, "Service", service)["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            (owner,) = [p for p in (pod, *sidecars) if p.declares(target)] or [pod]
            local = owner.local_port(target)
            self.services[f"{service}:{port['port']}"] = f"127.0.0.1:{local}"

    def to_loopback(self, text: str) -> str:
        for address, local in sorted(self.services.items(), key=lambda item: -len(item[0])):
            text = re.sub(rf"(?<![\w.-]){re.escape(address)}(?![\w.-])", local, text)
        return text

    def service_of(self, port: int) -> str | None:
        """The Service (``name:port``) that a loopback port stands for."""
        return next((name for name, local in self.services.items() if local == f"127.0.0.1:{port}"), None)

    def dagster_instance_to_loopback(self, text: str) -> str:
        """dagster.yaml names its PostgreSQL by hostname and port apart."""
        instance = yaml.safe_load(text)
        database = instance["storage"]["postgres"]["postgres_db"]
        host, port = self.services[f"{database['hostname']}:{database['port']}"].split(":")
        database.update(hostname=host, port=int(port))
        if self.dagster_run_launcher is not None:
            instance["run_launcher"] = self.dagster_run_launcher
        return yaml.safe_dump(instance, sort_keys=False)

    def feast_auth_replaced(self, text: str) -> str:
        """feature_store.yaml with ``feast_auth`` in place of a Kubernetes ``auth`` (Feast expands its
        ${VARS} later); any other auth stays."""
        config = yaml.safe_load(text)
        if (config.get("auth") or {}).get("type") != "kubernetes":
            return text
        config["auth"] = self.feast_auth
        return yaml.safe_dump(config, sort_keys=False)

    def dagster_workspace_to_loopback(self, text: str) -> str:
        """workspace.yaml names each gRPC server by host and port apart."""
        workspace = yaml.safe_load(text)
        for entry in workspace["load_from"]:
            server = entry.get("grpc_server")
            if server is not None:
                host, port = self.services[f"{server['host']}:{server['port']}"].split(":")
                server.update(host=host, port=int(port))
        return yaml.safe_dump(workspace, sort_keys=False)

    def _volume_files(self, volume: dict[str, Any]) -> dict[str, str]:
        if "configMap" in volume:
            return dict(find(self.objs, "ConfigMap", volume["configMap"]["name"])["data"])
        if "secret" in volume:
            data = secret_data(find(self.objs, "Secret", volume["secret"]["secretName"]))
            items = volume["secret"].get("items")
            return {item["path"]: data[item["key"]] for item in items} if items else data
        return {}

    def pod(
        self,
        name: str,
        spec: dict[str, Any],
        container: dict[str, Any],
        image: str | None = None,
        volumes_of: str | None = None,
    ) -> Pod:
        """The container ``container`` of pod ``name`` (pod spec ``spec``) on this machine.

        ``volumes_of``: the name of the pod whose volumes this one shares (a sidecar, another container of the
        same pod: an emptyDir is one directory for both)."""
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        mounts: dict[str, Path] = {}
        for mount in container.get("volumeMounts", []):
            volume = volumes.get(mount["name"], {})
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            owner = volumes_of or name
            folder = self.root / "pvc" / claim if claim else self.root / "pods" / owner / mount["name"]
            folder.mkdir(parents=True, exist_ok=True)
            mounts[mount["mountPath"]] = folder / mount["subPath"] if "subPath" in mount else folder
        ports = {port["name"]: (port["containerPort"], closed_port()) for port in container.get("ports", [])}
        workdir = self.root / "pods" / name / "workdir"
        workdir.mkdir(parents=True, exist_ok=True)
        pod = Pod(name, container, {}, mounts, ports, workdir)
        for mount in container.get("volumeMounts", []):
            files = self._volume_files(volumes.get(mount["name"], {}))
            target = mounts[mount["mountPath"]]
            folder = target.parent if "subPath" in mount else target
            for file_name, content in files.items():
                if file_name == "dagster.yaml":
                    content = self.dagster_instance_to_loopback(content)
                elif file_name == "workspace.yaml":
                    content = self.dagster_workspace_to_loopback(content)
                elif file_name == "feature_store.yaml" and self.feast_auth is not None:
                    content = self.feast_auth_replaced(content)
                (folder / file_name).write_text(pod.relocate(self.to_loopback(content)))
        base = image_env(image or container["image"])
        # PATH and PYTHONPATH name this machine's programs and code, not pod paths: a checkout under /tmp
        # must not be moved into the pod's /tmp emptyDir.
        env = {key: value if key in _MACHINE_PATHS else pod.relocate(value) for key, value in base.items()}
        for source in container.get("envFrom", []):
            if set(source) != {"configMapRef"}:
                raise RehearsalError(f"{name}: unsupported envFrom {source}")
            data = find(self.objs, "ConfigMap", source["configMapRef"]["name"])["data"]
            env.update({key: pod.relocate(self.to_loopback(value)) for key, value in data.items()})
        fields = {"status.podIP": POD_IP, "metadata.namespace": NAMESPACE, "metadata.name": f"{name}-0"}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = k8s_expand(pod.relocate(self.to_loopback(item["value"])), env)
            elif "secretKeyRef" in item["valueFrom"]:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = self.secret(ref["name"], ref["key"])
            elif "fieldRef" in item["valueFrom"]:
                env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
            else:
                raise RehearsalError(f"{name}: unsupported env source {item}")
        pod.env = env
        return pod

    def command(self, pod: Pod) -> list[str]:
        """command + args after the kubelet's ``$(VAR)`` expansion, paths moved to the local mounts."""
        argv = [*pod.container.get("command", []), *pod.container.get("args", [])]
        return [pod.relocate(k8s_expand(word, pod.env)) for word in argv]

    def start(self, pod: Pod, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start the pod's process in a process group of its own, its output in ``logs/<pod>.log``."""
        log = (self.root / "logs" / f"{pod.name}.log").open("ab")
        process = subprocess.Popen(
            argv, env=pod.env, cwd=pod.workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.processes.append((pod.name, process))
        self.pods[pod.name] = pod
        self.argv[pod.name] = argv
        return process

    def restart_exited(self, names: list[str]) -> list[str]:
        """The kubelet's ``restartPolicy: Always`` for these long-running pods: each one whose process has
        exited is started again (the Feast server exits while the registry has no project yet, as its pod
        would crash-loop). The pods restarted."""
        restarted = []
        for name in names:
            if name in self.pods and self.process(name).poll() is not None:
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self.start(self.pods[name], self.argv[name])
                restarted.append(name)
        return restarted

    def process(self, name: str) -> subprocess.Popen[bytes]:
        return next(p for pod, p in reversed(self.processes) if pod == name)

    def finish(self, pod: Pod, process: subprocess.Popen[bytes], deadline: float) -> str:
        """Wait for a process that runs to completion (an init container, a job): its output, or a failure."""
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            raise RehearsalError(f"{pod.name} did not finish in time:\n{self.log(pod.name)}") from None
        output = (self.root / "logs" / f"{pod.name}.log").read_text(errors="replace")
        if process.returncode != 0:
            raise RehearsalError(f"{pod.name} exited {process.returncode}:\n{output[-6000:]}")
        return output

    def log(self, name: str) -> str:
        path = self.root / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def wait(self, pod: Pod, ready: Callable[[], bool], deadline: float) -> None:
        """Until ``ready()``; fails with the pod's log when its process exits or time runs out."""
        process = self.process(pod.name)
        while True:
            try:
                if ready():
                    return
            except (requests.RequestException, OSError):
                pass
            if process.poll() is not None:
                raise RehearsalError(f"{pod.name} exited with {process.returncode}:\n{self.log(pod.name)}")
            if time.monotonic() > deadline:
                raise RehearsalError(f"{pod.name} not ready in time:\n{self.log(pod.name)}")
            time.sleep(0.25)

    def wait_started(self, pod: Pod, deadline: float) -> None:
        """Until the pod's rendered startup probe (its readiness probe without one) succeeds."""
        kind = "startupProbe" if "startupProbe" in pod.container else "readinessProbe"
        self.wait(pod, lambda: pod.probe(kind) in (0, 200), deadline)

    def stop(self) -> None:
        """SIGTERM to every process group started here, then SIGKILL to whatever is left of them and of
        their descendants (run workers, server workers), even those that left the group. SIGINT and SIGTERM
        wait until it is done (a second Ctrl-C must not leave servers running)."""
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            self._stop_all()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _stop_all(self) -> None:
        # psutil.Process objects, not pids: killing one checks it is still the process seen here.
        descendants: list[psutil.Process] = []
        for _, process in self.processes:
            with contextlib.suppress(psutil.Error):
                descendants.extend(psutil.Process(process.pid).children(recursive=True))
        for _, process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for name, process in reversed(self.processes):
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                print(f"[cluster] {name} ignored SIGTERM for 10 s", flush=True)
                process.kill()
            process.wait()
            for pid in group_members(process.pid):  # workers and helpers the leader left behind
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for child in descendants:
            with contextlib.suppress(psutil.Error):
                child.kill()
