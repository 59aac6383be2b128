"""Security and good-practice defaults, field by field, over every pod and container of every case."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_support import CASES, containers, find, objects, pod_specs

# The Feast server reviews its callers' tokens (feast.auth.mode=kubernetes, the default).
API_PODS = {
    "Deployment/hybridops-dagster-webserver",
    "Deployment/hybridops-dagster-daemon",
    "Deployment/hybridops-feast",
}


@pytest.fixture(params=CASES, ids=[c[0] for c in CASES])
def case(request: pytest.FixtureRequest) -> tuple:
    _, profile, files = request.param
    return objects(profile, files)


def test_pod_security_context_is_restricted(case: tuple) -> None:
    for name, _, spec in pod_specs(case):
        ctx = spec["securityContext"]
        assert ctx["runAsNonRoot"] is True, name
        assert ctx["runAsUser"] >= 10000, name
        assert ctx["fsGroup"] >= 10000, name
        assert ctx["seccompProfile"]["type"] == "RuntimeDefault", name


def test_containers_are_locked_down(case: tuple) -> None:
    for name, _, spec in pod_specs(case):
        mounts_by_container = {}
        for c in containers(spec):
            where = f"{name}/{c['name']}"
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc.get("privileged", False) is False, where
            assert sc["runAsNonRoot"] is True, where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), (where, kind)
            mounts_by_container[c["name"]] = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert mounts_by_container[c["name"]].get("/tmp") == "tmp", where
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"], name


def test_probes_named_ports_and_distinct_liveness(case: tuple) -> None:
    for name, _, spec in pod_specs(case):
        if name.startswith("Job/"):  # runs to completion, bounded by activeDeadlineSeconds: nothing to probe
            assert spec.get("restartPolicy") == "Never", name
            continue
        for c in spec["containers"]:
            where = f"{name}/{c['name']}"
            assert "readinessProbe" in c and "livenessProbe" in c, where
            assert c["readinessProbe"] != c["livenessProbe"], where
            for port in c.get("ports", []):
                assert port.get("name"), where
            for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = c.get(probe_name, {})
                for handler in ("httpGet", "tcpSocket"):
                    if handler in probe:
                        assert isinstance(probe[handler]["port"], str), (where, probe_name)


def test_service_ports_are_named(case: tuple) -> None:
    for obj in case:
        if obj["kind"] == "Service":
            for port in obj["spec"]["ports"]:
                assert port.get("name") and isinstance(port["targetPort"], str), obj["metadata"]["name"]


def test_service_account_tokens_only_where_the_api_is_used(case: tuple) -> None:
    for name, _, spec in pod_specs(case):
        expected = name in API_PODS
        assert spec["automountServiceAccountToken"] is expected, name
    for obj in case:
        if obj["kind"] == "ServiceAccount":
            assert obj["automountServiceAccountToken"] is False


def test_no_secret_literals_in_env_or_configmaps(case: tuple) -> None:
    import base64
    import json

    for name, _, spec in pod_specs(case):
        for c in containers(spec):
            for env in c.get("env", []):
                if env["name"].endswith(("PASSWORD", "SECRET", "TOKEN", "SECRET_ACCESS_KEY", "_AUTH")):
                    assert "secretKeyRef" in env.get("valueFrom", {}), (name, env["name"])
    secrets = [
        base64.b64decode(value).decode()
        for obj in case
        if obj["kind"] == "Secret"
        for value in obj.get("data", {}).values()
    ]
    assert secrets or all(o["kind"] != "Secret" or "stringData" in o for o in case)
    for obj in case:
        if obj["kind"] != "Secret":
            text = json.dumps(obj)
            for secret in secrets:
                assert secret not in text, (obj["kind"], obj["metadata"]["name"])


def test_images_are_pinned(case: tuple) -> None:
    for name, _, spec in pod_specs(case):
        for c in containers(spec):
            image = c["image"]
            assert ":" in image.rsplit("/", 1)[-1], (name, image)
            assert not image.endswith(":latest"), (name, image)


def test_checksum_annotations_on_config_consumers(case: tuple) -> None:
    for name, meta, spec in pod_specs(case):
        mounted = {v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v}
        mounted |= {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        if mounted:
            annotations = meta.get("annotations", {})
            assert any(k.startswith("checksum/") for k in annotations), name


def test_daemon_is_a_singleton_without_hpa_or_pdb(case: tuple) -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in case}
    if ("Deployment", "hybridops-dagster-daemon") not in names:
        pytest.skip("no Dagster in this case")
    daemon = find(case, "Deployment", "hybridops-dagster-daemon")
    assert daemon["spec"]["replicas"] == 1
    assert ("PodDisruptionBudget", "hybridops-dagster-daemon") not in names
    assert ("HorizontalPodAutoscaler", "hybridops-dagster-daemon") not in names


def test_pdb_and_spread_exactly_when_scaled(case: tuple) -> None:
    pdbs = {o["metadata"]["name"] for o in case if o["kind"] == "PodDisruptionBudget"}
    hpas = {o["spec"]["scaleTargetRef"]["name"] for o in case if o["kind"] == "HorizontalPodAutoscaler"}
    for obj in case:
        if obj["kind"] != "Deployment":
            continue
        name = obj["metadata"]["name"]
        scaled = name in hpas or obj["spec"].get("replicas", 1) > 1
        assert (name in pdbs) is scaled, name
        if scaled:
            assert obj["spec"]["template"]["spec"].get("topologySpreadConstraints"), name


def test_role_is_least_privilege(case: tuple) -> None:
    assert not any(o["kind"] == "ClusterRole" for o in case)
    # The one cluster-wide grant: the Feast server may create TokenReviews (the built-in auth-delegator).
    for obj in case:
        if obj["kind"] == "ClusterRoleBinding":
            assert obj["roleRef"]["name"] == "system:auth-delegator", obj["metadata"]["name"]
            assert [s["name"] for s in obj["subjects"]] == ["hybridops-feast"]
    for obj in case:
        if obj["kind"] == "Role" and obj["metadata"]["name"] == "hybridops-feast":
            assert obj["rules"] == [
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["list"]}
            ]
        elif obj["kind"] == "Role":
            resources = {r for rule in obj["rules"] for r in rule["resources"]}
            assert resources <= {"jobs", "jobs/status", "pods", "pods/log", "events"}
            verbs = {v for rule in obj["rules"] for v in rule["verbs"]}
            assert "*" not in verbs and "escalate" not in verbs


def test_network_policies_default_deny_and_allows(case: tuple) -> None:
    policies = {o["metadata"]["name"]: o for o in case if o["kind"] == "NetworkPolicy"}
    deny = policies["hybridops-default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "hybridops-allow-dns" in policies
    names = {(o["kind"], o["metadata"]["name"]) for o in case}
    if ("StatefulSet", "hybridops-postgresql") in names:
        assert "hybridops-allow-postgresql" in policies
    if ("StatefulSet", "hybridops-redis") in names:
        assert "hybridops-allow-redis" in policies


def test_dagster_instance_config(case: tuple) -> None:
    import yaml

    names = {(o["kind"], o["metadata"]["name"]) for o in case}
    if ("ConfigMap", "hybridops-dagster-instance") not in names:
        pytest.skip("no Dagster in this case")
    cm = find(case, "ConfigMap", "hybridops-dagster-instance")
    instance = yaml.safe_load(cm["data"]["dagster.yaml"])
    launcher = instance["run_launcher"]
    assert launcher["class"] == "K8sRunLauncher"
    config = launcher["config"]
    assert config["job_namespace"] == "hybridops"
    assert config["service_account_name"] == "hybridops-dagster"
    pod = config["run_k8s_config"]["pod_spec_config"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    container = config["run_k8s_config"]["container_config"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"requests", "limits"} <= set(container["resources"])
    assert instance["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert instance["run_monitoring"]["enabled"] is True
    assert instance["run_retries"]["enabled"] is True


def test_external_databases_are_used() -> None:
    from hybridops.deploy.chart import CI_DIR

    objs = objects("hybrid", (Path(CI_DIR / "external-databases-values.yaml"),))
    names = {o["metadata"]["name"] for o in objs}
    assert "hybridops-postgresql" not in names and "hybridops-redis" not in names
    feast = find(objs, "Secret", "hybridops-feast")["stringData"]["feature_store.yaml"]
    assert "postgres.databases.svc.cluster.local:5432/feast" in feast
    assert "redis.databases.svc.cluster.local:6379" in feast
