"""What `apr-qa init` learns about a model: architecture, size, chat template, tokenizer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from apr_qa.errors import EnvironmentProblem, UsageError
from apr_qa.facts import count_facts
from apr_qa.fixtures import fixture_path
from apr_qa.library.survey import estimate_parameters, survey_model
from apr_qa.models.config import ModelConfig

FIXTURES = ("tiny-llama", "tiny-qwen2", "tiny-qa")
SMALL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _config_only(src: Path, dst: Path) -> Path:
    """A checkpoint directory without weights: what a repo's small files give."""
    dst.mkdir(parents=True)
    for name in SMALL_FILES:
        shutil.copy(src / name, dst / name)
    return dst


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_survey_reads_config_and_counts_tensors(name: str) -> None:
    path = fixture_path(name)
    survey = survey_model(str(path))
    config = json.loads((path / "config.json").read_text())
    assert survey.architecture == config["model_type"]
    counted = count_facts(name, path, "safetensors")
    assert counted is not None and survey.parameters == counted.parameters
    assert survey.counted and survey.size_category == "tiny"
    assert survey.chat_template and survey.prompt_form == "chat"
    assert "BPE" in survey.tokenizer
    assert set(survey.ggufs) >= {"f16", "q8_0", "q4_0"}
    assert all((path / file).is_file() for file in survey.ggufs.values())


@pytest.mark.parametrize("name", FIXTURES)
def test_estimate_from_config_equals_the_tensor_count(name: str) -> None:
    """The count computed from config.json (for a repo whose weights are not at hand)
    agrees with the tensors counted: tied output left out, qwen2's biases counted."""
    path = fixture_path(name)
    counted = count_facts(name, path, "safetensors")
    assert counted is not None
    assert estimate_parameters(ModelConfig.read(path)) == counted.parameters


def test_estimate_is_falsified_by_a_config_that_lies() -> None:
    path = fixture_path("tiny-llama")
    raw = json.loads((path / "config.json").read_text())
    counted = count_facts("tiny-llama", path, "safetensors")
    assert counted is not None
    raw["num_hidden_layers"] += 1
    assert estimate_parameters(ModelConfig.from_hf(raw)) > counted.parameters
    del raw["hidden_size"]
    assert estimate_parameters(ModelConfig.from_hf(raw)) == 0


def test_known_model_counts_from_their_configs() -> None:
    """Published counts: Qwen2.5-Coder-0.5B 494,032,768 (tied), Llama-3.2-1B 1,235,814,400
    (tied), Mistral-7B-v0.3 7,248,023,552 (untied)."""
    qwen = {"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24,
            "num_attention_heads": 14, "num_key_value_heads": 2, "intermediate_size": 4864,
            "vocab_size": 151936, "tie_word_embeddings": True}  # fmt: skip
    llama = {"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 16,
             "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 8192,
             "vocab_size": 128256, "tie_word_embeddings": True, "head_dim": 64}  # fmt: skip
    mistral = {"model_type": "mistral", "hidden_size": 4096, "num_hidden_layers": 32,
               "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
               "vocab_size": 32768, "tie_word_embeddings": False}  # fmt: skip
    assert estimate_parameters(ModelConfig.from_hf(qwen)) == 494_032_768
    assert estimate_parameters(ModelConfig.from_hf(llama)) == 1_235_814_400
    assert estimate_parameters(ModelConfig.from_hf(mistral)) == 7_248_023_552


def test_base_model_without_chat_template(tmp_path: Path) -> None:
    model = _config_only(fixture_path("tiny-llama"), tmp_path / "base")
    config = json.loads((model / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    survey = survey_model(str(model))
    assert not survey.chat_template and survey.prompt_form == "completion"
    assert not survey.counted and survey.parameters > 0  # no weights: computed


def test_template_that_refuses_a_system_message(tmp_path: Path) -> None:
    model = _config_only(fixture_path("tiny-llama"), tmp_path / "gemma-like")
    config = json.loads((model / "tokenizer_config.json").read_text())
    assert survey_model(str(model)).system_role
    config["chat_template"] = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}" + config["chat_template"]
    )
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    assert not survey_model(str(model)).system_role


def test_code_model_is_told_by_its_name(tmp_path: Path) -> None:
    model = _config_only(fixture_path("tiny-qwen2"), tmp_path / "tiny-coder")
    survey = survey_model(str(model))
    assert survey.code and survey.family == "qwen-coder"
    assert not survey_model(str(fixture_path("tiny-qwen2"))).code


def test_not_a_model_directory(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("hello")
    with pytest.raises(UsageError, match=r"not a model checkpoint \(no config.json\)"):
        survey_model(str(tmp_path))
    with pytest.raises(UsageError, match="not a model checkpoint directory"):
        survey_model(str(tmp_path / "README.md"))


def test_unknown_repo_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(EnvironmentProblem, match="nobody/no-such-model@main: not available"):
        survey_model("nobody/no-such-model")
    with pytest.raises(EnvironmentProblem, match="not a Hugging Face repo id"):
        survey_model("no/such/dir")


def test_repo_from_the_offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A repo whose small files are in the Hugging Face cache: surveyed from them,
    its size computed from config.json (no weights cached)."""
    cache = tmp_path / "cache"
    repo = cache / "models--acme--tiny-chat"
    revision = "0123456789abcdef0123456789abcdef01234567"
    _config_only(fixture_path("tiny-qwen2"), repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    survey = survey_model("acme/tiny-chat")
    assert survey.hf_repo == "acme/tiny-chat" and survey.path is None
    assert survey.architecture == "qwen2" and survey.chat_template and not survey.counted
    counted = count_facts("x", fixture_path("tiny-qwen2"), "safetensors")
    assert counted is not None and survey.parameters == counted.parameters


@pytest.mark.parametrize(
    ("name", "code"),
    [("Qwen/Qwen2.5-Coder-1.5B-Instruct", True), ("bigcode/starcoder2-3b", True),
     ("codellama/CodeLlama-7b-hf", True), ("meta-llama/Llama-3.2-1B", False),
     ("acme/t5-encoder", False)],
)  # fmt: skip
def test_code_model_names(name: str, code: bool, tmp_path: Path) -> None:
    from apr_qa.library.survey import survey_directory

    model = _config_only(fixture_path("tiny-llama"), tmp_path / "m")
    assert survey_directory(model, name).code is code
