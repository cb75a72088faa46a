"""Real models for the backend tests: the committed fixtures, each loaded once per module.

Until the trained fixtures are committed, a random-weight model of the tiny-llama
shape, built with the fixture toolchain, stands in (it cannot answer prompts.json, so
the answer tests only run on real fixtures).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from apr_qa.backends import Backend, create_backend
from apr_qa.fixtures import fixture_names, fixture_path


@dataclass(frozen=True)
class RealModel:
    """A safetensors checkpoint directory and its lossless f32 GGUF."""

    name: str
    checkpoint: Path
    gguf_f32: Path


def _committed(name: str) -> RealModel | None:
    if name not in fixture_names():
        return None
    folder = fixture_path(name)
    gguf = folder / f"{name}-f32.gguf"
    return RealModel(name, folder, gguf) if gguf.is_file() else None


def _random_stand_in(root: Path) -> RealModel:
    import torch
    from transformers import AutoModelForCausalLM

    from apr_qa.models.convert import convert
    from apr_qa.testing.fixtures.build import write_tokenizer
    from apr_qa.testing.fixtures.specs import FIXTURE_SPECS
    from apr_qa.testing.fixtures.train import model_config, train_tokenizer

    spec = FIXTURE_SPECS["tiny-llama"]
    tokenizer = train_tokenizer(spec)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(model_config(spec, tokenizer))
    out = root / "random-llama"
    model.save_pretrained(out)
    write_tokenizer(spec, tokenizer, out)
    gguf = convert(out, root / "random-llama-f32.gguf", "f32")
    return RealModel("random-llama", out, gguf)


@pytest.fixture(scope="session")
def real_model(tmp_path_factory: pytest.TempPathFactory) -> RealModel:
    """The tiny-llama fixture, or a random stand-in of its shape."""
    return _committed("tiny-llama") or _random_stand_in(tmp_path_factory.mktemp("random"))


@pytest.fixture(scope="module")
def tf_backend(real_model: RealModel) -> Iterator[Backend]:
    """The transformers backend with ``real_model`` loaded on CPU."""
    backend = create_backend("transformers")
    backend.load(real_model.checkpoint, "cpu")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def llama_backend(real_model: RealModel) -> Iterator[Backend]:
    """The llama_cpp backend with ``real_model``'s f32 GGUF loaded on CPU."""
    backend = create_backend("llama_cpp")
    backend.load(real_model.gguf_f32, "cpu")
    yield backend
    backend.close()
