"""Typing one text column of a source file: each value is typed or marked bad, never coerced silently."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# What a value of each kind must be, for the reject message.
KIND_TEXT = {
    "Int64": "an integer (Int64)",
    "float64": "a finite number (float64)",
    "timestamp": "an ISO-8601 instant (timestamp, years 1678 to 2261)",
}
# Instants a nanosecond timestamp can hold (pandas' limits), in whole seconds.
_FIRST_SECOND = -(-pd.Timestamp.min.value // 10**9)
_LAST_SECOND = pd.Timestamp.max.value // 10**9
# Integers past 2**53 lose digits once a column falls back to float: refused rather than altered.
_EXACT_INT = 2.0**53
# Arrow's integer cast also reads hexadecimal ("0x1F" -> 31, and "0xFFFFFFFFFFFFFFFF" -> -1); the sources
# spell numbers in decimal, so such a value is a bad one, never a number.
_X = ord("x")


def typed_column(column: pa.ChunkedArray, kind: str) -> tuple[pd.Series, np.ndarray]:
    """Type one text column; returns the typed series (bad values as null) and the mask of bad values.

    Bad: text that is not a number or instant of the kind, an integer with a fraction or beyond what the
    type holds, a float that is infinite or spelt ``NaN`` (missing is ``NA`` or empty; an explicit NaN or
    1e309 would pass every range check), hexadecimal (``0x1F``), an instant outside the years a nanosecond
    timestamp holds.
    """
    present = column.is_valid().to_numpy(zero_copy_only=False)
    if kind == "string":
        return column.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get), np.zeros(
            len(column), dtype=bool
        )
    if kind == "timestamp":
        return _timestamps(column, present)
    target = pa.int64() if kind == "Int64" else pa.float64()
    typed = None
    # Fast path: the whole column is clean (and holds no x, which Arrow's cast would read as hexadecimal).
    if not (kind == "Int64" and _may_be_hexadecimal(column)):
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
            typed = column.cast(target)
    if typed is not None:
        if kind == "Int64":
            return typed.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get), np.zeros(
                len(column), dtype=bool
            )
        floats = typed.to_pandas()
        bad = present & ~np.isfinite(floats.to_numpy())
        return floats.where(~bad), bad
    # One value at a time: pandas reads decimal only, so "0x1F" is a bad value here.
    numbers = pd.to_numeric(column.to_pandas(), errors="coerce").astype("float64")
    values = numbers.to_numpy()
    bad = present & ~np.isfinite(values)
    if kind == "Int64":
        with np.errstate(invalid="ignore"):
            bad |= present & ((np.abs(values) > _EXACT_INT) | (np.nan_to_num(values) % 1 != 0))
        return numbers.where(~bad).round().astype("Int64"), bad
    return numbers.where(~bad), bad


def _may_be_hexadecimal(column: pa.ChunkedArray) -> bool:
    """Whether any byte of the column's text is ``x`` or ``X``: a scan of the data buffers (a 336,000-row
    column in about 1 ms, a regex over its values takes 20); a byte outside the values only costs the
    slower path."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return True  # another layout (string views): the slower path, which is always right
    for chunk in column.chunks:
        data = chunk.buffers()[2]
        if data is not None and ((np.frombuffer(data, dtype=np.uint8) | 0x20) == _X).any():
            return True
    return False


def _timestamps(column: pa.ChunkedArray, present: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    parsed = pc.strptime(column, format="%Y-%m-%dT%H:%M:%SZ", unit="s", error_is_null=True)
    seconds = parsed.cast(pa.int64())
    inside = pc.and_kleene(pc.greater_equal(seconds, _FIRST_SECOND), pc.less_equal(seconds, _LAST_SECOND))
    parsed = pc.if_else(inside, parsed, pa.scalar(None, parsed.type))  # outside: a bad value, not an error
    series = parsed.cast(pa.timestamp("ns", tz="UTC")).cast(pa.timestamp("ns")).to_pandas()
    retry = present & series.isna().to_numpy()
    if retry.any():  # other ISO-8601 spellings (offsets, fractions) are still valid instants
        again = pd.to_datetime(
            column.to_pandas()[retry], utc=True, format="ISO8601", errors="coerce"
        ).dt.tz_localize(None)
        series[retry] = again
    return series, present & series.isna().to_numpy()
