"""action.yml and cuda/action.yml against GitHub's action metadata rules and the code:
required keys, every input and output documented, the same names and defaults the
entrypoint reads, and every default a value the entrypoint accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import REPO

from apr_qa.action.inputs import DEFAULTS, read_inputs
from apr_qa.action.outputs import OUTPUT_NAMES

ACTIONS = [REPO / "action.yml", REPO / "cuda" / "action.yml"]
# The icons GitHub's branding accepts are Feather's; these are the ones we might use.
ICONS = {"shield", "check-circle", "activity", "cpu", "award", "zap"}
COLORS = {"white", "black", "yellow", "blue", "green", "orange", "red", "purple", "gray-dark"}
TOP_LEVEL = {"name", "author", "description", "inputs", "outputs", "runs", "branding"}


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: str(p.relative_to(REPO)))
def test_required_keys_and_a_docker_image(path: Path) -> None:
    data = _load(path)
    assert set(data) <= TOP_LEVEL, set(data) - TOP_LEVEL
    for key in ("name", "description", "runs"):
        assert data.get(key), key
    assert data["runs"]["using"] == "docker"
    image = data["runs"]["image"]
    # A Dockerfile beside the metadata, or a prebuilt image (never an expression).
    assert "${{" not in image
    assert image.startswith("docker://") or (path.parent / image).is_file()
    assert data["branding"]["icon"] in ICONS and data["branding"]["color"] in COLORS


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: str(p.relative_to(REPO)))
def test_inputs_match_the_entrypoint_and_are_documented(path: Path) -> None:
    inputs = _load(path)["inputs"]
    assert set(inputs) == set(DEFAULTS)
    for name, spec in inputs.items():
        assert isinstance(spec.get("description"), str) and len(spec["description"]) > 20, name
        assert set(spec) <= {"description", "required", "default", "deprecationMessage"}, name
        if spec.get("required"):
            assert "default" not in spec, f"{name}: required with a default"
            continue
        default = str(spec["default"])
        if default.startswith("${{"):
            continue  # github.token: filled in by the runner
        assert default == DEFAULTS[name], name


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_default_is_accepted(path: Path, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("x: 1\n")
    env = {"INPUT_PLAYBOOKS": "p.yaml"}
    for name, spec in _load(path)["inputs"].items():
        if "default" in spec and not str(spec["default"]).startswith("${{"):
            env.setdefault(f"INPUT_{name.upper()}", str(spec["default"]))
    inputs = read_inputs(env, tmp_path)
    assert inputs.fail_below == "C" and inputs.workers == 1 and not inputs.update_readme


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: str(p.relative_to(REPO)))
def test_outputs_match_the_entrypoint_and_are_documented(path: Path) -> None:
    outputs = _load(path)["outputs"]
    assert tuple(outputs) == OUTPUT_NAMES
    for name, spec in outputs.items():
        assert isinstance(spec.get("description"), str) and spec["description"], name


def test_the_two_actions_differ_only_in_name_description_and_image() -> None:
    cpu, cuda = (_load(p) for p in ACTIONS)
    assert cpu["inputs"] == cuda["inputs"] and cpu["outputs"] == cuda["outputs"]
    assert cpu["runs"]["image"] != cuda["runs"]["image"]
