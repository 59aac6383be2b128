"""The snapshot tests compare and never write: a missing or different file fails and names the command."""

from __future__ import annotations

from pathlib import Path

import pytest
from snapshot_files import ACCEPT, assert_matches


def test_a_missing_snapshot_fails_and_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "golden.yaml"
    with pytest.raises(AssertionError, match="missing: run `make snapshots` to accept"):
        assert_matches(path, "kind: Service\n")
    assert not path.exists()


def test_a_different_snapshot_fails_and_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "golden.yaml"
    path.write_text("kind: Service\n")
    with pytest.raises(AssertionError, match=ACCEPT.replace("`", ".")):
        assert_matches(path, "kind: Deployment\n")
    assert path.read_text() == "kind: Service\n"
    assert_matches(path, "kind: Service\n")
