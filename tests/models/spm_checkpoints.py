"""Tiny random gemma2 and phi3 checkpoints with a SentencePiece tokenizer, built on the spot.

The tokenizer is a SentencePiece BPE model with byte fallback, trained here on
generated text, as Gemma's and Phi-3's are; transformers converts it into the
``tokenizer.json`` a hub checkpoint ships beside ``tokenizer.model``. Weights are
random and wide, and norms random, so a dropped or mis-offset norm shows.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n"
    "{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
PHI3_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class SpmSpec:
    """One tiny checkpoint: its architecture and its tokenizer's conventions."""

    arch: str  # HF architectures[0]
    tokenizer_class: str
    add_dummy_prefix: bool
    specials: tuple[str, ...]  # in id order from 0: the trainer's pad/eos/bos/unk ids
    chat_tokens: tuple[str, ...]
    chat_in_model: bool  # pieces of tokenizer.model (Gemma), else added tokens (Phi-3)
    template: str
    add_bos: bool
    vocab: int = 400
    sp_vocab: int = 380  # fewer than vocab: the embedding has padded rows


SPM_SPECS = {
    "gemma2": SpmSpec(
        "Gemma2ForCausalLM",
        "GemmaTokenizer",
        add_dummy_prefix=False,  # Gemma's tokenizer.model does not prefix a space
        specials=("<pad>", "<eos>", "<bos>", "<unk>"),
        chat_tokens=("<mask>", "<start_of_turn>", "<end_of_turn>"),
        chat_in_model=True,
        add_bos=True,
        template=GEMMA_TEMPLATE,
    ),
    "phi3": SpmSpec(
        "Phi3ForCausalLM",
        "LlamaTokenizer",
        add_dummy_prefix=True,  # Llama-2's tokenizer.model, which Phi-3 reuses
        specials=("<unk>", "<s>", "</s>"),
        # Added after the model's pieces, as Phi-3's are (ids 32000+ there); llama.cpp's
        # phi3 vocabulary loader requires <|endoftext|>.
        chat_tokens=("<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"),
        chat_in_model=False,
        add_bos=False,  # Phi-3-mini's tokenizer_config says add_bos_token false
        template=PHI3_TEMPLATE,
    ),
}


def corpus(lines: int = 400, seed: int = 0) -> list[str]:
    """Generated text: arithmetic, sentences, code, accents, so every piece kind occurs."""
    rng = random.Random(seed)
    words = ["the", "a", "capital", "of", "France", "is", "Paris", "Japan", "Tokyo", "model"]
    out = []
    for i in range(lines):
        a, b = rng.randint(0, 999), rng.randint(0, 99)
        kind = i % 4
        if kind == 0:
            out.append(f"What is {a} + {b}? {a + b}.")
        elif kind == 1:
            out.append(" ".join(rng.choice(words) for _ in range(8)).capitalize() + ".")
        elif kind == 2:
            out.append(f"def f{b}(x):\n    return x * {a}\n")
        else:
            out.append(f"Café naïve déjà vu, {a}  items\tin  Zürich.")
    return out


def _train_sentencepiece(out: Path, spec: SpmSpec) -> None:
    import sentencepiece as spm

    ids = {name: spec.specials.index(tok) for name, tok in _special_roles(spec).items()}
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()),
        model_prefix=str(out / "tokenizer"),
        vocab_size=spec.sp_vocab,
        model_type="bpe",
        byte_fallback=True,
        split_digits=True,
        character_coverage=1.0,
        # Gemma's and Llama's models do not normalize; llama.cpp implements no normalizer.
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=spec.add_dummy_prefix,
        allow_whitespace_only_pieces=True,
        pad_id=ids.get("pad", -1),
        eos_id=ids["eos"],
        bos_id=ids["bos"],
        unk_id=ids["unk"],
        pad_piece=spec.specials[ids["pad"]] if "pad" in ids else "<pad>",
        eos_piece=spec.specials[ids["eos"]],
        bos_piece=spec.specials[ids["bos"]],
        unk_piece=spec.specials[ids["unk"]],
        control_symbols=list(spec.chat_tokens) if spec.chat_in_model else [],
        minloglevel=2,
    )
    (out / "tokenizer.vocab").unlink()


