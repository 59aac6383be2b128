"""One outcome per check over several months, for a run that validates a range of months in one step.

Dagster records one result per asset check and run. A range run's result passes when every month passed;
otherwise it names each month that failed (or was not evaluated) with that month's message (months with
the same message together), takes the
most severe failing severity (a blocking ERROR in any month blocks the whole range downstream), and sums
the months' numeric metadata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hybridops.quality.validate import CheckOutcome, Severity

NOT_EVALUATED = "not evaluated"


def combine_months(
    name: str, blocking: bool, by_month: Mapping[str, CheckOutcome | None], not_evaluated_why: str
) -> CheckOutcome | None:
    """The check ``name`` over ``by_month`` (None for a month where it was not evaluated).

    A single month's outcome is returned as it is (None stays None).
    """
    if len(by_month) == 1:
        return next(iter(by_month.values()))
    failed = {m: o for m, o in by_month.items() if o is not None and not o.passed}
    skipped = [m for m, o in by_month.items() if o is None]
    evaluated = [o for o in by_month.values() if o is not None]
    if not evaluated:
        return None
    severity: Severity = "ERROR" if any(o.severity == "ERROR" for o in failed.values()) else "WARN"
    if not failed and not skipped:
        months = list(by_month)
        last = evaluated[-1]
        message = f"passed in every month {months[0]}..{months[-1]} ({months[-1]}: {last.message})"
        severity = last.severity
    else:
        # Months that failed the same way are said once (a broken file fails every month alike).
        alike: dict[str, list[str]] = {}
        for month, outcome in failed.items():
            alike.setdefault(outcome.message, []).append(month)
        parts = [f"{', '.join(months)}: {message}" for message, months in alike.items()]
        if skipped:
            parts.append(f"{NOT_EVALUATED} in {', '.join(skipped)} ({not_evaluated_why})")
        message = "; ".join(parts)
    metadata: dict[str, float | int | str] = {}
    for outcome in evaluated:
        for key, value in outcome.metadata.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                previous = metadata.get(key, 0)
                metadata[key] = (previous if isinstance(previous, int | float) else 0) + value
    metadata["months_failed"] = ", ".join([*failed, *skipped]) or "none"
    return CheckOutcome(name, not failed and not skipped, severity, blocking, message, metadata)


def combine_all(
    declared: Sequence[tuple[str, bool]],
    by_month: Mapping[str, Sequence[CheckOutcome]],
    not_evaluated_why: str,
) -> dict[str, CheckOutcome | None]:
    """:func:`combine_months` for every declared check, by check name."""
    outcomes = {month: {o.name: o for o in checks} for month, checks in by_month.items()}
    return {
        name: combine_months(
            name, blocking, {month: found.get(name) for month, found in outcomes.items()}, not_evaluated_why
        )
        for name, blocking in declared
    }
