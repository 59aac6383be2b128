"""Feast's typeguard checks deferred to first call: still typeguard's checks, none paid at import."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest
import typeguard
from typeguard import TypeCheckError

from hybridops.deferred_typechecks import deferred_typechecked

INSTRUMENTED: list[str] = []


def counting_typechecked(target=None, **options):
    """typeguard's decorator, recording what it instruments."""
    if target is not None:
        INSTRUMENTED.append(getattr(target, "__qualname__", repr(target)))
    return typeguard.typechecked(target, **options)


lazy = deferred_typechecked(counting_typechecked)


@lazy
class Shape:
    def __init__(self, name: str) -> None:
        self._name = name

    def scaled(self, factor: int) -> str:
        return f"{self._name}x{factor}"

    @classmethod
    def named(cls, name: str) -> Shape:
        return cls(name)

    @staticmethod
    def area(side: float) -> float:
        return side * side

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    async def later(self, delay: int) -> str:
        return self._name * delay


@lazy
def double(value: int) -> int:
    return value * 2


def test_nothing_is_instrumented_until_called_then_once() -> None:
    INSTRUMENTED.clear()
    shape = Shape("sq")
    assert INSTRUMENTED == ["Shape.__init__"]
    assert shape.scaled(2) == "sqx2" and shape.scaled(3) == "sqx3"
    assert INSTRUMENTED == ["Shape.__init__", "Shape.scaled"]


def test_every_kind_of_member_is_still_checked() -> None:
    with pytest.raises(TypeCheckError, match='"name"'):
        Shape(3)  # type: ignore[arg-type]
    shape = Shape.named("a")
    with pytest.raises(TypeCheckError, match='"factor"'):
        shape.scaled("2")  # type: ignore[arg-type]
    with pytest.raises(TypeCheckError, match='"name"'):
        Shape.named(1)  # type: ignore[arg-type]
    assert Shape.area(2.0) == 4.0
    with pytest.raises(TypeCheckError, match='"side"'):
        Shape.area("2")  # type: ignore[arg-type]
    shape.name = "b"
    assert shape.name == "b"
    with pytest.raises(TypeCheckError, match='"value"'):
        shape.name = 5  # type: ignore[assignment]
    assert asyncio.run(shape.later(2)) == "bb"
    with pytest.raises(TypeCheckError, match='"delay"'):
        asyncio.run(shape.later("2"))  # type: ignore[arg-type]
    assert double(2) == 4
    with pytest.raises(TypeCheckError, match='"value"'):
        double("2")  # type: ignore[arg-type]


_COUNT_INSTRUMENTATION = """
    import typeguard._decorators as decorators
    calls = []
    real = decorators.instrument
    decorators.instrument = lambda f: calls.append(f.__qualname__) or real(f)
"""


def _run(code: str) -> str:
    """``code`` in a fresh interpreter, after typeguard's instrumentation is made to count its calls."""
    script = textwrap.dedent(_COUNT_INSTRUMENTATION) + textwrap.dedent(code)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_importing_feast_after_hybridops_instruments_nothing_and_checks_on_use() -> None:
    out = _run(
        """
    import hybridops, feast
    from typeguard import TypeCheckError
    at_import = len(calls)
    try:
        feast.Entity(name=123, join_keys=["x"])
    except TypeCheckError:
        print(at_import, "checked", calls)
    """
    )
    # Only what Feast itself calls while importing (its module-level Entity and Field objects) is
    # instrumented during the import, against hundreds of methods eagerly (test below).
    at_import, checked, names = out.split(" ", 2)
    assert int(at_import) <= 5 and checked == "checked" and "Entity.__init__" in names


def test_feast_imported_first_is_instrumented_as_usual() -> None:
    out = _run("import feast, hybridops\nprint(len(calls))\n")
    assert int(out) > 100  # typeguard's eager instrumentation, untouched
