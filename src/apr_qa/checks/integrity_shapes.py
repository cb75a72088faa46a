"""G0-INTEGRITY-001: what the config declares against what the tensors hold.

The declared side is config.json for a safetensors checkpoint and the
``<arch>.*`` keys of a GGUF file (plus its token count), both read by
:class:`apr_qa.models.config.ModelConfig`; the seen side is the tensor table
(shapes only, no data). What each architecture holds, under which names and in
which shapes, is :mod:`apr_qa.models.architectures`: layers are counted from
tensor names, the hidden size and vocabulary from the token embedding, and every
tensor of the architecture's layout is compared with the shape its config
implies (phi3's fused qkv and gate_up, qwen2's biases, gemma2's extra norms). An
architecture not in the table is compared where its tensors follow llama's
names, nothing is required of it, and the finding says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from apr_qa.checks.finding import Finding, Ledger
from apr_qa.models.architectures import (
    LAYER_PREFIX,
    Dims,
    ModelFormat,
    architecture,
    gguf_architecture,
)
from apr_qa.models.config import ModelConfig

__all__ = ["Claim", "check_shapes"]

GATE = "G0-INTEGRITY-001"

# The playbook's model.expected_* keys and the config key each one restates.
EXPECTED_KEYS = {
    "expected_num_layers": "num_hidden_layers",
    "expected_hidden_dim": "hidden_size",
    "expected_vocab_size": "vocab_size",
    "expected_num_heads": "num_attention_heads",
    "expected_num_kv_heads": "num_key_value_heads",
    "expected_intermediate_dim": "intermediate_size",
}


@dataclass(frozen=True)
class Claim:
    """One declared value and where it was declared (``GGUF tokenizer.ggml.tokens count``)."""

    value: int
    label: str


Shape = tuple[int | None, ...]


def _fits(shape: tuple[int, ...], want: Shape) -> bool:
    return len(shape) == len(want) and all(
        w is None or s == w for s, w in zip(shape, want, strict=True)
    )


def _show(want: Shape) -> str:
    shown = ", ".join("?" if w is None else str(w) for w in want)
    return f"({shown},)" if len(want) == 1 else f"({shown})"


class _Shapes:
    """One pass of comparisons over a tensor table; see :func:`check_shapes`."""

    def __init__(
        self, fmt: ModelFormat, shapes: Mapping[str, tuple[int, ...]], config: ModelConfig
    ) -> None:
        self.led = Ledger(GATE)
        self.fmt = fmt
        self.arch = (architecture if fmt == "safetensors" else gguf_architecture)(config.model_type)
        self.prefix = LAYER_PREFIX[fmt]
        self.shapes = shapes
        self.config = config
        self.cfg = dict(config.sizes)
        for problem in config.problems:
            self.led.fail(problem)
        layer = re.compile(rf"^{re.escape(self.prefix)}\.(\d+)\.")
        self.indices = sorted({int(m.group(1)) for name in shapes if (m := layer.match(name))})
        self.recognised = self.arch.known or bool(self.indices) or self._name("embed") in shapes
        self.rows: int | None = None
        self.width: int | None = None
        self.listed: set[str] = set()  # tensors the layout compared

    def _name(self, role: str, layer: int | None = None) -> str:
        found = self.arch.role(role)
        assert found is not None  # every layout has the global roles
        return found.name(self.fmt, layer)

    def _claim(self, key: str) -> tuple[int, str] | None:
        value = self.cfg.get(key)
        return None if value is None else (value, self.config.labels.get(key, key))

    def _require(self, name: str, what: str) -> tuple[int, ...] | None:
        shape = self.shapes.get(name)
        if shape is None and self.recognised:
            self.led.fail(f"missing tensor {name} ({what})")
        return shape

    def layers(self) -> None:
        idx = self.indices
        if idx and idx != list(range(idx[-1] + 1)):
            gaps = sorted(set(range(idx[-1] + 1)) - set(idx))
            listed = ", ".join(f"{self.prefix}.{i}" for i in gaps[:5])
            self.led.fail(f"layer indices have gaps: no tensors for {listed}")
        claim = self._claim("num_hidden_layers")
        if claim is not None and self.recognised:
            value, label = claim
            span = f" ({self.prefix}.{idx[0]}..{idx[-1]})" if idx else ""
            self.led.check(
                value == len(idx),
                "layers",
                f"{label}={value} but tensors hold {len(idx)} layers{span}",
            )

    def embedding(self, claims: Mapping[str, Claim]) -> None:
        name = self._name("embed")
        self.listed.add(name)
        shape = self._require(name, "token embedding")
        if shape is None:
            return
        if len(shape) != 2:
            self.led.fail(f"{name} has shape {shape}, expected 2 dimensions (vocab, hidden)")
            return
        self.rows, self.width = shape
        hidden = self._claim("hidden_size")
        if hidden is not None:
            self.led.check(
                hidden[0] == self.width,
                "hidden size",
                f"{hidden[1]}={hidden[0]} but {name} is {self.width} wide (shape {shape})",
            )
        vocabs = [self._claim("vocab_size"), *((c.value, c.label) for c in claims.values())]
        for vocab in vocabs:
            if vocab is not None:
                self.led.check(
                    vocab[0] == self.rows,
                    f"vocab ({vocab[1]})",
                    f"{vocab[1]}={vocab[0]} but {name} has {self.rows} rows (shape {shape})",
                )

    @property
    def hidden(self) -> int | None:
        return self.width if self.width is not None else self.cfg.get("hidden_size")

    @property
    def vocab(self) -> int | None:
        return self.rows if self.rows is not None else self.cfg.get("vocab_size")

    def _tied(self) -> bool | None:
        if self.fmt == "gguf":
            return True  # llama.cpp reuses token_embd when output.weight is absent
        declared = self.config.tie_word_embeddings
        if declared is not None or not self.arch.known:
            return declared
        return self.arch.tied_by_default

    def output(self) -> None:
        head_name = self._name("output")
        self.listed.add(head_name)
        head = self.shapes.get(head_name)
        if head is not None:
            want: Shape = (self.vocab, self.hidden)
            self.led.check(
                _fits(head, want),
                "output projection",
                f"{head_name} has shape {head}, expected {_show(want)} "
                f"(vocab {self.vocab}, hidden {self.hidden})",
            )
        elif self._tied() is False:
            self._require(head_name, "output projection; embeddings are not tied")
        norm_name = self._name("output_norm")
        self.listed.add(norm_name)
        norm = self._require(norm_name, "final norm")
        if norm is not None:
            self._fit(norm_name, norm, (self.hidden,), f"hidden {self.hidden}")

    def _fit(self, name: str, shape: tuple[int, ...], want: Shape, why: str) -> None:
        self.led.check(
            _fits(shape, want), name, f"{name} has shape {shape}, expected {_show(want)} ({why})"
        )

    def _head_dim(self) -> int | None:
        heads, hidden = self.cfg.get("num_attention_heads"), self.hidden
        head_dim = self.cfg.get("head_dim")
        if head_dim is not None or heads is None or hidden is None:
            return head_dim
        if hidden % heads:
            label = self.config.labels["num_attention_heads"]
            self.led.fail(f"hidden size {hidden} is not divisible by {label}={heads}")
            return None
        return hidden // heads

    def blocks(self) -> None:
        heads = self.cfg.get("num_attention_heads")
        dims = Dims(
            vocab=self.vocab,
            hidden=self.hidden,
            heads=heads,
            kv_heads=self.cfg.get("num_key_value_heads", heads),
            head_dim=self._head_dim(),
            ffn=self.cfg.get("intermediate_size"),
        )
        declared = self.cfg.get("num_hidden_layers") or 0
        count = max(declared, self.indices[-1] + 1 if self.indices else 0)
        for layer in range(count):
            for role in self.arch.roles(per_layer=True):
                name = role.name(self.fmt, layer)
                self.listed.add(name)
                shape = self.shapes.get(name)
                if shape is None:
                    if self.arch.known:
                        self._require(name, role.label(layer))
                    continue
                want, why = dims.shape(role)
                self._fit(name, shape, want, why)

    def biases(self) -> None:
        for name, shape in self.shapes.items():
            if not name.endswith(".bias") or name in self.listed:
                continue
            weight = self.shapes.get(name.removesuffix(".bias") + ".weight")
            if weight is not None and len(weight) == 2:
                self._fit(name, shape, (weight[0],), f"rows of its weight {weight}")

    def _ffn_width(self) -> int | None:
        gate = self.arch.role("gate")
        if gate is not None:
            seen = self.shapes.get(gate.name(self.fmt, 0))
            return seen[0] if seen else None
        fused = self.arch.role("gate_up")
        seen = self.shapes.get(fused.name(self.fmt, 0)) if fused is not None else None
        return seen[0] // 2 if seen else None

    def expected(self, expected: Mapping[str, int]) -> list[str]:
        embed = self._name("embed")
        ffn = self._ffn_width()
        seen: dict[str, tuple[int | None, str]] = {
            "expected_num_layers": (len(self.indices) if self.indices else None, "layers held"),
            "expected_hidden_dim": (self.width, f"{embed} width"),
            "expected_vocab_size": (self.rows, f"{embed} rows"),
            "expected_intermediate_dim": (
                ffn if ffn is not None else self.cfg.get("intermediate_size"),
                "feed-forward width",
            ),
        }
        not_compared = []
        for key, want in sorted(expected.items()):
            config_key = EXPECTED_KEYS.get(key)
            value, where = seen.get(key, (None, ""))
            if value is None and config_key is not None and config_key in self.cfg:
                value, where = self.cfg[config_key], self.config.labels[config_key]
            if value is None:
                not_compared.append(key)
                continue
            self.led.check(value == want, key, f"playbook {key}={want} but {where} is {value}")
        return not_compared

    def unchecked(self) -> str:
        """What this pass could not check, for the reason (empty for a known layout)."""
        if self.arch.known:
            return ""
        model_type = self.config.model_type
        return (
            f"; model type {model_type!r} is not in the architecture table, so no tensor was "
            "required and only tensors with llama's names were compared"
        )


def check_shapes(
    fmt: ModelFormat,
    shapes: Mapping[str, tuple[int, ...]],
    config: ModelConfig,
    *,
    claims: Mapping[str, Claim] | None = None,
    expected: Mapping[str, int] | None = None,
    problems: tuple[str, ...] = (),
) -> Finding:
    """Compare declared sizes with the tensor table; one finding for G0-INTEGRITY-001.

    ``config`` is what the artifact declares; its ``model_type`` picks the layout
    (for GGUF, ``general.architecture``). ``claims`` are further declared vocabulary
    sizes (a GGUF token count). ``problems`` are defects already found in the
    container (an unreadable tensor) that belong to this gate.
    """
    run = _Shapes(fmt, shapes, config)
    for problem in problems:
        run.led.fail(problem)
    run.layers()
    run.embedding(claims or {})
    run.output()
    run.blocks()
    run.biases()
    not_compared = run.expected(expected or {})
    summary = ", ".join(
        f"{what} {value}"
        for what, value in (
            ("layers", len(run.indices) if run.indices else None),
            ("hidden", run.hidden),
            ("vocab", run.vocab),
            ("heads", run.cfg.get("num_attention_heads")),
            ("kv heads", run.cfg.get("num_key_value_heads")),
            ("intermediate", run.cfg.get("intermediate_size")),
        )
        if value is not None
    )
    layout = run.arch.name or "unknown"
    return run.led.finding(
        passed=f"{len(run.led.compared)} shape comparisons agree ({summary}; {layout} layout)"
        + run.unchecked(),
        skipped=(
            f"nothing to compare: no tensor follows the {fmt} naming this check knows "
            f"(model type {config.model_type!r}) and no expected shape applies"
        ),
        details={
            "model_type": config.model_type,
            "layout": run.arch.name if run.arch.known else None,
            "layers_seen": len(run.indices),
            "embedding_shape": [run.rows, run.width] if run.rows is not None else None,
            "expected_not_compared": not_compared,
        },
    )
