"""One reader of a model's configuration: ``config.json``, or a GGUF file's metadata.

:func:`read_config_json` parses the file (the one place that does);
:class:`ModelConfig` turns either source into typed facts: the architecture, the
sizes the tensors must agree with, tied embeddings. A declared value that is not
usable (``"hidden_size": "32"``) is not an exception here: it is kept as a
problem, because for G0 a broken config is evidence about the model, while the
converter, which needs the value, raises it (:meth:`ModelConfig.require`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apr_qa.errors import UsageError

__all__ = ["CONFIG_FILE", "GGUF_KEYS", "SIZE_KEYS", "ModelConfig", "read_config_json"]

CONFIG_FILE = "config.json"

SIZE_KEYS = (
    "num_hidden_layers",
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
)
"""The sizes (Hugging Face names) a model's tensors must agree with."""

GGUF_KEYS: Mapping[str, str] = {
    "num_hidden_layers": "block_count",
    "hidden_size": "embedding_length",
    "intermediate_size": "feed_forward_length",
    "num_attention_heads": "attention.head_count",
    "num_key_value_heads": "attention.head_count_kv",
    "head_dim": "attention.key_length",
    "vocab_size": "vocab_size",
    "max_position_embeddings": "context_length",
    "rms_norm_eps": "attention.layer_norm_rms_epsilon",
    "rope_theta": "rope.freq_base",
}
"""Hugging Face config key -> the GGUF metadata key after ``<arch>.``."""


def read_config_json(directory: Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """The ``config.json`` of checkpoint ``directory`` as a dict.

    Raises ``UsageError`` when it is not a JSON object, or is missing (``{}``
    instead with ``missing_ok``).
    """
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        if missing_ok:
            return {}
        raise UsageError(f"{path}: missing; not a Hugging Face checkpoint")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise UsageError(f"{path}: not a JSON object")
    return config


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class ModelConfig:
    """A model's declared configuration, typed.

    ``model_type`` is config.json's ``model_type`` (or a GGUF file's
    ``general.architecture``). ``sizes`` holds every declared size of
    :data:`SIZE_KEYS` that is a positive integer; ``labels`` says where each
    declared size came from (``config.json hidden_size``, ``GGUF llama.block_count``),
    valid or not; ``problems`` lists the declared sizes that are not positive
    integers. ``tie_word_embeddings`` is ``None`` when not declared. ``raw`` is the
    whole source, for the keys only one consumer needs (rope, activation).
    """

    model_type: str | None
    architectures: tuple[str, ...]
    sizes: Mapping[str, int]
    labels: Mapping[str, str]
    problems: tuple[str, ...]
    tie_word_embeddings: bool | None
    raw: Mapping[str, Any]

    @classmethod
    def from_hf(cls, raw: Mapping[str, Any]) -> ModelConfig:
        """Facts of a parsed ``config.json``."""
        declared = {k: (raw[k], f"{CONFIG_FILE} {k}") for k in SIZE_KEYS if raw.get(k) is not None}
        model_type = raw.get("model_type")
        archs = raw.get("architectures")
        tied = raw.get("tie_word_embeddings")
        return cls._of(
            model_type if isinstance(model_type, str) else None,
            tuple(a for a in archs if isinstance(a, str)) if isinstance(archs, list) else (),
            declared,
            tied if isinstance(tied, bool) else None,
            raw,
        )

    @classmethod
    def from_gguf(cls, metadata: Mapping[str, Any]) -> ModelConfig:
        """Facts of a GGUF file's metadata (``<arch>.*`` keys under Hugging Face names).

        Tying is not declared in GGUF (llama.cpp ties when ``output.weight`` is
        absent), so ``tie_word_embeddings`` is ``None``.
        """
        arch = metadata.get("general.architecture")
        declared: dict[str, tuple[object, str]] = {}
        if isinstance(arch, str):
            for key in SIZE_KEYS:
                gguf_key = f"{arch}.{GGUF_KEYS[key]}"
                if metadata.get(gguf_key) is not None:
                    declared[key] = (metadata[gguf_key], f"GGUF {gguf_key}")
        return cls._of(arch if isinstance(arch, str) else None, (), declared, None, metadata)

    @classmethod
    def read(cls, directory: Path) -> ModelConfig:
        """Facts of checkpoint ``directory``'s ``config.json`` (``UsageError`` if unusable)."""
        return cls.from_hf(read_config_json(directory))

    @classmethod
    def _of(
        cls,
        model_type: str | None,
        architectures: tuple[str, ...],
        declared: Mapping[str, tuple[object, str]],
        tied: bool | None,
        raw: Mapping[str, Any],
    ) -> ModelConfig:
        sizes: dict[str, int] = {}
        problems: list[str] = []
        for key, (value, label) in declared.items():
            if _positive(value):
                assert isinstance(value, int)  # for mypy: _positive checked it
                sizes[key] = value
            else:
                problems.append(f"{label}={value!r} is not a positive integer")
        labels = {key: label for key, (_, label) in declared.items()}
        return cls(model_type, architectures, sizes, labels, tuple(problems), tied, raw)

    def size(self, key: str) -> int | None:
        """A declared size of :data:`SIZE_KEYS`, or ``None`` (undeclared or invalid)."""
        return self.sizes.get(key)

    def require(self, key: str, where: Path | str = CONFIG_FILE) -> int:
        """A size the caller cannot do without; ``UsageError`` naming ``where`` if unusable."""
        value = self.sizes.get(key)
        if value is None:
            raise UsageError(
                f"{where}: {key} must be a positive integer, got {self.raw.get(key)!r}"
            )
        return value

    @property
    def kv_heads(self) -> int | None:
        """Key/value heads: declared, else the attention heads (no grouping)."""
        return self.sizes.get("num_key_value_heads", self.sizes.get("num_attention_heads"))

    @property
    def head_dim(self) -> int | None:
        """Per-head size: declared ``head_dim``, else hidden ÷ heads when that divides."""
        declared = self.sizes.get("head_dim")
        if declared is not None:
            return declared
        hidden, heads = self.sizes.get("hidden_size"), self.sizes.get("num_attention_heads")
        if hidden is None or heads is None or hidden % heads:
            return None
        return hidden // heads