def _special_roles(spec: SpmSpec) -> dict[str, str]:
    if spec.specials[0] == "<pad>":
        return {"pad": "<pad>", "eos": "<eos>", "bos": "<bos>", "unk": "<unk>"}
    return {"unk": "<unk>", "bos": "<s>", "eos": "</s>"}


def _write_hf_tokenizer(out: Path, spec: SpmSpec) -> Any:
    """transformers' own slow->fast conversion of tokenizer.model writes tokenizer.json,
    as the checkpoints on the hub ship it."""
    import transformers

    config: dict[str, Any] = {f"{k}_token": v for k, v in _special_roles(spec).items()}
    config["tokenizer_class"] = spec.tokenizer_class
    config["add_bos_token"] = spec.add_bos
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    tok = transformers.AutoTokenizer.from_pretrained(out)
    added: dict[str, Any] = {
        "additional_special_tokens": [t for t in spec.chat_tokens if t != "<mask>"]
    }
    if not spec.chat_in_model:
        added["pad_token"] = "<|endoftext|>"  # Phi-3 pads with it (id 32000 there)
    tok.add_special_tokens(added)
    tok.chat_template = spec.template
    tok.save_pretrained(out)
    (out / "chat_template.jinja").unlink(missing_ok=True)  # kept in tokenizer_config.json
    # transformers 5 lists added tokens in tokenizer.json only; hub checkpoints (and
    # llama.cpp's converter, which reads it) also have them in tokenizer_config.json.
    backend = json.loads((out / "tokenizer.json").read_text())
    if spec.add_dummy_prefix:
        # transformers 5 converts a dummy prefix into Metaspace(prepend_scheme="first"),
        # which does not prefix text that starts with a space; Phi-3's tokenizer.json
        # (and SentencePiece itself) always prefix. This is how Phi-3 ships it.
        backend["normalizer"] = {
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": "\u2581"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
            ],
        }
        backend["pre_tokenizer"] = None
        (out / "tokenizer.json").write_text(json.dumps(backend, ensure_ascii=False))
    added = backend["added_tokens"]
    saved = json.loads((out / "tokenizer_config.json").read_text())
    saved["added_tokens_decoder"] = {str(a.pop("id")): a for a in added}
    saved["chat_template"] = spec.template
    (out / "tokenizer_config.json").write_text(json.dumps(saved, indent=2))
    return transformers.AutoTokenizer.from_pretrained(out)


def _config(spec: SpmSpec, ids: dict[str, int]) -> Any:
    import transformers

    common: dict[str, Any] = {
        "vocab_size": spec.vocab,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "rms_norm_eps": 1e-5,
        "bos_token_id": ids["bos"],
        "eos_token_id": ids["eos"],
        "pad_token_id": ids["pad"],
    }
    if spec.arch == "Gemma2ForCausalLM":
        # A short window, so the sliding layers attend differently from the full ones
        # on the test prompts: a GGUF without the window is visible in the logits.
        return transformers.Gemma2Config(
            **common,
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=8,
            attn_logit_softcapping=50.0,
            final_logit_softcapping=30.0,
        )
    return transformers.Phi3Config(**common, original_max_position_embeddings=256)


def build_spm_checkpoint(out: Path, spec: SpmSpec, seed: int = 0) -> Path:
    """Write a random-initialised checkpoint (weights, config, tokenizer) to ``out``."""
    import torch
    import transformers

    out.mkdir(parents=True, exist_ok=True)
    _train_sentencepiece(out, spec)
    tok = _write_hf_tokenizer(out, spec)
    ids = {k: int(tok.convert_tokens_to_ids(v)) for k, v in _special_roles(spec).items()}
    ids["pad"] = int(tok.pad_token_id)
    config = _config(spec, ids)
    torch.manual_seed(seed)
    model = getattr(transformers, spec.arch)(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 1 and "norm" in name:
                # Gemma stores scale - 1: around 0 here is a scale around 1.
                base = 0.0 if spec.arch == "Gemma2ForCausalLM" else 1.0
                param.copy_(base + 0.3 * torch.randn_like(param))
            else:
                param.copy_(0.15 * torch.randn_like(param))
    model.save_pretrained(out)
    (out / "generation_config.json").unlink(missing_ok=True)
    return out
