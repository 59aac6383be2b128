"""What importing hybridops does to the process: one documented environment default, nothing else.

``import hybridops`` (and loading the code location) must change no other library's behaviour: no import
hooks, no process-wide warning filters, no replaced functions or methods in typeguard, Feast, LightGBM or
Dagster. Each check runs in fresh interpreters, so nothing this test process imported earlier hides it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

# Fingerprints of the libraries' public callables: where each one's code lives. A decorator swapped during
# an import, a patched method or a wrapper shows up as code from another file or line.
_FINGERPRINT = r"""
import inspect, json, sys

def where(obj):
    code = getattr(inspect.unwrap(obj), "__code__", None) if callable(obj) else None
    wrapped = hasattr(obj, "__wrapped__")
    return None if code is None else [code.co_filename, code.co_firstlineno, wrapped]

def fingerprint(module):
    out = {}
    for name in sorted(getattr(module, "__all__", None) or dir(module)):
        if name.startswith("_"):
            continue
        value = getattr(module, name, None)
        if inspect.isclass(value):
            for attr, member in sorted(vars(value).items()):
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                elif isinstance(member, property):
                    member = member.fget
                found = where(member) if inspect.isfunction(member) else None
                if found:
                    out[f"{module.__name__}.{name}.{attr}"] = found
        elif inspect.isfunction(value):
            out[f"{module.__name__}.{name}"] = where(value)
    return out

import typeguard, feast, lightgbm, lightgbm.basic, dagster
prints = {}
for module in (typeguard, feast, lightgbm, lightgbm.basic, dagster):
    prints.update(fingerprint(module))
"""

_BASELINE = (
    _FINGERPRINT
    + r"""
finders = sorted({f"{type(f).__module__}.{type(f).__qualname__}" for f in sys.meta_path})
print(json.dumps({"finders": finders, "prints": prints}))
"""
)

_AFTER_HYBRIDOPS = (
    r"""
import sys, warnings
# numpy (and so pandas, pyarrow, scipy, matplotlib) adds its own warning filters when first imported: what
# those libraries do to themselves is theirs, so they are loaded before the filters are taken.
import numpy, pandas, pyarrow, dagster
meta_path = list(sys.meta_path)
filters = list(warnings.filters)
import hybridops
import dagster_project.definitions
new_finders = [f"{type(f).__module__}.{type(f).__qualname__}" for f in sys.meta_path if f not in meta_path]
filters_changed = warnings.filters != filters
"""
    + _FINGERPRINT
    + r"""
print(json.dumps({"new_finders": new_finders, "filters_changed": filters_changed, "prints": prints}))
"""
)


def _run(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ, timeout=300
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_hybridops_changes_no_other_library() -> None:
    baseline = _run(_BASELINE)
    after = _run(_AFTER_HYBRIDOPS)
    # Finders added meanwhile are the libraries' own (six adds one when imported), never ours.
    assert set(after["new_finders"]) <= set(baseline["finders"])
    assert not [f for f in after["new_finders"] if f.startswith(("hybridops", "dagster_project"))]
    assert after["filters_changed"] is False
    # Thousands of callables (typeguard.typechecked, Feast's classes, Booster.predict, dagster's API).
    expected = baseline["prints"]
    assert len(expected) > 1000
    changed = {k: (v, after["prints"].get(k)) for k, v in expected.items() if after["prints"].get(k) != v}
    assert changed == {}


def test_the_code_location_and_the_package_load_without_feast() -> None:
    code = "import sys, hybridops, dagster_project.definitions; print(sorted(m for m in sys.modules if m == 'feast'))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ, timeout=300
    )
    assert out.stdout.strip() == "[]"


def _policy_after(code: str, env: dict[str, str]) -> str:
    code += "\nimport lightgbm, os\nprint(os.environ.get('OMP_WAIT_POLICY', 'unset'))"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=300
    ).stdout.strip()


def test_openmp_threads_wait_passively_in_the_platforms_processes_unless_told_otherwise() -> None:
    """The CLI and the code location (run workers, code servers) set the default before LightGBM loads;
    ``import hybridops`` alone changes nothing, not even an environment default."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy_after("import hybridops", env) == "unset"
    assert _policy_after("import dagster_project.definitions", env) == "PASSIVE"
    cli = "import sys\nfrom hybridops.cli.app import main\nsys.argv = ['hybridops', '--help']\ntry: main()\nexcept SystemExit: pass"
    assert _policy_after(cli, env).endswith("PASSIVE")
    assert (
        _policy_after("import dagster_project.definitions", {**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
    )
