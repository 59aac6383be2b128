"""The images: pinned base, locked dependencies, non-root UID >= 10000, read-only-root friendly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCKER_DIR = Path(__file__).resolve().parents[2] / "docker"


@pytest.mark.parametrize("name", ["platform.Dockerfile", "inference.Dockerfile"])
def test_dockerfile_defaults(name: str) -> None:
    text = (DOCKER_DIR / name).read_text()
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", text)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1))
    assert "latest" not in text
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert "PYTHONDONTWRITEBYTECODE=1" in text and "HOME=/tmp" in text
    # Dependencies only from the runtime lock (hash-checked), the project itself without resolving any.
    assert "pip install --require-hashes -r requirements/lock.txt" in text
    assert "pip install --no-deps ." in text and "pip check" in text
    assert text.index("requirements/lock.txt") < text.index("pip install --no-deps .")
