"""PostgreSQL on this machine: a throwaway server on a loopback port, initialised as the chart's pod is."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2

from hybridops.rehearsal.kubelet import Pod, RehearsalError, closed_port
from hybridops.rehearsal.topology import Cluster, check, replace_once, workload


class MissingProgram(RehearsalError):
    """A program the rehearsal runs is not installed on this machine (the message names its package)."""


def pg_binary(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, or where Debian keeps it (``/usr/lib/postgresql/<v>/bin``)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@contextmanager
def throwaway_postgres(user: str = "hybridops", password: str | None = None) -> Iterator[str]:
    """Start PostgreSQL on a free loopback port and yield ``postgresql://user:password@127.0.0.1:port/postgres``.

    Without ``password`` every login is trusted (the URL then carries ``unused``); with one, the server
    checks it (scram-sha-256), so a client only gets in with exactly that password. Raises
    :class:`MissingProgram` when the server binaries are missing, or when running as root without a
    ``postgres`` user to run them as. The data directory is removed afterwards.
    """
    initdb, postgres = pg_binary("initdb"), pg_binary("postgres")
    if not initdb or not postgres:
        raise MissingProgram(
            "no PostgreSQL server binaries (initdb, postgres): install the Debian package postgresql"
        )
    as_owner: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as its own system user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise MissingProgram(
                "running as root and there is no 'postgres' user to run PostgreSQL as"
            ) from None
        runuser = shutil.which("runuser") or (
            "/usr/sbin/runuser" if Path("/usr/sbin/runuser").exists() else None
        )
        if runuser is None:
            raise MissingProgram("running as root and runuser is missing: apt-get install util-linux")
        as_owner = [runuser, "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="hybridops-pg-"))
    if as_owner:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    auth = ["--auth=trust"]
    if password is not None:
        pwfile = base / "pwfile"
        pwfile.write_text(password + "\n")
        if as_owner:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
    data, port = base / "data", closed_port()
    server: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [*as_owner, initdb, "-D", str(data), "-U", user, *auth, "-E", "UTF8"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        server = subprocess.Popen(
            [*as_owner, postgres, "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(base)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"postgresql://{user}:{password or 'unused'}@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 30
        while True:  # an open port is not enough: the server refuses logins while it starts up
            try:
                psycopg2.connect(url, connect_timeout=1).close()
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RehearsalError("the throwaway PostgreSQL did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def chart_postgresql(cluster: Cluster) -> Iterator[Pod]:
    """The chart's PostgreSQL: the rendered user, password (from the Secret) and init script (a database for
    every client), exposed as its Service. The image's entrypoint is emulated: on an empty data directory it
    creates ``POSTGRES_DB``, then runs ``/docker-entrypoint-initdb.d/*`` (over TCP with the password here,
    where the image uses its local socket)."""
    spec, container = workload(cluster.objs, "StatefulSet", "hybridops-postgresql")
    env = {item["name"]: item.get("value", "") for item in container["env"]}
    password = cluster.secret("hybridops-postgresql", "password")
    with throwaway_postgres(user=env["POSTGRES_USER"], password=password) as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        pod = cluster.pod("postgresql", spec, container)
        container_port = pod.ports["postgresql"][0]
        pod.ports["postgresql"] = (container_port, port)
        cluster.pods["postgresql"] = pod
        cluster.expose("hybridops-postgresql", pod)
        local = {
            **pod.env,
            "POSTGRES_USER": env["POSTGRES_USER"],
            "POSTGRES_DB": env["POSTGRES_DB"],
            "PGHOST": "127.0.0.1",
            "PGPORT": str(port),
            "PGPASSWORD": password,
        }
        check([
            "psql", "-v", "ON_ERROR_STOP=1", "--username", env["POSTGRES_USER"], "--dbname", "postgres",
            "-c", f'CREATE DATABASE "{env["POSTGRES_DB"]}"',
        ], local)  # fmt: skip
        check(["sh", str(pod.mounts["/docker-entrypoint-initdb.d"] / "create-databases.sh")], local)
        # The rendered startup probe (pg_isready) against the local port.
        shell, flag, probe = container["startupProbe"]["exec"]["command"]
        check([shell, flag, replace_once(probe, f"-p {container_port}", f"-p {port}")], local)
        yield pod
