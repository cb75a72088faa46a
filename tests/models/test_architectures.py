"""The architecture table, the rotary permutation and the config reader, on their own.

The table's GGUF names are checked against gguf-py's ``TensorNameMap`` (llama.cpp's
own list), so the converter, G0 and the mutants cannot drift from it; the
permutation against index arithmetic written here; the config reader against
config.json files written here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from apr_qa.errors import UsageError
from apr_qa.models.architectures import (
    ARCHITECTURES,
    FALLBACK,
    Architecture,
    architecture,
    gguf_architecture,
)
from apr_qa.models.config import ModelConfig, read_config_json
from apr_qa.models.rotary import permute_qk, unpermute_qk

# llama.cpp always ties Gemma's output to the embedding: gguf-py lists no output tensor.
NO_GGUF_OUTPUT = {"gemma", "gemma2"}


def _gguf_arch(arch: Architecture) -> Any:
    return next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch.gguf_arch)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_gguf_names_agree_with_gguf_py(name: str) -> None:
    arch = ARCHITECTURES[name]
    gguf_arch = _gguf_arch(arch)
    name_map = gguf.get_tensor_name_map(gguf_arch, 2)
    known = {gguf.TENSOR_NAMES[t] for t in gguf.MODEL_TENSORS[gguf_arch]}
    compared = 0
    for role in arch.tensors:
        if role.role == "output" and name in NO_GGUF_OUTPUT:
            continue
        template = f"blk.{{bid}}.{role.gguf}" if role.per_layer else role.gguf
        assert template in known, (name, template)
        for layer in (0, 1):
            hf_name = role.name("safetensors", layer)
            want = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            assert arch.gguf_name(hf_name) == want == role.name("gguf", layer), hf_name
            assert arch.hf_name(role.name("gguf", layer)) == hf_name
            compared += 1
    assert compared >= 2 * 6


def test_gemma2_post_attention_norm_is_not_llamas_ffn_norm() -> None:
    hf_name = "model.layers.3.post_attention_layernorm.weight"
    assert ARCHITECTURES["llama"].gguf_name(hf_name) == "blk.3.ffn_norm.weight"
    assert ARCHITECTURES["gemma2"].gguf_name(hf_name) == "blk.3.post_attention_norm.weight"
    assert ARCHITECTURES["gemma2"].hf_name("blk.3.ffn_norm.weight") == (
        "model.layers.3.pre_feedforward_layernorm.weight"
    )
    assert ARCHITECTURES["phi3"].gguf_name("model.layers.0.mlp.gate_up_proj.weight") == (
        "blk.0.ffn_up.weight"
    )


def test_names_outside_the_table() -> None:
    llama = ARCHITECTURES["llama"]
    assert llama.gguf_name("model.layers.0.mlp.gate_up_proj.weight") is None
    assert llama.gguf_name("model.rotary_emb.inv_freq") is None
    assert llama.gguf_name("lm_head") is None
    # A bias the layout does not list still has its weight's name.
    assert llama.gguf_name("model.layers.1.self_attn.o_proj.bias") == "blk.1.attn_output.bias"


def test_lookup_and_the_fallback() -> None:
    assert architecture("mistral").gguf_arch == "llama"
    assert gguf_architecture("llama").name == "llama"
    assert gguf_architecture("gemma2") is ARCHITECTURES["gemma2"]
    for unknown in (None, "", "gpt2"):
        assert architecture(unknown) is FALLBACK
        assert gguf_architecture(unknown) is FALLBACK
    assert not FALLBACK.known and FALLBACK.norm_offset is None


def test_norm_storage() -> None:
    gemma2, llama = ARCHITECTURES["gemma2"], ARCHITECTURES["llama"]
    assert gemma2.scale_offset("safetensors") == 1.0
    assert gemma2.scale_offset("gguf") == llama.scale_offset("safetensors") == 0.0
    assert FALLBACK.scale_offset("safetensors") is None and FALLBACK.scale_offset("gguf") == 0.0
    assert gemma2.is_norm("safetensors", "model.layers.0.post_feedforward_layernorm.weight")
    assert gemma2.is_norm("gguf", "blk.0.post_ffw_norm.weight")
    assert not gemma2.is_norm("safetensors", "model.layers.0.mlp.up_proj.weight")
    assert FALLBACK.is_norm("safetensors", "transformer.h.0.ln_norm.weight")
    assert not FALLBACK.is_norm("safetensors", "norm")
    assert not FALLBACK.is_norm("safetensors", "model.norm.bias")


def test_qk_permutation_only_for_llamas_rotary_layout() -> None:
    permuting = {n for n, a in ARCHITECTURES.items() if a.gguf_permutes_qk}
    assert permuting == {"llama", "mistral"}


# --- the rotary permutation --------------------------------------------------------------


def _interleaved(w: np.ndarray, heads: int) -> np.ndarray:
    """Within each head: row i of the first half, then row i of the second half."""
    d = w.shape[0] // heads
    order = [
        h * d + half * (d // 2) + i for h in range(heads) for i in range(d // 2) for half in (0, 1)
    ]
    return w[order]


@pytest.mark.parametrize(("heads", "shape"), [(4, (32, 8)), (2, (16, 8)), (4, (32,)), (1, (8, 3))])
def test_permute_qk_interleaves_each_heads_halves(heads: int, shape: tuple[int, ...]) -> None:
    w = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    before = w.copy()
    moved = permute_qk(w, heads)
    np.testing.assert_array_equal(moved, _interleaved(w, heads))
    assert not np.array_equal(moved, w)
    np.testing.assert_array_equal(unpermute_qk(moved, heads), w)
    np.testing.assert_array_equal(w, before)  # the input is not moved in place


def test_permute_qk_refuses_rows_that_do_not_split() -> None:
    with pytest.raises(ValueError, match="cannot be split into 3 heads"):
        permute_qk(np.zeros((8, 2), np.float32), 3)
    with pytest.raises(ValueError, match="even size"):
        unpermute_qk(np.zeros((6, 2), np.float32), 2)


# --- the config reader ---------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "config.json").write_text(text, encoding="utf-8")
    return tmp_path


def test_read_config_json_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="missing; not a Hugging Face checkpoint"):
        read_config_json(tmp_path)
    assert read_config_json(tmp_path, missing_ok=True) == {}
    with pytest.raises(UsageError, match="not valid JSON"):
        read_config_json(_write(tmp_path, "{nope"))
    with pytest.raises(UsageError, match="not a JSON object"):
        read_config_json(_write(tmp_path, "[1]"))


def test_model_config_from_hf(tmp_path: Path) -> None:
    raw = {
        "model_type": "phi3",
        "architectures": ["Phi3ForCausalLM"],
        "hidden_size": 32,
        "num_attention_heads": 4,
        "num_hidden_layers": "2",
        "vocab_size": 0,
        "intermediate_size": True,
        "head_dim": None,
        "tie_word_embeddings": False,
    }
    config = ModelConfig.read(_write(tmp_path, json.dumps(raw)))
    assert config.model_type == "phi3" and config.architectures == ("Phi3ForCausalLM",)
    assert dict(config.sizes) == {"hidden_size": 32, "num_attention_heads": 4}
    assert config.problems == (
        "config.json num_hidden_layers='2' is not a positive integer",
        "config.json intermediate_size=True is not a positive integer",
        "config.json vocab_size=0 is not a positive integer",
    )
    assert config.tie_word_embeddings is False
    assert config.kv_heads == 4 and config.head_dim == 8  # no grouping; hidden ÷ heads
    assert config.require("hidden_size") == 32
    with pytest.raises(
        UsageError, match=r"x/config.json: vocab_size must be a positive integer, got 0"
    ):
        config.require("vocab_size", "x/config.json")


def test_model_config_head_dim() -> None:
    assert ModelConfig.from_hf({"hidden_size": 30, "num_attention_heads": 4}).head_dim is None
    declared = ModelConfig.from_hf({"hidden_size": 32, "num_attention_heads": 4, "head_dim": 16})
    assert declared.head_dim == 16
    assert ModelConfig.from_hf({}).tie_word_embeddings is None
    assert ModelConfig.from_hf({"model_type": 3, "architectures": "x"}).model_type is None


def test_model_config_from_gguf() -> None:
    meta = {
        "general.architecture": "qwen2",
        "qwen2.block_count": 2,
        "qwen2.embedding_length": 64,
        "qwen2.attention.head_count_kv": -1,
        "llama.feed_forward_length": 99,  # another architecture's key: not ours
    }
    config = ModelConfig.from_gguf(meta)
    assert config.model_type == "qwen2" and config.tie_word_embeddings is None
    assert dict(config.sizes) == {"num_hidden_layers": 2, "hidden_size": 64}
    assert config.labels["hidden_size"] == "GGUF qwen2.embedding_length"
    assert config.problems == ("GGUF qwen2.attention.head_count_kv=-1 is not a positive integer",)
    assert ModelConfig.from_gguf({}).sizes == {}
