"""Scenario 17 (issue 14): a PostgreSQL role per component owning only its database, and password rotation.

Rendered: each client gets the login of its own role (user name and the ``<role>-password`` key of the
PostgreSQL Secret), none but the PostgreSQL container the superuser's. Live: the chart's PostgreSQL (its
rendered Secret and role script, run by the rehearsal's emulation of the image's entrypoint): each role
reads and writes its own database and cannot open another's, has no superuser, CREATEDB or CREATEROLE;
re-running the script moves an older release's objects (owned by the superuser) to the role, and applies
a rotated password: the new one logs in, the old one is refused, a client rebuilt from the rendered env
(what a restarted pod gets) reconnects.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2
import pytest
import yaml
from deploy_support import CASES, containers, find, objects, pod_specs
from tools import missing, require_tool

from hybridops.deploy import chart
from hybridops.rehearsal.kubelet import Pod
from hybridops.rehearsal.postgres import MissingProgram, chart_postgresql
from hybridops.rehearsal.topology import Cluster, workload

PROFILE = "hybrid"
ROLE_DATABASES = {"dagster": ["dagster"], "mlflow": ["mlflow", "mlflow_auth"], "feast": ["feast"]}
LAKEHOUSE = {"hybridops": {"config": {"warehouse": {"backend": "lakehouse"}}}}


def _pg_refs(container: dict[str, Any]) -> dict[str, str]:
    """env name -> key of the PostgreSQL Secret it reads."""
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
        for e in container.get("env", [])
        if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "hybridops-postgresql"
    }


# --- rendered ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "profile", "files"), CASES, ids=[c[0] for c in CASES])
def test_only_postgresql_itself_gets_the_superuser_password(case: str, profile: str, files: tuple) -> None:
    objs = objects(profile, files)
    instance = next((o for o in objs if o["metadata"]["name"] == "hybridops-dagster-instance"), None)
    run_pod = []
    if instance is not None:
        launcher = yaml.safe_load(instance["data"]["dagster.yaml"])["run_launcher"]["config"][
            "run_k8s_config"
        ]
        run_pod = [("dagster-run", launcher["container_config"])]
    seen = set()
    for name, _, spec in [*pod_specs(objs)]:
        for container in containers(spec):
            for env, key in _pg_refs(container).items():
                seen.add(key)
                assert key != "password" or name == "StatefulSet/hybridops-postgresql", (case, name, env)
    for name, container in run_pod:
        for env, key in _pg_refs(container).items():
            assert key != "password", (case, name, env)
    if any(o["kind"] == "Secret" and o["metadata"]["name"] == "hybridops-postgresql" for o in objs):
        assert seen and "password" not in seen  # the superuser's key is mounted as a file, never in env


def test_each_client_logs_in_as_its_own_role() -> None:
    objs = tuple(chart.manifests(chart.render(PROFILE, [], overrides=LAKEHOUSE)))
    instance = yaml.safe_load(find(objs, "ConfigMap", "hybridops-dagster-instance")["data"]["dagster.yaml"])
    database = instance["storage"]["postgres"]["postgres_db"]
    assert database["username"] == "dagster" and database["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    feast = yaml.safe_load(find(objs, "Secret", "hybridops-feast")["stringData"]["feature_store.yaml"])
    assert feast["registry"]["path"].startswith("postgresql+psycopg://feast:${FEAST_PG_PASSWORD}@")
    expected = {
        "Deployment/hybridops-mlflow": {"PG_PASSWORD": "mlflow-password"},
        "Deployment/hybridops-feast": {"FEAST_PG_PASSWORD": "feast-password"},
        "Deployment/hybridops-dagster-webserver": {"DAGSTER_PG_PASSWORD": "dagster-password"},
        "Deployment/hybridops-dagster-daemon": {"DAGSTER_PG_PASSWORD": "dagster-password"},
        "Deployment/hybridops-exporter": {
            "DAGSTER_PG_PASSWORD": "dagster-password",
            "PG_PASSWORD": "feast-password",
            "WAREHOUSE_PG_PASSWORD": "lakehouse-password",
        },
        "Deployment/hybridops-inference": {
            "PG_PASSWORD": "feast-password",
            "WAREHOUSE_PG_PASSWORD": "lakehouse-password",
        },
    }
    specs = {name: spec for name, _, spec in pod_specs(objs)}
    for name, refs in expected.items():
        merged: dict[str, str] = {}
        for container in containers(specs[name]):
            merged.update(_pg_refs(container))
        assert merged == refs, (name, merged)
    (server,) = [c for c in specs["Deployment/hybridops-mlflow"]["containers"] if c["name"] == "mlflow"]
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://mlflow:$(PG_PASSWORD)@")
    assert env["MLFLOW_AUTH_DATABASE_URI"].endswith("/mlflow_auth")
    (inference,) = specs["Deployment/hybridops-inference"]["containers"]
    env = {e["name"]: e.get("value") for e in inference["env"]}
    assert env["HYBRIDOPS_FEAST__REGISTRY"].startswith("postgresql+psycopg://feast:$(PG_PASSWORD)@")
    assert env["HYBRIDOPS_WAREHOUSE__CATALOG_URL"].startswith(
        "postgresql+psycopg2://lakehouse:$(WAREHOUSE_PG_PASSWORD)@"
    )


def test_an_external_server_keeps_its_one_login() -> None:
    objs = objects("hybrid", (chart.CI_DIR / "external-databases-values.yaml",))
    assert not [o for o in objs if o["metadata"]["name"] == "hybridops-postgresql"]
    instance = yaml.safe_load(find(objs, "ConfigMap", "hybridops-dagster-instance")["data"]["dagster.yaml"])
    assert instance["storage"]["postgres"]["postgres_db"]["username"] == "hybridops"


# --- live ---------------------------------------------------------------------------------------------------------
@dataclass
class Server:
    cluster: Cluster
    pod: Pod
    port: int

    def url(self, user: str, password: str, database: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def password(self, role: str) -> str:
        return (self.pod.mounts["/run/secrets/postgresql"] / f"{role}-password").read_text()

    def rerun_script(self) -> None:
        """The role script again, as `kubectl exec ... sh /docker-entrypoint-initdb.d/create-databases.sh`."""
        env = {
            **self.pod.env,
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGPASSWORD": self.cluster.secret("hybridops-postgresql", "password"),
        }
        script = self.pod.mounts["/docker-entrypoint-initdb.d"] / "create-databases.sh"
        subprocess.run(["sh", str(script)], env=env, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    for tool in ("psql", "pg_isready", "initdb", "postgres"):
        require_tool(tool)
    cluster = Cluster(
        tuple(chart.manifests(chart.render(PROFILE, [], overrides=LAKEHOUSE))), tmp_path_factory.mktemp("pg")
    )
    with contextlib.ExitStack() as cleanup:
        try:
            pod = cleanup.enter_context(chart_postgresql(cluster))
        except MissingProgram as exc:
            missing(str(exc), "apt-get install postgresql (Debian package)")
        cleanup.callback(cluster.stop)
        yield Server(cluster, pod, pod.local_port("postgresql"))


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(psycopg2.connect(url, connect_timeout=5)) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else []


def test_each_role_owns_its_database_and_opens_no_other(server: Server) -> None:
    roles = {**ROLE_DATABASES, "lakehouse": ["lakehouse"]}
    for role, databases in roles.items():
        password = server.password(role)
        for database in databases:
            url = server.url(role, password, database)
            _query(url, f"CREATE TABLE probe_{role} (x int); INSERT INTO probe_{role} VALUES (1)")
            assert _query(url, f"SELECT x FROM probe_{role}") == [(1,)]
        (flags,) = _query(
            server.url(role, password, databases[0]),
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = current_user",
        )
        assert flags == (False, False, False, False, False), role
        for other, other_databases in roles.items():
            if other == role:
                continue
            for database in [*other_databases, "postgres"]:
                with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
                    psycopg2.connect(server.url(role, password, database), connect_timeout=5)
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(
                server.url(role, server.password("feast" if role != "feast" else "dagster"), databases[0])
            )


def test_rerunning_the_script_hands_an_older_releases_objects_to_the_role(server: Server) -> None:
    superuser = server.url("hybridops", server.cluster.secret("hybridops-postgresql", "password"), "feast")
    _query(
        superuser,
        "CREATE TABLE legacy_registry (x int); INSERT INTO legacy_registry VALUES (7); CREATE TYPE legacy_state AS ENUM ('a')",
    )
    feast = server.url("feast", server.password("feast"), "feast")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        _query(feast, "SELECT x FROM legacy_registry")
    server.rerun_script()
    assert _query(feast, "SELECT x FROM legacy_registry") == [(7,)]
    assert _query(feast, "SELECT pg_get_userbyid(typowner) FROM pg_type WHERE typname = 'legacy_state'") == [
        ("feast",)
    ]


def test_rotating_a_role_password(server: Server) -> None:
    """Rotate mlflow's: a new value in the Secret (the kubelet updates the mounted file), the script again;
    the old password is refused for new logins, a connection opened before keeps working until it closes,
    and the client env of a restarted pod (the rendered URL with the new Secret value) reconnects."""
    old = server.password("mlflow")
    before = psycopg2.connect(server.url("mlflow", old, "mlflow"), connect_timeout=5)
    new = "rotated" + old[::-1][:25]
    (server.pod.mounts["/run/secrets/postgresql"] / "mlflow-password").write_text(new)
    server.rerun_script()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(server.url("mlflow", old, "mlflow"), connect_timeout=5)
    with before.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    before.close()
    # A restarted MLflow pod: its env rendered again with the rotated Secret value.
    objs = server.cluster.objs
    _spec, container = workload(objs, "Deployment", "hybridops-mlflow", container="mlflow")
    env = {e["name"]: e for e in container["env"]}
    assert env["PG_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "mlflow-password"
    uri = env["MLFLOW_BACKEND_STORE_URI"]["value"].replace("$(PG_PASSWORD)", new)
    uri = server.cluster.to_loopback(uri).replace("postgresql+psycopg://", "postgresql://")
    assert _query(uri, "SELECT current_user") == [("mlflow",)]
    # Other roles are untouched.
    assert _query(server.url("dagster", server.password("dagster"), "dagster"), "SELECT current_user") == [
        ("dagster",)
    ]


@dg.op
def _one() -> int:
    return 1


@dg.job
def _tiny() -> None:
    _one()


def test_dagster_builds_and_uses_its_instance_as_the_dagster_role(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rendered dagster.yaml storage, only its host and port moved to the server: Dagster creates its
    schema (tables, indexes, migrations) as the non-superuser owner of its database and runs a job."""
    from dagster._core.instance.ref import InstanceRef

    instance_yaml = find(server.cluster.objs, "ConfigMap", "hybridops-dagster-instance")["data"][
        "dagster.yaml"
    ]
    storage = yaml.safe_load(instance_yaml)["storage"]
    storage["postgres"]["postgres_db"].update(hostname="127.0.0.1", port=server.port)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", server.password("dagster"))
    ref = InstanceRef.from_dir(str(tmp_path), overrides={"storage": storage, "telemetry": {"enabled": False}})
    with dg.DagsterInstance.from_ref(ref) as instance:
        assert _tiny.execute_in_process(instance=instance).success
        assert len(instance.get_run_records()) == 1
    owners = _query(
        server.url("dagster", server.password("dagster"), "dagster"),
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'runs'",
    )
    assert owners == [("dagster",)]


