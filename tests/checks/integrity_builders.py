"""Tiny llama-shaped checkpoints (safetensors dirs and GGUF files) for the G0 tests.

Each builder takes the tensors and metadata as plain dicts, so a test breaks a
copy in exactly one way and knows which gate must notice.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from safetensors.numpy import save_file

HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, VOCAB = 32, 48, 2, 4, 2, 320
HEAD_DIM = HIDDEN // HEADS

CORPUS = [
    "What is 2 + 2? 4. The capital of France is Paris.",
    "def add(a, b):\n    return a + b\n",
    "Hello! How are you today? I'm fine, thanks.",
] * 4

# HF name suffix within a layer -> GGUF suffix; the shapes are HF orientation.
LAYER_ROLES = {
    "self_attn.q_proj.weight": ("attn_q.weight", (HEADS * HEAD_DIM, HIDDEN)),
    "self_attn.k_proj.weight": ("attn_k.weight", (KV_HEADS * HEAD_DIM, HIDDEN)),
    "self_attn.v_proj.weight": ("attn_v.weight", (KV_HEADS * HEAD_DIM, HIDDEN)),
    "self_attn.o_proj.weight": ("attn_output.weight", (HIDDEN, HEADS * HEAD_DIM)),
    "mlp.gate_proj.weight": ("ffn_gate.weight", (INTER, HIDDEN)),
    "mlp.up_proj.weight": ("ffn_up.weight", (INTER, HIDDEN)),
    "mlp.down_proj.weight": ("ffn_down.weight", (HIDDEN, INTER)),
    "input_layernorm.weight": ("attn_norm.weight", (HIDDEN,)),
    "post_attention_layernorm.weight": ("ffn_norm.weight", (HIDDEN,)),
}
GLOBALS = {
    "model.embed_tokens.weight": ("token_embd.weight", (VOCAB, HIDDEN)),
    "model.norm.weight": ("output_norm.weight", (HIDDEN,)),
    "lm_head.weight": ("output.weight", (VOCAB, HIDDEN)),
}


def hf_tensors(seed: int = 0, layers: int = LAYERS) -> dict[str, np.ndarray]:
    """Random float32 weights in HF names; norms are random too (real ones are not ≈ 1)."""
    rng = np.random.default_rng(seed)
    specs = dict(GLOBALS)
    for i in range(layers):
        for suffix, (gguf_suffix, shape) in LAYER_ROLES.items():
            specs[f"model.layers.{i}.{suffix}"] = (f"blk.{i}.{gguf_suffix}", shape)
    return {
        name: rng.normal(0.5 if "norm" in name else 0.0, 0.2, size=shape).astype(np.float32)
        for name, (_, shape) in specs.items()
    }


def gguf_name(hf: str) -> str:
    """The GGUF name of an HF tensor name."""
    if hf in GLOBALS:
        return GLOBALS[hf][0]
    _, _, index, suffix = hf.split(".", 3)
    return f"blk.{index}.{LAYER_ROLES[suffix][0]}"


def hf_config(**overrides: Any) -> dict[str, Any]:
    """A llama config.json matching :func:`hf_tensors`."""
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTER,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "vocab_size": VOCAB,
        "tie_word_embeddings": False,
    }
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def train_tokenizer(directory: Path) -> None:
    """A byte-level BPE tokenizer.json (vocab ≤ VOCAB) and tokenizer_config.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB - 8,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
    )
    tok.train_from_iterator(CORPUS, trainer)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"eos_token": "<|endoftext|>", "model_max_length": 128}), encoding="utf-8"
    )


def write_hf(
    directory: Path,
    tokenizer_from: Path,
    tensors: Mapping[str, np.ndarray] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """A safetensors checkpoint dir: model.safetensors, config.json, tokenizer files."""
    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        dict(tensors if tensors is not None else hf_tensors()), directory / "model.safetensors"
    )
    (directory / "config.json").write_text(json.dumps(config or hf_config()), encoding="utf-8")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_from / name, directory / name)
    return directory


def tokenizer_metadata(tokenizer_dir: Path) -> tuple[list[str], list[str]]:
    """Tokens by id and merges of the trained tokenizer, for GGUF ``tokenizer.ggml.*``."""
    doc = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab: dict[str, int] = dict(doc["model"]["vocab"])
    for added in doc["added_tokens"]:
        vocab[added["content"]] = added["id"]
    tokens = [f"<unused{i}>" for i in range(VOCAB)]
    for text, index in vocab.items():
        tokens[index] = text
    merges = [m if isinstance(m, str) else " ".join(m) for m in doc["model"]["merges"]]
    return tokens, merges


def write_gguf(
    path: Path,
    tokenizer_dir: Path,
    tensors: Mapping[str, np.ndarray] | None = None,
    *,
    arch: str = "llama",
    meta: Mapping[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    tokenizer_model: str = "gpt2",
) -> Path:
    """A GGUF file with llama metadata and tokenizer; ``tensors`` use GGUF names.

    ``meta`` overrides ``<arch>.*`` sizes (key suffix -> value); ``drop`` removes
    whole keys (``tokenizer.ggml.merges``, ``general.architecture``) after writing
    them, to model converters that forgot one.
    """
    if tensors is None:
        tensors = {gguf_name(k): v for k, v in hf_tensors().items()}
    tokens, merges = tokenizer_metadata(tokenizer_dir)
    sizes: dict[str, int] = {
        "block_count": LAYERS,
        "embedding_length": HIDDEN,
        "feed_forward_length": INTER,
        "attention.head_count": HEADS,
        "attention.head_count_kv": KV_HEADS,
        "context_length": 128,
    }
    sizes.update(meta or {})
    writer = gguf.GGUFWriter(str(path), arch)
    for suffix, value in sizes.items():
        writer.add_uint32(f"{arch}.{suffix}", value)
    writer.add_tokenizer_model(tokenizer_model)
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * len(tokens))
    writer.add_token_merges(merges)
    writer.add_eos_token_id(tokens.index("<|endoftext|>"))
    for key in drop:
        writer.kv_data[0].pop(key)
    for name, array in tensors.items():
        writer.add_tensor(name, np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tensor_offset_field(path: Path, name: str) -> int:
    """Byte position of a GGUF tensor's data-offset field in the header."""
    data = path.read_bytes()
    encoded = name.encode()
    pos = data.rindex(len(encoded).to_bytes(8, "little") + encoded) + 8 + len(encoded)
    n_dims = int.from_bytes(data[pos : pos + 4], "little")
    return pos + 4 + 8 * n_dims + 4
