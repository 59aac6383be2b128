"""A failed step is reported by the error its own code raised, not by Dagster's wrapper around it."""

from __future__ import annotations

import dagster as dg
import pytest

from hybridops.orchestration.run_results import step_error_text


@dg.asset
def registry_step() -> None:
    raise RuntimeError("table stream_feature_views already exists\n[SQL: CREATE TABLE ...]")


def test_the_cause_under_dagsters_wrapper_is_what_the_user_reads() -> None:
    result = dg.materialize([registry_step], raise_on_error=False)
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    assert error is not None and error.cls_name == "DagsterExecutionStepExecutionError"
    assert step_error_text(error) == "RuntimeError: table stream_feature_views already exists"


@pytest.mark.parametrize(("message", "expected"), [("\n\n  boom  \nmore", "boom"), ("", "KeyError")])
def test_an_error_without_a_cause_keeps_its_first_line(message: str, expected: str) -> None:
    error = dg.materialize([registry_step], raise_on_error=False).get_step_failure_events()[0]
    info = error.step_failure_data.error
    assert info is not None and info.cause is not None
    bare = info.cause._replace(message=message, cls_name="KeyError", cause=None)
    assert step_error_text(bare) == expected
