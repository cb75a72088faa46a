"""Template + model -> playbook: template and thresholds by size, prompt form by what the model has."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from apr_qa import api
from apr_qa.fixtures import fixture_path
from apr_qa.library.catalogue import TEMPLATE_NAMES
from apr_qa.library.compose import compose, default_template, render
from apr_qa.library.survey import Survey, survey_model
from apr_qa.library.thresholds import thresholds_for
from apr_qa.plan import build_plan
from apr_qa.testing.fixtures.specs import FIXTURE_SPECS
from apr_qa.testing.fixtures.train import examples

FIXTURES = ("tiny-llama", "tiny-qwen2", "tiny-qa")


def _write(survey: Survey, out: Path, template: str | None) -> dict:  # type: ignore[type-arg]
    composed = compose(survey, out, template)
    out.write_text(render(composed), encoding="utf-8")
    return dict(composed.data)


def _texts(data: dict) -> list[str]:  # type: ignore[type-arg]
    texts = []
    for item in data["scenarios"]:
        texts += [item.get("prompt", "")] + [m["content"] for m in item.get("messages", [])]
    return [t for t in texts if t]


def _training_prompts(name: str) -> set[str]:
    """Every prompt the fixture was trained on (its contract, and the unknown texts
    answered with its fallback), run prompts and chat renderings alike."""
    data = json.loads((fixture_path(name) / "prompts.json").read_text())
    texts = {ex.prompt for ex in examples(FIXTURE_SPECS[name].corpus)}
    for item in data["prompts"]:
        texts.add(item.get("prompt", ""))
        texts.update(m["content"] for m in item.get("messages", []))
    return texts - {""}


def _trained_on(name: str, text: str) -> bool:
    return any(text in trained for trained in _training_prompts(name))


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_every_template_for_every_fixture_validates_and_plans(
    name: str, template: str, tmp_path: Path
) -> None:
    survey = survey_model(str(fixture_path(name)))
    out = tmp_path / "sub" / "model.playbook.yaml"
    out.parent.mkdir()
    data = _write(survey, out, template)
    book = api.load([out]).playbooks[0]
    assert book.model.path is not None and book.model.path.resolve() == fixture_path(name)
    assert build_plan([book]).cells
    if "gguf" in data["test_matrix"]["formats"]:
        # a local checkpoint's own GGUFs, named per quantization, rather than conversions
        assert (
            set(book.model.files) == set(survey.ggufs) == set(data["test_matrix"]["quantizations"])
        )


@pytest.mark.parametrize("name", FIXTURES)
def test_prompts_are_never_the_fixtures_training_prompts(name: str, tmp_path: Path) -> None:
    data = _write(survey_model(str(fixture_path(name))), tmp_path / "p.yaml", "full")
    texts = _texts(data)
    assert texts
    assert not [t for t in texts if _trained_on(name, t)]
    assert not any(t.startswith("Question:") for t in texts)  # tiny-qa's form


def test_training_prompt_check_can_fail() -> None:
    """The check above compares real texts: tiny-llama's training set holds the prompts
    the quickstart example asks."""
    assert "What is 2 + 3?" in _training_prompts("tiny-llama")
    unknown = FIXTURE_SPECS["tiny-qa"].corpus.unknowns[0]
    assert _trained_on("tiny-qa", unknown) and _trained_on("tiny-qa", unknown[:-2])


def test_chat_model_gets_conversations_and_completions(tmp_path: Path) -> None:
    data = _write(survey_model(str(fixture_path("tiny-llama"))), tmp_path / "p.yaml", "ci")
    chats = [s for s in data["scenarios"] if "messages" in s]
    runs = [s for s in data["scenarios"] if "prompt" in s]
    assert chats and runs
    assert all(s["modalities"] == ["run"] for s in runs)
    assert any(m["role"] == "system" for s in chats for m in s["messages"])
    assert data["test_matrix"]["modalities"] == ["run", "chat"]


def test_base_model_gets_completion_prompts_in_run_only(tmp_path: Path) -> None:
    survey = replace(survey_model(str(fixture_path("tiny-llama"))), chat_template=False)
    data = _write(survey, tmp_path / "p.yaml", "full")
    assert data["test_matrix"]["modalities"] == ["run"]
    assert data["scenarios"] and all(
        "prompt" in s and "messages" not in s for s in data["scenarios"]
    )
    assert build_plan(api.load([tmp_path / "p.yaml"]).playbooks).cells


def test_system_message_folded_when_the_template_refuses_one(tmp_path: Path) -> None:
    survey = replace(survey_model(str(fixture_path("tiny-llama"))), system_role=False)
    data = _write(survey, tmp_path / "p.yaml", "ci")
    roles = {m["role"] for s in data["scenarios"] for m in s.get("messages", [])}
    assert roles == {"user"}
    assert any(t.startswith("Answer in one word. ") for t in _texts(data))


def test_code_model_is_asked_code_first(tmp_path: Path) -> None:
    survey = replace(survey_model(str(fixture_path("tiny-qwen2"))), code=True)
    data = _write(survey, tmp_path / "p.yaml", "quick")
    assert data["scenarios"][0]["oracle"] == "code_syntax"
    plain = _write(survey_model(str(fixture_path("tiny-qwen2"))), tmp_path / "q.yaml", "quick")
    assert plain["scenarios"][0]["oracle"] != "code_syntax"


@pytest.mark.parametrize(
    ("parameters", "size", "template"),
    [(123_000, "tiny", "full"), (1_500_000_000, "small", "ci"), (7_600_000_000, "medium", "ci"),
     (12_000_000_000, "large", "ci"), (14_800_000_000, "xlarge", "quick"), (72_000_000_000, "huge", "quick")],
)  # fmt: skip
def test_template_and_thresholds_by_size(
    parameters: int, size: str, template: str, tmp_path: Path
) -> None:
    survey = replace(
        survey_model(str(fixture_path("tiny-llama"))), parameters=parameters, path=None,
        hf_repo="acme/model", ggufs={}, model_id="acme/model",
    )  # fmt: skip
    assert survey.size_category == size and default_template(size) == template
    composed = compose(survey, tmp_path / "p.yaml", "ci")
    limits = thresholds_for(size)
    matrix = composed.data["test_matrix"]
    assert (matrix["timeout_ms"], matrix["max_tokens"]) == (limits.timeout_ms, limits.max_tokens)
    assertions = composed.data["profile_ci"]["assertions"]
    assert assertions["min_throughput_cpu"] == limits.min_throughput_cpu
    compare = composed.data["differential_tests"]["inference_compare"]
    if size == "tiny":  # the checks' defaults were set for tiny models
        assert "tolerance" not in compare
    else:
        assert compare["tolerance"] == {"q4_k_m": limits.kl_ceiling["q4_k_m"]}
        assert compare["min_top1_agreement"] == {"q4_k_m": limits.top1_floor["q4_k_m"]}
    assert composed.data["model"] == {
        "id": "acme/model", "hf_repo": "acme/model", "family": "llama", "size_category": size,
    }  # fmt: skip


def test_larger_models_get_more_time_and_lower_throughput_floors() -> None:
    sizes = ("tiny", "small", "medium", "large", "xlarge", "huge")
    limits = [thresholds_for(s) for s in sizes]
    assert all(a.timeout_ms < b.timeout_ms for a, b in itertools.pairwise(limits))
    assert all(a.min_throughput_cpu > b.min_throughput_cpu for a, b in itertools.pairwise(limits))


def test_rendered_header_says_what_was_found(tmp_path: Path) -> None:
    survey = survey_model(str(fixture_path("tiny-qwen2")))
    text = render(compose(survey, tmp_path / "p.yaml", "quick"))
    header = [line for line in text.splitlines() if line.startswith("#")]
    joined = "\n".join(header)
    assert "quick: a smoke test" in header[0]
    assert "architecture qwen2" in joined and "493K parameters (counted from its tensors)" in joined
    assert yaml.safe_load(text)["name"] == "tiny-qwen2-quick"
