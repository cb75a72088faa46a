"""Artifacts that do not load are a LoadError with one line naming the file, never a
traceback, and never a model quietly run on random weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from apr_qa.backends import LoadError, create_backend

pytestmark = pytest.mark.slow


def _copy_checkpoint(model: Any, dst: Path) -> Path:
    shutil.copytree(model.checkpoint, dst, ignore=shutil.ignore_patterns("*.gguf"))
    return dst


def _load_error(kind: str, path: Path) -> str:
    with pytest.raises(LoadError) as info:
        create_backend(kind).load(path, "cpu")
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_missing_checkpoint_dir(tmp_path: Path) -> None:
    _load_error("transformers", tmp_path / "nope")


def test_truncated_safetensors(real_model: Any, tmp_path: Path) -> None:
    ckpt = _copy_checkpoint(real_model, tmp_path / "ckpt")
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    _load_error("transformers", ckpt)


def test_checkpoint_without_weights(real_model: Any, tmp_path: Path) -> None:
    ckpt = _copy_checkpoint(real_model, tmp_path / "ckpt")
    (ckpt / "model.safetensors").unlink()
    _load_error("transformers", ckpt)


def test_missing_tensor_is_not_filled_with_random_weights(real_model: Any, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    ckpt = _copy_checkpoint(real_model, tmp_path / "ckpt")
    weights = ckpt / "model.safetensors"
    tensors = load_file(str(weights))
    dropped = next(n for n in tensors if n.endswith("o_proj.weight"))
    del tensors[dropped]
    save_file(tensors, str(weights), metadata={"format": "pt"})
    assert "o_proj.weight" in _load_error("transformers", ckpt)


def test_config_that_disagrees_with_tensor_shapes(real_model: Any, tmp_path: Path) -> None:
    ckpt = _copy_checkpoint(real_model, tmp_path / "ckpt")
    config = json.loads((ckpt / "config.json").read_text())
    config["intermediate_size"] = config["intermediate_size"] * 2
    (ckpt / "config.json").write_text(json.dumps(config))
    _load_error("transformers", ckpt)


def test_missing_gguf(tmp_path: Path) -> None:
    assert "no such file" in _load_error("llama_cpp", tmp_path / "model.gguf")


def test_truncated_gguf(real_model: Any, tmp_path: Path) -> None:
    data = real_model.gguf_f32.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) // 2])
    _load_error("llama_cpp", cut)


def test_gguf_with_bad_magic(real_model: Any, tmp_path: Path) -> None:
    data = real_model.gguf_f32.read_bytes()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUX" + data[4:])
    _load_error("llama_cpp", bad)
