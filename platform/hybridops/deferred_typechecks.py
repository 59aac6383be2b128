"""Feast's run-time type checks instrumented on each function's first call instead of at import.

Feast decorates its API classes with typeguard's ``@typechecked``, which recompiles every method of the
class while the module is imported (for each method: the module's source parsed, transformed and compiled
again). ``import feast`` spent ~3.7 s of its ~5.3 s there on a quiet 2-core machine, in every process that
touches the feature store: ``hybridops run``, the Dagster code server, the inference service, each test
run. While Feast's top package is imported, ``@typechecked`` here wraps each method in a stub that calls
typeguard's own ``@typechecked`` on the original function the first time it runs and then calls the
instrumented function: the checks are typeguard's, applied to the same functions, only later (and only
to the ones that run). A deferred function shows one more frame in tracebacks, and a warning Feast
raises with ``stacklevel=2`` names the stub's line instead of the caller's.

:func:`install` (called by ``import hybridops``) arms a one-shot import hook for the package ``feast``;
nothing changes when Feast was imported before hybridops, or for Feast modules imported after the
package (they get typeguard's decorator as it is).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.machinery
import inspect
import sys
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

DEFERRED_PACKAGE = "feast"


def _defer(func: Any, instrument: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` behind a stub that instruments it on the first call (typeguard refuses wrapped functions,
    so it is always handed the original)."""
    instrumented: Callable[..., Any] | None = None

    def resolve() -> Callable[..., Any]:
        nonlocal instrumented
        if instrumented is None:
            instrumented = instrument(func)
        return instrumented

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def first_await(*args: Any, **kwargs: Any) -> Any:
            return await resolve()(*args, **kwargs)

        return first_await

    @functools.wraps(func)
    def first_call(*args: Any, **kwargs: Any) -> Any:
        return resolve()(*args, **kwargs)

    return first_call


def _defined_in(func: object, cls: type) -> bool:
    """The methods typeguard instruments in a class: functions defined in its own body."""
    return (
        inspect.isfunction(func)
        and func.__module__ == cls.__module__
        and func.__qualname__.startswith(cls.__qualname__ + ".")
    )


def deferred_typechecked(
    instrument: Callable[..., Any],
) -> Callable[..., Any]:
    """A drop-in for ``typeguard.typechecked`` that defers ``instrument`` (the real decorator) per function.

    Handles what typeguard's decorator handles: functions, classmethods, staticmethods, and classes (their
    own methods, classmethods, staticmethods and property accessors); keyword options are passed on.
    """

    def decorator(target: Any = None, **options: Any) -> Any:
        if target is None:
            return lambda actual: decorator(actual, **options)
        real = functools.partial(instrument, **options) if options else instrument
        if inspect.isclass(target):
            for name, attr in list(target.__dict__.items()):
                if _defined_in(attr, target):
                    setattr(target, name, _defer(attr, real))
                elif isinstance(attr, (classmethod, staticmethod)) and _defined_in(attr.__func__, target):
                    setattr(target, name, type(attr)(_defer(attr.__func__, real)))
                elif isinstance(attr, property):
                    accessors: dict[str, Any] = {
                        role: _defer(func, real) if _defined_in(func, target) else func
                        for role, func in (("fget", attr.fget), ("fset", attr.fset), ("fdel", attr.fdel))
                    }
                    setattr(target, name, type(attr)(**accessors, doc=attr.__doc__))
            return target
        if isinstance(target, (classmethod, staticmethod)):
            return type(target)(_defer(target.__func__, real))
        if inspect.isfunction(target):
            return _defer(target, real)
        return real(target)

    return decorator


@contextlib.contextmanager
def deferring() -> Iterator[None]:
    """While active, modules that import ``typeguard.typechecked`` get the deferring decorator."""
    import typeguard

    original = typeguard.typechecked
    typeguard.typechecked = deferred_typechecked(original)
    try:
        yield
    finally:
        typeguard.typechecked = original


class _DeferringLoader(importlib.abc.Loader):
    """Executes the deferred package's ``__init__`` (and everything it imports) under :func:`deferring`."""

    def __init__(self, loader: importlib.abc.Loader, finder: _DeferringFinder) -> None:
        self.loader = loader
        self.finder = finder

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # One shot: the package is imported once per process (removed here, not while importlib iterates
        # over sys.meta_path).
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self.finder)
        # The package keeps its own loader (resource readers and reloads go to it).
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        with deferring():
            self.loader.exec_module(module)


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds the deferred package once, through the other finders, and wraps its loader."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != DEFERRED_PACKAGE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _DeferringLoader(spec.loader, self)
        return spec


def install() -> None:
    """Arm the one-shot hook, unless the package is already imported or the hook already armed."""
    if DEFERRED_PACKAGE in sys.modules or any(isinstance(f, _DeferringFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _DeferringFinder())
