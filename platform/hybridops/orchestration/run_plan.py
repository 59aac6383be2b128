"""The runs ``hybridops run`` executes for some months, in order.

Dimensions first, then the months, then the report; consecutive months are one run (a partition range
executed in-process) when they are also contiguous in the instance's partition key order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hybridops.months import next_month

DIMENSIONS_JOB = "dimensions"
MONTHLY_JOB = "monthly_partition"
REPORT_JOB = "report"
TRAINING_JOB = "training"
SCORING_JOB = "scoring"


@dataclass(frozen=True)
class PlannedRun:
    job: str
    partition: str | None = None
    run_config: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    last_partition: str | None = None  # set for a run over the range partition..last_partition

    @property
    def partitions(self) -> str | None:
        """``2013-01``, ``2013-01..2013-12`` for a range run, or None."""
        if self.last_partition and self.last_partition != self.partition:
            return f"{self.partition}..{self.last_partition}"
        return self.partition

    @property
    def label(self) -> str:
        return f"{self.job} {self.partitions}" if self.partitions else self.job

    def execution_args(self) -> dict[str, Any]:
        """``partition_key`` for one partition, Dagster's range tags for several (one single-run backfill)."""
        if self.last_partition and self.last_partition != self.partition:
            return {
                "partition_key": None,
                "tags": {
                    **self.tags,
                    "dagster/asset_partition_range_start": self.partition,
                    "dagster/asset_partition_range_end": self.last_partition,
                },
            }
        return {"partition_key": self.partition, "tags": self.tags}


def month_spans(months: list[str]) -> list[tuple[str, str]]:
    """Consecutive months grouped into ``(first, last)`` spans, in order."""
    spans: list[tuple[str, str]] = []
    for month in months:
        if spans and next_month(spans[-1][1]) == month:
            spans[-1] = (spans[-1][0], month)
        else:
            spans.append((month, month))
    return spans


def plan_runs(months: list[str], keys: list[str] | None = None) -> list[PlannedRun]:
    """Dimensions first (they are the references of every month), then the months, then the report.

    Consecutive months are one run (a partition range executed in-process): a year is one run of ten
    steps rather than twelve runs of ten. ``keys`` is the instance's partition key order (default: the
    months themselves, in order).
    """
    spans = key_ordered_spans(months, keys if keys is not None else sorted(months))
    return [
        PlannedRun(DIMENSIONS_JOB),
        *(PlannedRun(MONTHLY_JOB, first, last_partition=last) for first, last in spans),
        PlannedRun(REPORT_JOB),
    ]


def key_ordered_spans(months: list[str], keys: list[str]) -> list[tuple[str, str]]:
    """Consecutive months grouped into spans that are also contiguous in the partition key order.

    A range run covers the keys between its first and last key in the instance's order, and monthly keys
    are stored in arrival order: months that arrived out of order are not one range.
    """
    index = {key: position for position, key in enumerate(keys)}
    spans: list[tuple[str, str]] = []
    for first, last in month_spans(sorted(months)):
        span = [first]
        month = first
        while month != last:
            month = next_month(month)
            if index[month] == index[span[-1]] + 1:
                span.append(month)
            else:
                spans.append((span[0], span[-1]))
                span = [month]
        spans.append((span[0], span[-1]))
    return spans
