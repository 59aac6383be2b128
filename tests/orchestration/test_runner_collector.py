"""The runner pauses the cyclic garbage collector and gives the caller its state back."""

from __future__ import annotations

import gc

import pytest

from hybridops.orchestration.runner import _collector_paused, _import_uncollected


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_off_inside_and_as_it_was_after(enabled: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with _collector_paused():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
        with pytest.raises(RuntimeError), _collector_paused():
            raise RuntimeError("a failing import")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_a_module_that_fails_to_import_is_left_to_its_step() -> None:
    _import_uncollected(("hybridops.no_such_module", "hybridops.monitoring.drift"))
    assert gc.isenabled()
