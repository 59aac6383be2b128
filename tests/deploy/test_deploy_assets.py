"""The chart ships exactly the rules and dashboards of infra/."""

import json

import yaml

from hybridops.deploy import assets, chart


def test_chart_copies_of_infra_are_current():
    assert assets.stale() == [], "run: python -m hybridops.deploy.assets"
    assert assets.main(["--check"]) == 0


def test_external_monitoring_ships_every_rule_and_dashboard():
    rendered = chart.render("hybrid", overrides={"monitoring": {"mode": "external"}})
    objects = chart.manifests(rendered)
    rules = [o for o in objects if o["kind"] == "PrometheusRule"]
    shipped = {
        rule["alert"]
        for o in rules
        for group in o["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    source = yaml.safe_load((assets.ROOT / "infra/prometheus/rules/hybridops.yaml").read_text())
    assert shipped == {r["alert"] for g in source["groups"] for r in g["rules"] if "alert" in r}
    dashboards = [o for o in objects if o["kind"] == "ConfigMap" and "dashboard" in o["metadata"]["name"]]
    uids = {json.loads(body)["uid"] for o in dashboards for body in o["data"].values()}
    expected = {
        json.loads(p.read_text())["uid"] for p in (assets.ROOT / "infra/grafana/dashboards").glob("*.json")
    }
    assert uids == expected
