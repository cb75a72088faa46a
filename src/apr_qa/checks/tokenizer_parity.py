"""F-TOK-PARITY-001..003: the GGUF's tokenizer is the checkpoint's.

- ``001`` ids: the runtimes themselves (transformers on the checkpoint,
  llama.cpp on the GGUF, each in its worker, through the ``Tokenize`` message)
  give the same ids for every text: the playbook's prompts, the reference's
  own greedy answers to them, ``tokenizer_parity.texts``, and :data:`PROBES`
  (digit runs and operators, code, whitespace runs, accents, CJK, emoji). A
  failure names the first differing text and both id lists.
- ``002`` special tokens: bos, eos and pad have the same id and the same string
  on both sides, every special token of the checkpoint sits at the same id in
  the GGUF's vocabulary, and ``add_bos_token`` agrees where both declare it.
- ``003`` chat template: both templates (``tokenizer_config.json``'s and the
  GGUF's ``tokenizer.chat_template``) render the same text for the same
  conversations, rendered by one jinja2 sandbox as transformers does. Neither
  having a template is a skip; one side only is a failure (llama.cpp then falls
  back to a format of its own).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apr_qa.checks import Artifact, Stage, register
from apr_qa.checks.differential import (
    Pair,
    Runtime,
    RuntimeUnavailable,
    Switch,
    pairs,
    playbook_prompts,
    switch,
)
from apr_qa.checks.finding import Finding, Ledger

if TYPE_CHECKING:
    from apr_qa.playbook.model import Playbook

__all__ = ["GATES", "PROBES", "TokenizerParity", "compare_pair", "reference_ids"]

IDS, SPECIAL, TEMPLATE = "F-TOK-PARITY-001", "F-TOK-PARITY-002", "F-TOK-PARITY-003"
GATES = (IDS, SPECIAL, TEMPLATE)

PROBES = (
    "What is 12 + 30?",
    "12345 678 9 = 1e-5 * (3.14 / 2) - 100%",
    "x<=y && a!=b || c>=d; i++ -> {k: v}",
    "def add(a, b):\n    return a + b\n",
    "  leading,   runs   of\t\ttabs\n\n\nand newlines  ",
    "naïve café déjà vu — Zürich",
    "日本語のテキスト 中文 한국어",
    "emoji 🙂👍🏽 🇫🇷 done",
)
"""Text that pre-tokenizers and byte-level merges are known to split differently."""
CONVERSATIONS: tuple[tuple[dict[str, str], ...], ...] = (
    ({"role": "user", "content": "What is 2 + 3?"},),
    (
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": "Capital of France?"},
    ),
)
GENERATED_TOKENS = 16


def _content(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _hf_tokenizer_config(directory: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = directory / name
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                merged.update(data)
    return merged


def _render(
    template: str, messages: Sequence[Mapping[str, str]], specials: Mapping[str, Any]
) -> str:
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    try:
        return env.from_string(template).render(
            messages=list(messages), add_generation_prompt=True, **specials
        )
    except TemplateError as e:
        return f"<template error: {e}>"


def _special_tokens(
    pair: Pair, config: Mapping[str, Any], meta: Mapping[str, Any], led: Ledger
) -> None:
    from tokenizers import Tokenizer

    path = pair.reference / "tokenizer.json"
    if not path.is_file():
        return
    hf = Tokenizer.from_file(str(path))
    tokens = meta.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list):
        return
    label = pair.quantization
    for role, key in (
        ("bos", "bos_token_id"),
        ("eos", "eos_token_id"),
        ("pad", "padding_token_id"),
    ):
        text = _content(config.get(f"{role}_token"))
        gguf_id = meta.get(f"tokenizer.ggml.{key}")
        if text is None and gguf_id is None:
            continue
        hf_id = hf.token_to_id(text) if text is not None else None
        gguf_text = (
            tokens[gguf_id] if isinstance(gguf_id, int) and 0 <= gguf_id < len(tokens) else None
        )
        led.check(
            hf_id == gguf_id and text == gguf_text,
            f"{label}: {role}",
            f"{label}: {role} token differs: checkpoint {text!r} id {hf_id}, "
            f"GGUF {gguf_text!r} id {gguf_id}",
        )
    for added in hf.get_added_tokens_decoder().values():
        if not added.special:
            continue
        hf_id = hf.token_to_id(added.content)
        at = tokens[hf_id] if hf_id is not None and hf_id < len(tokens) else None
        led.check(
            at == added.content,
            f"{label}: {added.content}",
            f"{label}: special token {added.content!r} is id {hf_id} in the checkpoint, "
            f"the GGUF has {at!r} there",
        )
    hf_bos, gguf_bos = config.get("add_bos_token"), meta.get("tokenizer.ggml.add_bos_token")
    if isinstance(hf_bos, bool) and isinstance(gguf_bos, bool):
        led.check(
            hf_bos == gguf_bos,
            f"{label}: add_bos_token",
            f"{label}: add_bos_token is {hf_bos} in the checkpoint, {gguf_bos} in the GGUF",
        )


def _template(pair: Pair, config: Mapping[str, Any], meta: Mapping[str, Any], led: Ledger) -> None:
    hf, gguf = config.get("chat_template"), meta.get("tokenizer.chat_template")
    label = pair.quantization
    if not isinstance(hf, str) and not isinstance(gguf, str):
        return
    if not isinstance(hf, str) or not isinstance(gguf, str):
        side = "checkpoint" if isinstance(hf, str) else "GGUF"
        led.fail(f"{label}: only the {side} has a chat template")
        return
    specials = {
        f"{role}_token": _content(config.get(f"{role}_token")) or "" for role in ("bos", "eos")
    }
    for messages in CONVERSATIONS:
        a, b = _render(hf, messages, specials), _render(gguf, messages, specials)
        led.check(
            a == b,
            f"{label}: template",
            f"{label}: the chat templates render differently: checkpoint {a!r}, GGUF {b!r}",
        )


def reference_ids(path: Path, texts: list[str], trust: bool = False) -> dict[str, list[int]]:
    """The checkpoint runtime's ids for ``texts`` and for its own greedy answers to the
    first few (RuntimeUnavailable when it does not load)."""
    with Runtime(path, "safetensors", trust_remote_code=trust) as hf:
        answers = [hf.generate(t, GENERATED_TOKENS).text for t in texts[:4]]
        corpus = list(dict.fromkeys([*texts, *(a for a in answers if a.strip())]))
        return {t: hf.tokenize(t) for t in corpus}


def _ids(pair: Pair, want: Mapping[str, list[int]], led: Ledger) -> str | None:
    """Compare ids; the reason nothing could be compared, or None."""
    try:
        with Runtime(pair.gguf, "gguf") as gg:
            got = {t: gg.tokenize(t) for t in want}
    except RuntimeUnavailable as e:
        return f"not compared: {e}"
    label = pair.quantization
    for text, ids in want.items():
        led.check(
            ids == got[text],
            f"{label}: {text[:40]!r}",
            f"{label}: {text!r} tokenizes differently: checkpoint {ids}, GGUF {got[text]}",
        )
    return None


def compare_pair(
    pair: Pair,
    sw: Switch,
    want: Mapping[str, list[int]] | str,
    ledgers: Mapping[str, Ledger],
) -> list[str]:
    """Compare one pair into ``ledgers``; reasons some comparison could not be made.

    ``want`` is :func:`reference_ids`' answer, or why the checkpoint did not load.
    """
    from apr_qa.errors import UsageError
    from apr_qa.models.readers import open_model

    try:
        with open_model(pair.gguf) as reader:
            meta = reader.metadata
    except UsageError as e:
        return [f"not compared: {e}"]
    config = _hf_tokenizer_config(pair.reference)
    if sw.runs(SPECIAL):
        _special_tokens(pair, config, meta, ledgers[SPECIAL])
    if sw.runs(TEMPLATE):
        _template(pair, config, meta, ledgers[TEMPLATE])
    if sw.runs(IDS):
        reason = want if isinstance(want, str) else _ids(pair, want, ledgers[IDS])
        return [reason] if reason is not None else []
    return []


@register(Stage.MODEL)
class TokenizerParity:
    """F-TOK-PARITY-001..003 over every (safetensors, GGUF) pair of the model."""

    name = "tokenizer-parity"

    def check(self, playbook: Playbook, artifacts: Sequence[Artifact]) -> Iterable[Finding]:
        """One finding per gate the playbook asks for, over all pairs."""
        sw = switch(playbook, "tokenizer_parity")
        if not sw.enabled:
            return []
        extra = [str(t) for t in sw.options.get("texts", ())]
        texts = list(dict.fromkeys([*playbook_prompts(playbook), *extra, *PROBES]))
        ledgers = {gate: Ledger(gate) for gate in GATES}
        found = pairs(playbook, artifacts)
        why: list[str] = []
        wanted: dict[Path, dict[str, list[int]] | str] = {}
        for pair in found:
            if sw.runs(IDS) and pair.reference not in wanted:
                try:
                    trust = playbook.model.trust_remote_code
                    wanted[pair.reference] = reference_ids(pair.reference, texts, trust)
                except RuntimeUnavailable as e:
                    wanted[pair.reference] = f"not compared: {e}"
            why += compare_pair(pair, sw, wanted.get(pair.reference, {}), ledgers)
        what = ", ".join(p.quantization for p in found)
        skipped = (
            "; ".join(why)
            if why
            else "not compared: the model has no safetensors and GGUF pair"
            if not found
            else "not compared: neither side declares it"
        )
        passed = {
            IDS: f"the same ids for {len(texts)} texts and the reference's answers (gguf {what})",
            SPECIAL: f"bos, eos, pad and special tokens at the same ids (gguf {what})",
            TEMPLATE: f"the chat templates render the same conversations (gguf {what})",
        }
        return [
            ledgers[gate].finding(passed=passed[gate], skipped=skipped)
            for gate in GATES
            if sw.runs(gate)
        ]
