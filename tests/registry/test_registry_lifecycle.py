"""Registration, the gate on real models, promotion, rollback and the alias history, on a real MLflow store."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from registry_support import Trained

from hybridops.errors import HybridopsError
from hybridops.modeling.artifact import SHA_TAG
from hybridops.registry import models as reg
from hybridops.registry.client import registry_client
from hybridops.settings import GateSettings, Settings


def register(settings: Settings, trained: Trained, note: str) -> str:
    return reg.register_candidate(
        settings, trained.logged.model_uri, trained.logged.run_id, trained.logged.sha256, note
    )


def aliases(settings: Settings) -> dict[str, str]:
    model = registry_client(settings).get_registered_model(settings.mlflow.model_name)
    return {alias: str(version) for alias, version in model.aliases.items()}


def test_boosters_are_ordered(boosters: dict[str, Trained]) -> None:
    good, fair, poor = (boosters[k].metrics["auc"] for k in ("good", "fair", "poor"))
    assert good > fair + 0.01 and fair > poor + 0.01, (good, fair, poor)
    assert poor < 0.6 < fair


def test_register_sets_challenger_and_copies_the_hash(
    make_settings: Callable[[], Settings], boosters: dict[str, Trained]
) -> None:
    settings = make_settings()
    good = boosters["good"]
    v1 = register(settings, good, "first candidate")
    assert v1 == "1"
    mv = registry_client(settings).get_model_version(settings.mlflow.model_name, v1)
    assert mv.tags[SHA_TAG] == good.logged.sha256
    assert mv.run_id == good.logged.run_id
    assert mv.description == "first candidate"
    assert aliases(settings) == {"challenger": "1"}
    assert reg.champion(settings) is None

    v2 = register(settings, boosters["fair"], "second candidate")
    assert aliases(settings) == {"challenger": v2}
    history = reg.alias_history(settings)
    assert list(history.columns) == reg.EVENT_COLUMNS
    assert history[["alias", "from_version", "to_version"]].values.tolist() == [
        ["challenger", None, "1"],
        ["challenger", "1", "2"],
    ]
    assert "first candidate" in history["reason"].iloc[0]


def test_register_refuses_a_hash_that_is_not_the_runs(
    make_settings: Callable[[], Settings], boosters: dict[str, Trained]
) -> None:
    settings = make_settings()
    good = boosters["good"]
    with pytest.raises(HybridopsError, match="differs from the run"):
        reg.register_candidate(settings, good.logged.model_uri, good.logged.run_id, "0" * 64, "forged")


def test_gate_keeps_the_champion_against_a_worse_candidate_and_promotes_a_better_one(
    make_settings: Callable[[], Settings], boosters: dict[str, Trained]
) -> None:
    settings = make_settings()
    fair, poor, good = boosters["fair"], boosters["poor"], boosters["good"]

    v_fair = register(settings, fair, "fair")
    first = reg.apply_gate(settings, v_fair, fair.metrics, None)
    assert first.promote and "no champion" in first.reason
    assert aliases(settings) == {"champion": v_fair}

    # Both measured on the same holdout: the candidate's and the champion's metrics.
    v_poor = register(settings, poor, "poor")
    with pytest.raises(HybridopsError, match="same data"):
        reg.apply_gate(settings, v_poor, poor.metrics, None)
    refused = reg.apply_gate(settings, v_poor, poor.metrics, fair.metrics)
    assert not refused.promote
    assert f"{poor.metrics['auc']:.4f}" in refused.reason
    assert aliases(settings) == {"champion": v_fair, "challenger": v_poor}  # champion did not move
    mv = registry_client(settings).get_model_version(settings.mlflow.model_name, v_poor)
    assert mv.tags[reg.GATE_TAG] == refused.reason and mv.tags[reg.GATE_PROMOTE_TAG] == "false"

    v_good = register(settings, good, "good")
    accepted = reg.apply_gate(settings, v_good, good.metrics, fair.metrics)
    assert accepted.promote
    assert f"{good.metrics['auc']:.4f}" in accepted.reason and f"{fair.metrics['auc']:.4f}" in accepted.reason
    assert aliases(settings) == {"champion": v_good, "previous_champion": v_fair}
    info = reg.champion(settings)
    assert info is not None and info.version == v_good
    assert info.metrics["auc"] == pytest.approx(good.metrics["auc"])
    assert set(info.aliases) == {"champion"}

    champion_events = reg.alias_history(settings).query("alias == 'champion'")
    assert champion_events["reason"].tolist() == [first.reason, accepted.reason]


def test_margin_from_settings_refuses_a_small_gain(
    make_settings: Callable[[], Settings], boosters: dict[str, Trained]
) -> None:
    settings = make_settings()
    settings.gate = GateSettings(min_auc=0.5, max_brier=0.3, min_auc_improvement=0.5)
    fair, good = boosters["fair"], boosters["good"]
    v_fair = register(settings, fair, "fair")
    reg.promote(settings, v_fair, "bootstrap")
    v_good = register(settings, good, "good")
    decision = reg.apply_gate(settings, v_good, good.metrics, fair.metrics)
    assert not decision.promote and "0.5000" in decision.reason
    assert aliases(settings)["champion"] == v_fair


def test_rollback_restores_the_previous_champion_and_everything_is_recorded(
    make_settings: Callable[[], Settings], boosters: dict[str, Trained]
) -> None:
    settings = make_settings()
    with pytest.raises(HybridopsError, match="not found"):
        reg.promote(settings, "1", "no such model")
    with pytest.raises(HybridopsError, match="no previous champion"):
        reg.rollback(settings, "nothing registered")

    v1 = register(settings, boosters["fair"], "v1")
    with pytest.raises(HybridopsError, match="no version 9"):
        reg.promote(settings, "9", "missing version")
    reg.promote(settings, v1, "first release")
    with pytest.raises(HybridopsError, match="no previous champion") as info:
        reg.rollback(settings, "only one champion so far")
    assert "previous_champion" in str(info.value)

    v2 = register(settings, boosters["good"], "v2")
    assert reg.promote(settings, v2, "better holdout AUC") == (v1, v2)
    assert reg.promote(settings, v2, "again") == (v2, v2)  # no-op, not recorded
    assert aliases(settings) == {"champion": v2, "previous_champion": v1}

    assert reg.rollback(settings, "live AUC dropped") == (v2, v1)
    assert aliases(settings) == {"champion": v1}
    assert reg.resolve(settings, settings.mlflow.model_name).version == v1
    with pytest.raises(HybridopsError, match="no previous champion"):
        reg.rollback(settings, "twice")

    history = reg.alias_history(settings)
    rows = history[["alias", "from_version", "to_version", "reason"]].values.tolist()
    assert rows == [
        ["challenger", None, v1, f"registered version {v1} from run {boosters['fair'].logged.run_id}: v1"],
        ["champion", None, v1, "first release"],
        ["challenger", v1, None, "promoted to champion: first release"],
        ["challenger", None, v2, f"registered version {v2} from run {boosters['good'].logged.run_id}: v2"],
        ["champion", v1, v2, "better holdout AUC"],
        ["previous_champion", None, v1, f"champion {v1} replaced by {v2}: better holdout AUC"],
        ["challenger", v2, None, "promoted to champion: better holdout AUC"],
        ["champion", v2, v1, "rollback: live AUC dropped"],
        ["previous_champion", v1, None, f"rollback restored {v1} as champion: live AUC dropped"],
    ]
    assert (history["model_name"] == settings.mlflow.model_name).all()
    assert (history["actor"] == "hybridops").all()
    assert history["at"].is_monotonic_increasing

    # The registry tells the same story: each event is a tag on every version it involves.
    tagged = {v: reg.version_events(settings, v) for v in (v1, v2)}
    for alias, before, after, reason in rows:
        event = {"alias": alias, "from_version": before, "to_version": after, "reason": reason}
        for version in {before, after} - {None}:
            assert any({k: e[k] for k in event} == event for e in tagged[version]), (
                f"{event} not tagged on version {version}"
            )
    raw = registry_client(settings).get_model_version(settings.mlflow.model_name, v2).tags
    keys = sorted(key for key in raw if key.startswith(reg.EVENT_TAG_PREFIX))
    assert len(keys) == len(tagged[v2]) == 4  # one key per event: none overwrote another
    first_tag = json.loads(raw[keys[0]])
    assert first_tag["alias"] == "challenger" and first_tag["to_version"] == v2


def test_events_carry_actor_and_run_id(
    make_settings: Callable[[], Settings], boosters: dict[str, Trained]
) -> None:
    settings = make_settings()
    v1 = reg.register_candidate(
        settings,
        boosters["good"].logged.model_uri,
        boosters["good"].logged.run_id,
        boosters["good"].logged.sha256,
        actor="ci",
        pipeline_run_id="dagster-run-1",
    )
    reg.promote(settings, v1, "manual", actor="alice", run_id="dagster-run-2")
    history = reg.alias_history(settings)
    assert history[["actor", "run_id"]].values.tolist() == [
        ["ci", "dagster-run-1"],
        ["alice", "dagster-run-2"],
        ["alice", "dagster-run-2"],
    ]
    assert reg.alias_history(settings, model_name="no_such_model").empty
