"""ServiceMonitor, PodMonitor and PrometheusRule objects of the ``external`` monitoring mode validate against
the vendored prometheus-operator CRD schemas (``tests/deploy/crds``), strictly: a field the schema does not
list fails, the way kubeconform's strict mode (and the API server's field validation) rejects it."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_support import CASES, CRD_KINDS, find, objects

from hybridops.deploy import chart

CRD_DIR = Path(__file__).parent / "crds"
CRD_FILES = {
    "ServiceMonitor": "monitoring.coreos.com_servicemonitors.yaml",
    "PodMonitor": "monitoring.coreos.com_podmonitors.yaml",
    "PrometheusRule": "monitoring.coreos.com_prometheusrules.yaml",
}
EXTERNAL = chart.CI_DIR / "external-monitoring-values.yaml"

# The API server validates metadata as ObjectMeta, not through the CRD (whose schema says only
# `type: object`); the chart sets these fields, so these are the ones a typo could hit.
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "namespace": {"type": "string", "minLength": 1},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
}


def _strict(node: Any) -> Any:
    """The schema with ``additionalProperties: false`` wherever it lists properties and allows nothing else.

    A structural CRD schema prunes unknown fields silently unless ``x-kubernetes-preserve-unknown-fields``
    is set; a render relying on a pruned field is a bug, so here it is an error. ``x-kubernetes-*`` keys
    (int-or-string, list and map types, CEL rules) are unknown keywords to jsonschema and ignored.
    """
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd(kind: str) -> dict[str, Any]:
    document = yaml.safe_load((CRD_DIR / CRD_FILES[kind]).read_text())
    assert document["kind"] == "CustomResourceDefinition" and document["spec"]["names"]["kind"] == kind
    return document


@cache
def validator(kind: str, version: str) -> jsonschema.Draft4Validator:
    served = {v["name"]: v for v in crd(kind)["spec"]["versions"] if v.get("served")}
    assert version in served, f"{kind} {version} is not served by the vendored CRD ({sorted(served)})"
    schema = _strict(served[version]["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = _OBJECT_META
    # OpenAPI v3.0 schemas follow draft 4's keywords (boolean exclusiveMaximum, no const). The schema is
    # checked against the metaschema without format checks: patterns are Go RE2 (`(?i)...`), not ECMA.
    meta = jsonschema.Draft4Validator(jsonschema.Draft4Validator.META_SCHEMA)
    assert [e.message for e in meta.iter_errors(schema)] == [], kind
    return jsonschema.Draft4Validator(schema)


def errors(obj: dict[str, Any]) -> list[str]:
    group, version = obj["apiVersion"].split("/")
    assert group == crd(obj["kind"])["spec"]["group"], obj["apiVersion"]
    found = validator(obj["kind"], version).iter_errors(obj)
    return sorted(f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found)


def _crd_objects() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for case, profile, files in CASES:
        for obj in objects(profile, files):
            if obj["kind"] in CRD_KINDS:
                out.append((f"{case}:{obj['kind']}/{obj['metadata']['name']}", obj))
    return out


def test_vendored_crds_parse_and_carry_an_openapi_schema() -> None:
    for kind, name in CRD_FILES.items():
        document = crd(kind)
        assert document["metadata"]["annotations"]["operator.prometheus.io/version"], name
        for version in document["spec"]["versions"]:
            assert version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"], name


def test_external_mode_renders_every_crd_kind() -> None:
    rendered = objects("hybrid", (EXTERNAL,))
    assert {o["kind"] for o in rendered} >= CRD_KINDS
    assert {kind for name, obj in _crd_objects() for kind in [obj["kind"]]} == CRD_KINDS


@pytest.mark.parametrize(("where", "obj"), _crd_objects(), ids=[w for w, _ in _crd_objects()])
def test_monitoring_objects_match_the_crd_schema(where: str, obj: dict[str, Any]) -> None:
    assert errors(obj) == [], where


def _first(kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(o for o in objects("hybrid", (EXTERNAL,)) if o["kind"] == kind))


def _rename(mapping: dict[str, Any], old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


def _typo_servicemonitor_endpoint(obj: dict[str, Any]) -> None:
    _rename(obj["spec"]["endpoints"][0], "interval", "intervall")


def _typo_podmonitor_endpoints(obj: dict[str, Any]) -> None:
    _rename(obj["spec"], "podMetricsEndpoints", "podMetricEndpoints")


def _typo_rule_field(obj: dict[str, Any]) -> None:
    rule = next(r for g in obj["spec"]["groups"] for r in g["rules"] if "annotations" in r)
    _rename(rule, "annotations", "anotations")


def _typo_metadata(obj: dict[str, Any]) -> None:
    _rename(obj["metadata"], "labels", "lables")


def _wrong_interval(obj: dict[str, Any]) -> None:
    obj["spec"]["endpoints"][0]["interval"] = "15 seconds"


def _missing_selector(obj: dict[str, Any]) -> None:
    del obj["spec"]["selector"]


@pytest.mark.parametrize(
    ("kind", "mutate", "expected"),
    [
        ("ServiceMonitor", _typo_servicemonitor_endpoint, "'intervall' was unexpected"),
        ("PodMonitor", _typo_podmonitor_endpoints, "'podMetricEndpoints' was unexpected"),
        ("PrometheusRule", _typo_rule_field, "'anotations' was unexpected"),
        ("PrometheusRule", _typo_metadata, "'lables' was unexpected"),
        ("ServiceMonitor", _wrong_interval, "does not match"),
        ("PodMonitor", _missing_selector, "'selector' is a required property"),
    ],
    ids=["servicemonitor-field", "podmonitor-field", "rule-field", "metadata-field", "pattern", "required"],
)
def test_a_misspelled_or_invalid_field_is_caught(kind: str, mutate: Any, expected: str) -> None:
    obj = _first(kind)
    assert errors(obj) == []
    mutate(obj)
    found = errors(obj)
    assert any(expected in e for e in found), found


def test_the_mlflow_servicemonitor_scrapes_the_metrics_port_without_credentials() -> None:
    """MLflow is scraped through its pod's login-free metrics sidecar: the endpoint names the Service's
    ``metrics`` port and carries no credentials of any kind; the CRD's schema accepts it."""
    monitor = copy.deepcopy(find(objects("hybrid", (EXTERNAL,)), "ServiceMonitor", "hybridops-mlflow"))
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert not {"basicAuth", "authorization", "bearerTokenSecret", "oauth2"} & set(endpoint)
    assert errors(monitor) == []
    endpoint["port"] = 9100  # the CRD wants the port's name here (targetPort takes a number)
    assert errors(monitor) != []