def test_the_upgrade_hook_applies_a_rotated_password(server: Server) -> None:
    """The post-upgrade hook Job, as rendered (its command, env and mounts; only the Service moved to
    loopback): run after the Secret's feast password changed, the new one logs in and the old one is refused,
    without a `kubectl exec` into the server."""
    job = find(server.cluster.objs, "Job", "hybridops-postgresql-roles")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-upgrade,post-rollback"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    assert not [e for e in container.get("env", []) if "valueFrom" in e]  # the superuser's password: a file
    old = server.password("feast")
    new = "hooked" + old[::-1][:25]
    (server.pod.mounts["/run/secrets/postgresql"] / "feast-password").write_text(new)
    pod = server.cluster.pod("postgresql-roles", spec, container, image=server.pod.container["image"])
    for current in server.pod.mounts["/run/secrets/postgresql"].iterdir():  # the Secret's current values
        (pod.mounts["/run/secrets/postgresql"] / current.name).write_text(current.read_text())
    assert f"127.0.0.1:{server.port}" in pod.env["POSTGRES_DB"]
    subprocess.run(server.cluster.command(pod), env=pod.env, check=True, capture_output=True, timeout=120)
    assert _query(server.url("feast", new, "feast"), "SELECT current_user") == [("feast",)]
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(server.url("feast", old, "feast"), connect_timeout=5)
