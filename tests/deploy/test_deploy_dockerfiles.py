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


def _final_stage(text: str) -> list[str]:
    """Instructions of the last build stage (continuation lines joined)."""
    lines = text.replace("\\\n", " ").splitlines()
    instructions = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    last_from = max(i for i, line in enumerate(instructions) if line.startswith("FROM "))
    return instructions[last_from + 1 :]


@pytest.mark.parametrize("name", ["platform.Dockerfile", "inference.Dockerfile"])
def test_images_carry_the_git_revision(name: str) -> None:
    stage = _final_stage((DOCKER_DIR / name).read_text())
    # a build argument is visible only in the stage that declares it, after the declaration
    args = [i for i, line in enumerate(stage) if line.startswith("ARG GIT_COMMIT")]
    labels = [i for i, line in enumerate(stage) if line.startswith("LABEL ")]
    envs = [
        i for i, line in enumerate(stage) if re.match(r"ENV .*HYBRIDOPS_GIT_COMMIT=\$\{?GIT_COMMIT\}?", line)
    ]
    assert args and labels and envs, stage
    assert args[0] < min(labels) and args[0] < min(envs)
    label = " ".join(stage[i] for i in labels)
    found = dict(re.findall(r'(org\.opencontainers\.image\.[a-z]+)="?([^"\s]+)"?', label))
    assert found["org.opencontainers.image.revision"] == "${GIT_COMMIT}"
    assert found["org.opencontainers.image.source"].startswith("https://")
    assert found["org.opencontainers.image.version"] in ("${VERSION}", "0.1.0")
    assert any(line.startswith("ARG VERSION") for line in stage[: min(labels)])
