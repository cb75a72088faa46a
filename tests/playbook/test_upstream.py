"""Every playbook of the original implementation loads, except the documented invalid ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import REPO, UPSTREAM

from apr_qa.errors import PlaybookError
from apr_qa.playbook import load_playbook

NOT_PLAYBOOKS = {"playbook.schema.yaml", "playbook.lock.yaml"}

# Files that are genuinely invalid, with the line and field apr-qa must name.
INVALID: dict[str, tuple[int, str]] = {
    # `size_category: auto` is a template placeholder the original's parser rejects too.
    "playbooks/templates/basic-verify.yaml": (15, "model.size_category: 'auto' is not one of"),
    "playbooks/templates/mvp.yaml": (21, "model.size_category: 'auto' is not one of"),
}
# Verification specs that name no model: valid only with --model-path, as their comments say.
NEEDS_MODEL_PATH = {
    "playbooks/spec/gateway-g1-model-loads.yaml",
    "playbooks/spec/gateway-g2-basic-inference.yaml",
    "playbooks/spec/gateway-g3-no-crashes.yaml",
    "playbooks/spec/gateway-g4-output-quality.yaml",
    "playbooks/verify/TICKET-0001-example.yaml",
    "playbooks/verify/TICKET-178.yaml",
    "playbooks/verify/TICKET-179.yaml",
    "playbooks/verify/TICKET-182.yaml",
    "playbooks/verify/TICKET-183.yaml",
}


def _upstream_files() -> list[str]:
    return sorted(
        str(p.relative_to(UPSTREAM))
        for p in UPSTREAM.rglob("*.yaml")
        if p.name not in NOT_PLAYBOOKS
    )


def test_the_upstream_set_is_complete() -> None:
    files = _upstream_files()
    assert len([f for f in files if f.startswith("playbooks/models/")]) == 117
    assert len(files) == 137
    assert set(INVALID) | NEEDS_MODEL_PATH <= set(files)


@pytest.mark.parametrize(
    "rel", [f for f in _upstream_files() if f not in INVALID and f not in NEEDS_MODEL_PATH]
)
def test_upstream_playbook_loads(rel: str) -> None:
    playbook = load_playbook(UPSTREAM / rel)
    assert playbook.model.id
    assert playbook.matrix.modalities and playbook.matrix.backends and playbook.matrix.formats


@pytest.mark.parametrize("rel", sorted(INVALID))
def test_documented_invalid_upstream_playbook_is_refused_at_its_line(rel: str) -> None:
    line, message = INVALID[rel]
    with pytest.raises(PlaybookError) as info:
        load_playbook(UPSTREAM / rel)
    (problem,) = info.value.problems
    assert problem.file.endswith(rel)
    assert problem.line == line
    assert message in problem.message


@pytest.mark.parametrize("rel", sorted(NEEDS_MODEL_PATH))
def test_modelless_upstream_playbook_needs_model_path(rel: str, tmp_path: Path) -> None:
    with pytest.raises(PlaybookError) as info:
        load_playbook(UPSTREAM / rel)
    assert "missing 'model'" in info.value.problems[0].message
    playbook = load_playbook(UPSTREAM / rel, model_path=tmp_path)
    assert playbook.model.path == tmp_path


def test_original_dialect_is_normalized() -> None:
    playbook = load_playbook(UPSTREAM / "playbooks/models/qwen2.5-coder-1.5b.playbook.yaml")
    # formats under `model`, quoted booleans, `1e-5` as a string, stop_on_p0 spelling
    assert playbook.matrix.formats == ("gguf", "safetensors", "apr")
    assert playbook.matrix.quantizations == ("q4_k_m", "q5_k_m", "q8_0")
    assert playbook.gates.g1_model_loads is True
    assert playbook.failure_policy == "stop-on-p0"
    compare = playbook.sections["differential_tests"]["inference_compare"]
    assert compare["tolerance"] == pytest.approx(1e-5)
    assert compare["enabled"] is True
    assert "accepted, not supported: property_tests" in playbook.warnings
    assert [o.name for o in playbook.oracles] == ["arithmetic", "garbage", "code_syntax"]


def test_string_model_and_prompt_list_are_honoured() -> None:
    playbook = load_playbook(UPSTREAM / "playbooks/verify/fail-fast-falsification.yaml")
    assert playbook.model.hf_repo == "Qwen/Qwen2.5-Coder-1.5B-Instruct"
    prompts = load_playbook(
        UPSTREAM / "playbooks/models/qwen2.5-coder-3b-mvp.playbook.yaml"
    ).scenarios
    assert prompts[0].name == "prompt-1"
    assert prompts[0].prompt is not None and prompts[0].prompt.startswith("Given x=5")
    assert prompts[0].source.line == 39


def test_seed_readme_example_loads_with_name_from_model_id() -> None:
    playbook = load_playbook(REPO / "examples/seed-readme.playbook.yaml")
    assert playbook.name == "qwen2.5-coder-1.5b"
    assert playbook.model.revision == "main"
    arithmetic, code = playbook.scenarios
    assert arithmetic.expected == 4 and arithmetic.oracle is not None
    assert arithmetic.oracle.name == "arithmetic"
    assert code.oracle is not None and code.oracle.options["language"] == "python"
    assert code.source.line == 17
