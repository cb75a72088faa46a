"""Chat needs the model's own template: a model without one is told so, in both runtimes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from apr_qa.backends import create_backend
from apr_qa.errors import UsageError

pytestmark = pytest.mark.slow

MESSAGES = [{"role": "user", "content": "Hello!"}]


@pytest.fixture(scope="module")
def no_template(real_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the model's checkpoint with every trace of its chat template removed."""
    ckpt = tmp_path_factory.mktemp("no-template") / "ckpt"
    shutil.copytree(real_model.checkpoint, ckpt, ignore=shutil.ignore_patterns("*.gguf"))
    (ckpt / "chat_template.jinja").unlink(missing_ok=True)
    config_path = ckpt / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config))
    return ckpt


def test_transformers_chat_without_template(no_template: Path) -> None:
    backend = create_backend("transformers")
    backend.load(no_template, "cpu")
    with pytest.raises(UsageError, match="no chat template"):
        backend.generate(messages=MESSAGES, max_tokens=4, temperature=0, seed=0)
    # Raw completion does not need one.
    assert backend.generate(prompt="Hello!", max_tokens=2, temperature=0, seed=0).token_ids


def test_llama_cpp_chat_without_template(no_template: Path) -> None:
    from apr_qa.models.convert import convert

    gguf = convert(no_template, no_template.parent / "model.gguf", "f32")
    backend = create_backend("llama_cpp")
    backend.load(gguf, "cpu")
    with pytest.raises(UsageError, match=r"no tokenizer\.chat_template"):
        backend.generate(messages=MESSAGES, max_tokens=4, temperature=0, seed=0)
    assert backend.generate(prompt="Hello!", max_tokens=2, temperature=0, seed=0).token_ids
