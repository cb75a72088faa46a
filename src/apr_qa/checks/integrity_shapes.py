"""G0-INTEGRITY-001: what the config declares against what the tensors hold.

The declared side is config.json for a safetensors checkpoint and the
``<arch>.*`` keys of a GGUF file (plus its token count); the seen side is the
tensor table (shapes only, no data). Layers are counted from tensor names, the
hidden size and vocabulary from the token embedding, heads from the q/k/v
projections' rows against the head size, the feed-forward width from the MLP
projections. Required tensors are listed for the decoder layouts this check knows
(llama, mistral, qwen2, qwen3: one naming for each format); for other models
only the tensors that match the naming are compared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from apr_qa.checks.finding import Finding, Ledger

__all__ = ["Claim", "check_shapes"]

GATE = "G0-INTEGRITY-001"

# Model types whose every layer must hold each role below (all default to untied
# output embeddings in transformers, so a missing lm_head is a defect for them).
KNOWN_LAYOUTS = frozenset({"llama", "mistral", "qwen2", "qwen3"})

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
    """One declared value and where it was declared (``config.json hidden_size``)."""

    value: object
    label: str


@dataclass(frozen=True)
class _Naming:
    stem: str  # layer prefix without the index: "model.layers", "blk"
    embed: str
    norm: str
    head: str
    roles: Mapping[str, str]

    @property
    def layer_re(self) -> re.Pattern[str]:
        return re.compile(rf"^{re.escape(self.stem)}\.(\d+)\.")

    def tensor(self, layer: int, role: str) -> str:
        return f"{self.stem}.{layer}.{self.roles[role]}"


NAMINGS = {
    "safetensors": _Naming(
        stem="model.layers",
        embed="model.embed_tokens.weight",
        norm="model.norm.weight",
        head="lm_head.weight",
        roles={
            "q": "self_attn.q_proj.weight",
            "k": "self_attn.k_proj.weight",
            "v": "self_attn.v_proj.weight",
            "o": "self_attn.o_proj.weight",
            "gate": "mlp.gate_proj.weight",
            "up": "mlp.up_proj.weight",
            "down": "mlp.down_proj.weight",
            "attn_norm": "input_layernorm.weight",
            "ffn_norm": "post_attention_layernorm.weight",
        },
    ),
    "gguf": _Naming(
        stem="blk",
        embed="token_embd.weight",
        norm="output_norm.weight",
        head="output.weight",
        roles={
            "q": "attn_q.weight",
            "k": "attn_k.weight",
            "v": "attn_v.weight",
            "o": "attn_output.weight",
            "gate": "ffn_gate.weight",
            "up": "ffn_up.weight",
            "down": "ffn_down.weight",
            "attn_norm": "attn_norm.weight",
            "ffn_norm": "ffn_norm.weight",
        },
    ),
}

Shape = tuple[int | None, ...]


def _fits(shape: tuple[int, ...], want: Shape) -> bool:
    return len(shape) == len(want) and all(
        w is None or s == w for s, w in zip(shape, want, strict=True)
    )


def _show(want: Shape) -> str:
    shown = ", ".join("?" if w is None else str(w) for w in want)
    return f"({shown},)" if len(want) == 1 else f"({shown})"


def _mul(a: int | None, b: int | None) -> int | None:
    return a * b if a is not None and b is not None else None


class _Shapes:
    """One pass of comparisons over a tensor table; see :func:`check_shapes`."""

    def __init__(
        self,
        fmt: str,
        shapes: Mapping[str, tuple[int, ...]],
        declared: Mapping[str, Claim],
        model_type: str | None,
    ) -> None:
        self.led = Ledger(GATE)
        self.naming = NAMINGS[fmt]
        self.shapes = shapes
        self.declared = declared
        self.known = model_type in KNOWN_LAYOUTS
        self.cfg = {key: self._int(key) for key in declared}
        match = self.naming.layer_re.match
        self.indices = sorted({int(m.group(1)) for name in shapes if (m := match(name))})
        self.recognised = self.known or bool(self.indices) or self.naming.embed in shapes
        self.rows: int | None = None
        self.width: int | None = None

    def _int(self, key: str) -> int | None:
        claim = self.declared[key]
        value = claim.value
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        self.led.fail(f"{claim.label}={value!r} is not a positive integer")
        return None

    def _claim(self, key: str) -> tuple[int, str] | None:
        value = self.cfg.get(key)
        return None if value is None else (value, self.declared[key].label)

    def _require(self, name: str, what: str) -> tuple[int, ...] | None:
        shape = self.shapes.get(name)
        if shape is None and self.recognised:
            self.led.fail(f"missing tensor {name} ({what})")
        return shape

    def layers(self) -> None:
        idx = self.indices
        if idx and idx != list(range(idx[-1] + 1)):
            gaps = sorted(set(range(idx[-1] + 1)) - set(idx))
            listed = ", ".join(f"{self.naming.stem}.{i}" for i in gaps[:5])
            self.led.fail(f"layer indices have gaps: no tensors for {listed}")
        claim = self._claim("num_hidden_layers")
        if claim is not None and self.recognised:
            value, label = claim
            span = f" ({self.naming.stem}.{idx[0]}..{idx[-1]})" if idx else ""
            self.led.check(
                value == len(idx),
                "layers",
                f"{label}={value} but tensors hold {len(idx)} layers{span}",
            )

    def embedding(self) -> None:
        name = self.naming.embed
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
        for key in ("vocab_size", "n_tokens"):
            vocab = self._claim(key)
            if vocab is not None:
                self.led.check(
                    vocab[0] == self.rows,
                    f"vocab ({key})",
                    f"{vocab[1]}={vocab[0]} but {name} has {self.rows} rows (shape {shape})",
                )

    @property
    def hidden(self) -> int | None:
        return self.width if self.width is not None else self.cfg.get("hidden_size")

    @property
    def vocab(self) -> int | None:
        return self.rows if self.rows is not None else self.cfg.get("vocab_size")

    def output(self, tied: bool | None) -> None:
        head = self.shapes.get(self.naming.head)
        if head is not None:
            want: Shape = (self.vocab, self.hidden)
            self.led.check(
                _fits(head, want),
                "output projection",
                f"{self.naming.head} has shape {head}, expected {_show(want)} "
                f"(vocab {self.vocab}, hidden {self.hidden})",
            )
        elif tied is False or (tied is None and self.known):
            self._require(self.naming.head, "output projection; embeddings are not tied")
        norm = self._require(self.naming.norm, "final norm")
        if norm is not None:
            self._fit(self.naming.norm, norm, (self.hidden,), f"hidden {self.hidden}")

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
            label = self.declared["num_attention_heads"].label
            self.led.fail(f"hidden size {hidden} is not divisible by {label}={heads}")
            return None
        return hidden // heads

    def blocks(self) -> None:
        hidden, inter = self.hidden, self.cfg.get("intermediate_size")
        heads = self.cfg.get("num_attention_heads")
        kv = self.cfg.get("num_key_value_heads", heads)
        head_dim = self._head_dim()
        q, k = _mul(heads, head_dim), _mul(kv, head_dim)
        q_why = f"{heads} heads × head_dim {head_dim}, hidden {hidden}"
        k_why = f"{kv} kv heads × head_dim {head_dim}, hidden {hidden}"
        wants: dict[str, tuple[Shape, str]] = {
            "q": ((q, hidden), q_why),
            "k": ((k, hidden), k_why),
            "v": ((k, hidden), k_why),
            "o": ((hidden, q), q_why),
            "gate": ((inter, hidden), f"intermediate {inter}, hidden {hidden}"),
            "up": ((inter, hidden), f"intermediate {inter}, hidden {hidden}"),
            "down": ((hidden, inter), f"hidden {hidden}, intermediate {inter}"),
            "attn_norm": ((hidden,), f"hidden {hidden}"),
            "ffn_norm": ((hidden,), f"hidden {hidden}"),
        }
        declared = self.cfg.get("num_hidden_layers") or 0
        count = max(declared, self.indices[-1] + 1 if self.indices else 0)
        for layer in range(count):
            for role, (want, why) in wants.items():
                name = self.naming.tensor(layer, role)
                shape = self.shapes.get(name)
                if shape is None:
                    if self.known:
                        self._require(name, f"layer {layer} {role}")
                    continue
                self._fit(name, shape, want, why)

    def biases(self) -> None:
        for name, shape in self.shapes.items():
            weight = self.shapes.get(name.removesuffix(".bias") + ".weight")
            if name.endswith(".bias") and weight is not None and len(weight) == 2:
                self._fit(name, shape, (weight[0],), f"rows of its weight {weight}")

    def expected(self, expected: Mapping[str, int]) -> list[str]:
        layer0_gate = self.shapes.get(self.naming.tensor(0, "gate"))
        seen: dict[str, tuple[int | None, str]] = {
            "expected_num_layers": (len(self.indices) if self.indices else None, "layers held"),
            "expected_hidden_dim": (self.width, f"{self.naming.embed} width"),
            "expected_vocab_size": (self.rows, f"{self.naming.embed} rows"),
            "expected_intermediate_dim": (
                layer0_gate[0] if layer0_gate else self.cfg.get("intermediate_size"),
                "feed-forward width",
            ),
        }
        not_compared = []
        for key, want in sorted(expected.items()):
            config_key = EXPECTED_KEYS.get(key)
            value, where = seen.get(key, (None, ""))
            if value is None and config_key is not None and config_key in self.cfg:
                value, where = self.cfg[config_key], self.declared[config_key].label
            if value is None:
                not_compared.append(key)
                continue
            self.led.check(value == want, key, f"playbook {key}={want} but {where} is {value}")
        return not_compared


def check_shapes(
    fmt: str,
    shapes: Mapping[str, tuple[int, ...]],
    declared: Mapping[str, Claim],
    *,
    model_type: str | None,
    tied: bool | None,
    expected: Mapping[str, int] | None = None,
    problems: tuple[str, ...] = (),
) -> Finding:
    """Compare declared sizes with the tensor table; one finding for G0-INTEGRITY-001.

    ``declared`` maps Hugging Face config keys (``hidden_size``, ..., ``head_dim``,
    and ``n_tokens`` for a GGUF token count) to what the artifact claims.
    ``tied`` is the declared ``tie_word_embeddings`` (``None``: not declared).
    ``problems`` are defects already found in the container (an unreadable tensor)
    that belong to this gate.
    """
    run = _Shapes(fmt, shapes, declared, model_type)
    for problem in problems:
        run.led.fail(problem)
    run.layers()
    run.embedding()
    run.output(tied)
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
    return run.led.finding(
        passed=f"{len(run.led.compared)} shape comparisons agree ({summary})",
        skipped=(
            f"nothing to compare: no tensor follows the {fmt} naming this check knows "
            f"(model type {model_type!r}) and no expected shape applies"
        ),
        details={
            "model_type": model_type,
            "layers_seen": len(run.indices),
            "embedding_shape": [run.rows, run.width] if run.rows is not None else None,
            "expected_not_compared": not_compared,
        },
    )
