"""Step retries of the steps that talk to services: transient errors only, backoff and jitter from settings.

``@transient_retries`` goes under ``@dg.asset`` on the steps that talk to MLflow, PostgreSQL, Redis or the
online store. When the step raises, ``hybridops.orchestration.faults.is_transient`` decides: a service
briefly away (connection refused or reset, timeout, 503) asks Dagster for another attempt after the delay
of a ``dg.RetryPolicy`` built from ``settings.orchestration`` (``step_retries``,
``step_retry_delay_seconds``, exponential backoff, plus-minus jitter); anything else (a bad file, a wrong
setting, a failed check) fails the step at once, and the steps after it are skipped.

Why not ``@dg.asset(retry_policy=...)``: the decorator's policy is fixed when the module is imported,
before the settings of the process that runs the step are read, and Dagster's policy retries every
error, data errors included. Here the policy is read when the step runs, and the classification is the
one in hybridops.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import dagster as dg

from dagster_project.resources import HybridopsResource
from hybridops.orchestration.faults import describe, is_transient
from hybridops.settings import OrchestrationSettings

F = TypeVar("F", bound=Callable[..., Any])


def step_retry_policy(settings: OrchestrationSettings) -> dg.RetryPolicy:
    """The retry policy of service steps: (2^n - 1) x delay before the n-th retry, +/- one delay of jitter."""
    return dg.RetryPolicy(
        max_retries=settings.step_retries,
        delay=settings.step_retry_delay_seconds,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )


def _retry_or_raise(error: Exception, kwargs: dict[str, Any]) -> None:
    """Raise ``dg.RetryRequested`` for a transient ``error`` with retries left; return to re-raise it."""
    if isinstance(error, dg.Failure | dg.RetryRequested) or not is_transient(error):
        return
    resource = next((v for v in kwargs.values() if isinstance(v, HybridopsResource)), HybridopsResource())
    policy = step_retry_policy(resource.settings().orchestration)
    context = dg.OpExecutionContext.get()
    attempt = context.retry_number + 1
    if attempt > policy.max_retries:
        return
    wait = max(0.0, float(policy.calculate_delay(attempt)))
    context.log.warning(
        f"transient error, retry {attempt} of {policy.max_retries} in {wait:.1f} s: {describe(error)}"
    )
    raise dg.RetryRequested(max_retries=policy.max_retries, seconds_to_wait=wait) from error


def transient_retries(fn: F) -> F:
    """Retry the step ``fn`` after transient errors (see the module); its signature is kept for Dagster."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator_step(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as error:
                _retry_or_raise(error, kwargs)
                raise

        return generator_step  # type: ignore[return-value]

    @functools.wraps(fn)
    def step(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            _retry_or_raise(error, kwargs)
            raise

    return step  # type: ignore[return-value]
