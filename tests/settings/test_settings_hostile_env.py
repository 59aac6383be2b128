"""Settings from a careless or hostile environment: refused with the setting and the variable named.

``inf`` passed every ``gt=0`` bound (a sigma or a timeout of infinity switches its check off), an empty
``HYBRIDOPS_HOME`` was the current directory, and a tracking URI that is not a store failed deep inside
MLflow; the messages of :func:`hybridops.settings.errors.explain` name the variable to fix.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError

from hybridops.settings import Settings, load_settings
from hybridops.settings.errors import explain, unknown_variables


def _problems(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> list[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises((ValidationError, SettingsError)) as caught:
        load_settings()
    return explain(caught.value, Settings)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"HYBRIDOPS_SPC__SIGMA": "inf"},
            "setting spc.sigma (HYBRIDOPS_SPC__SIGMA='inf'): Input should be a finite",
        ),
        ({"HYBRIDOPS_SPC__SIGMA": "nan"}, "HYBRIDOPS_SPC__SIGMA='nan'): Input should be a finite number"),
        ({"HYBRIDOPS_SERVING__REQUEST_TIMEOUT_SECONDS": "Infinity"}, "serving.request_timeout_seconds"),
        ({"HYBRIDOPS_QUALITY__MAX_BAD_ROW_RATIO": "-0.5"}, "HYBRIDOPS_QUALITY__MAX_BAD_ROW_RATIO='-0.5'"),
        ({"HYBRIDOPS_HOME": ""}, "setting home (HYBRIDOPS_HOME=''): is empty"),
        ({"HYBRIDOPS_SOURCE_DIR": " "}, "setting source_dir (HYBRIDOPS_SOURCE_DIR=' '): is empty"),
        (
            {"HYBRIDOPS_HOME": "/tmp/a\nb"},
            "setting home (HYBRIDOPS_HOME='/tmp/a\\nb'): '/tmp/a\\nb' holds a control",
        ),
        ({"HYBRIDOPS_MLFLOW__TRACKING_URI": "garbage"}, "'garbage' is not a tracking store"),
        ({"HYBRIDOPS_MLFLOW__REGISTRY_URI": "file:///etc/passwd"}, "HYBRIDOPS_MLFLOW__REGISTRY_URI="),
        ({"HYBRIDOPS_SERVING__PORT": "abc"}, "HYBRIDOPS_SERVING__PORT is not a setting of serving"),
        (
            {"HYBRIDOPS_WAREHOUSE__BACKEND": "lakehouse", "HYBRIDOPS_WAREHOUSE__COMMIT_ATTEMPTS": "0"},
            "setting warehouse.commit_attempts (HYBRIDOPS_WAREHOUSE__COMMIT_ATTEMPTS='0')",
        ),
        (
            {"HYBRIDOPS_MONITORING__SOURCE_MAX_AGE_HOURS__FLIGHTS": "-1"},
            "setting monitoring.source_max_age_hours [flights] (HYBRIDOPS_MONITORING__SOURCE_MAX_AGE_HOURS)",
        ),
        (
            {"HYBRIDOPS_SERVING__ALLOWED_HOSTS": "[garb"},
            "setting serving: cannot parse HYBRIDOPS_SERVING__ALLOWED_HOSTS='[garb'",
        ),
        ({"HYBRIDOPS_MODE": "server"}, "settings: mode=server (HYBRIDOPS_MODE)"),
    ],
)
def test_a_bad_value_is_refused_naming_the_setting_and_its_variable(monkeypatch, env, expected):
    problems = _problems(monkeypatch, env)
    assert any(expected in line for line in problems), problems


def test_every_problem_is_listed(monkeypatch):
    problems = _problems(monkeypatch, {"HYBRIDOPS_TELEMETRY": "maybe", "HYBRIDOPS_SPC__SIGMA": "-1"})
    assert len(problems) == 2
    assert any(line.startswith("setting telemetry (HYBRIDOPS_TELEMETRY='maybe')") for line in problems)


def test_finite_values_and_store_urls_still_load(monkeypatch):
    monkeypatch.setenv("HYBRIDOPS_SPC__SIGMA", "1e3")
    monkeypatch.setenv("HYBRIDOPS_MLFLOW__TRACKING_URI", "postgresql+psycopg2://u:p@db/mlflow")
    settings = load_settings()
    assert settings.spc.sigma == 1000.0
    assert load_settings(mlflow={"tracking_uri": "http://127.0.0.1:5000"}).mlflow.tracking_uri


def test_a_misspelt_top_level_variable_is_named_with_the_setting_it_resembles():
    env = {
        "HYBRIDOPS_SEVRING__MAX_FLIGHTS": "10",  # pydantic-settings ignores it: serving keeps its limit
        "HYBRIDOPS_SPCC__SIGMA": "2",
        "HYBRIDOPS_NOTHING_LIKE_IT": "1",
        "HYBRIDOPS_HOME": "/tmp/h",  # settings, and the variables read elsewhere, pass
        "hybridops_serving__port": "1",  # case-insensitive, as the settings read it
        "HYBRIDOPS_GIT_COMMIT": "abc",
        "HYBRIDOPS_STRICT_TOOLS": "1",
        # What Kubernetes injects for Services of a release named hybridops: not a user's spelling.
        "HYBRIDOPS_SERVING_SERVICE_HOST": "10.0.0.1",
        "HYBRIDOPS_SERVING_PORT": "tcp://10.0.0.1:8000",
        "HYBRIDOPS_SERVING_PORT_8000_TCP_ADDR": "10.0.0.1",
        "HYBRIDOPS_PORT": "tcp://10.0.0.2:80",
        "OTHER_SEVRING": "x",
    }
    lines = unknown_variables(Settings, env)
    assert [line.split(" ", 1)[0] for line in lines] == [
        "HYBRIDOPS_NOTHING_LIKE_IT",
        "HYBRIDOPS_SEVRING__MAX_FLIGHTS",
        "HYBRIDOPS_SPCC__SIGMA",
    ]
    assert "(check its spelling)" in lines[0]
    assert "ignored (did you mean HYBRIDOPS_SERVING__MAX_FLIGHTS?)" in lines[1]
    assert "did you mean HYBRIDOPS_SPC__SIGMA?" in lines[2]
    assert all("its settings: feast, first_month, gate, home" in line for line in lines)
