"""The kubelet's part of running one rendered container on this machine.

Emulated: ``$(VAR)`` expansion in env values and commands, ``secretKeyRef`` and ``configMapRef`` resolved
from the rendered Secrets and ConfigMaps, ``fieldRef`` from a pod IP, the image's ``ENV`` (read from its
Dockerfile), and the container's probes sent to its local ports.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from hybridops.errors import HybridopsError

REPO = Path(__file__).resolve().parents[3]
DOCKER_DIR = REPO / "docker"
VENV_BIN = Path(sys.executable).parent
NAMESPACE = "hybridops"
POD_IP = "10.42.0.17"  # status.podIP of every emulated pod: only ever a Host header here


class RehearsalError(HybridopsError):
    """A component of the rehearsed cluster did not start, answer or finish; the message has its log."""


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def k8s_expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of ``$(VAR)`` (defined variables only) and ``$$`` in env values and commands."""
    return _VAR_REF.sub(lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text)


def secret_data(obj: dict[str, Any]) -> dict[str, str]:
    """A Secret's decoded ``data`` and its ``stringData``."""
    data = {key: base64.b64decode(value).decode() for key, value in (obj.get("data") or {}).items()}
    data.update(obj.get("stringData") or {})
    return data


def image_env(image: str) -> dict[str, str]:
    """The ``ENV`` of the image's final stage, read from its Dockerfile (``docker/<repository>.Dockerfile``);
    none for third-party images (PostgreSQL, Redis, Prometheus), whose programs come from this machine."""
    repository = image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    dockerfile = DOCKER_DIR / f"{repository}.Dockerfile"
    if not dockerfile.exists():
        return {"PATH": os.environ["PATH"]}
    text = dockerfile.read_text().replace("\\\n", " ")
    final_stage = text.rsplit("\nFROM ", 1)[-1]
    env: dict[str, str] = {}
    for line in final_stage.splitlines():
        if line.startswith("ENV "):
            for word in shlex.split(line[4:]):
                key, _, value = word.partition("=")
                env[key] = value
    if not env.get("PATH", "").startswith("/opt/venv/bin:"):
        raise RehearsalError(f"{dockerfile}: the image's PATH no longer starts with its /opt/venv/bin")
    env["PATH"] = f"{VENV_BIN}:{os.environ['PATH']}"  # the image's virtualenv is this one
    # The image installs this checkout's platform/ and dagster_project/: the same code here, whichever
    # copy the virtualenv's own install points at.
    env["PYTHONPATH"] = f"{REPO / 'platform'}:{REPO}"
    return env


def closed_port() -> int:
    """A loopback port nothing listens on (free when this returns)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def group_members(group: int) -> list[int]:
    """The live processes of a process group (one that this machine's emulation started: its leader's pid)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":  # pgrp; not a zombie
            members.append(int(stat.parent.name))
    return members


@dataclass
class Pod:
    """One container of a rendered pod on this machine: its volumes are folders, its ports loopback ports."""

    name: str
    container: dict[str, Any]
    env: dict[str, str]
    mounts: dict[str, Path]  # mountPath -> local folder (or file, for a subPath mount)
    ports: dict[str, tuple[int, int]]  # port name -> (containerPort, local port)
    workdir: Path

    def relocate(self, text: str) -> str:
        """Every path under a mount, moved to the mount's local folder."""
        if not self.mounts:
            return text
        pattern = "|".join(re.escape(path) for path in sorted(self.mounts, key=len, reverse=True))
        return re.sub(rf"(?<![\w./-])({pattern})(?=[/\s\"',:;)]|$)", lambda m: str(self.mounts[m[1]]), text)

    def declares(self, port: str | int) -> bool:
        """Whether the container declares this port (by name, or by number)."""
        if isinstance(port, str):
            return port in self.ports
        return any(container == port for container, _ in self.ports.values())

    def local_port(self, port: str | int) -> int:
        if isinstance(port, str):
            return self.ports[port][1]
        return next(local for container, local in self.ports.values() if container == port)

    def url(self, port: str | int = "http") -> str:
        return f"http://127.0.0.1:{self.local_port(port)}"

    def probe(self, kind: str, timeout: float = 10.0) -> int:
        """The container's rendered probe, sent to this machine: an HTTP status, or 0 for a TCP success."""
        spec = self.container[kind]
        if "httpGet" in spec:
            get = spec["httpGet"]
            url = f"http://127.0.0.1:{self.local_port(get['port'])}{get['path']}"
            return requests.get(url, timeout=timeout).status_code
        if "tcpSocket" in spec:
            with socket.create_connection(("127.0.0.1", self.local_port(spec["tcpSocket"]["port"])), timeout):
                return 0
        raise RehearsalError(f"{self.name}: no HTTP or TCP {kind}")
