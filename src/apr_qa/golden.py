"""Golden outputs: the reference artifact's greedy answers, kept to compare later runs with.

``apr-qa golden PLAYBOOK -o golden.jsonl`` asks the playbook's reference (the
safetensors checkpoint, on transformers, on the CPU, at temperature 0) every
explicit scenario in each of the playbook's run and chat modalities, and writes
the text and generated token ids of each. A playbook names the file with its
hash (``golden: {path, sha256}``); every later cell asks the same scenarios and
compares token ids (:class:`checks.golden.GoldenOutputs`, F-REGR-GOLDEN-001).

The comparison needs the token ids, which evidence records do not keep: so it
runs in the cell, where the generation is at hand, with the golden file loaded,
and records only the verdict, the agreement rate and the first divergence.

File format (JSON lines, versioned): a header line
``{"kind": "apr-qa-golden", "schema_version": 1, "model": ..., "reference": ...}``,
then one line per entry ``{"scenario", "modality", "prompt", "messages",
"max_tokens", "text", "token_ids", "finish_reason", "top_logprobs"}``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apr_qa.errors import UsageError

__all__ = [
    "GOLDEN_KIND",
    "GOLDEN_SCHEMA_VERSION",
    "GoldenEntry",
    "GoldenFile",
    "TokenAgreement",
    "agreement",
    "file_sha256",
    "read_golden",
    "record_golden",
    "top_logprobs",
    "write_golden",
]

GOLDEN_KIND = "apr-qa-golden"
GOLDEN_SCHEMA_VERSION = 1
MAX_GOLDEN_BYTES = 64 * 1024 * 1024
TOP_K = 5


@dataclass(frozen=True)
class GoldenEntry:
    """One scenario's reference answer in one modality."""

    scenario: str
    modality: str
    prompt: str | None
    messages: tuple[Mapping[str, str], ...] | None
    max_tokens: int
    text: str
    token_ids: tuple[int, ...]
    finish_reason: str
    top_logprobs: tuple[tuple[tuple[int, float], ...], ...] | None = None
    """Per generated token, the reference's ``TOP_K`` most likely ``(id, log-probability)``
    at that step (run modality; None where the prompt's ids are not the raw prompt's)."""


@dataclass(frozen=True)
class GoldenFile:
    """A golden file read back: which model and reference, and its entries."""

    model: str
    reference: str
    entries: tuple[GoldenEntry, ...]


@dataclass(frozen=True)
class TokenAgreement:
    """How a generation's token ids agree with the golden ones, position by position."""

    rate: float
    """Positions equal ÷ the longer sequence's length (1.0 only when identical)."""
    first_divergence: int | None
    """The first position that differs (a length difference counts); None when identical."""
    golden_tokens: int
    tokens: int


def agreement(golden: Sequence[int], got: Sequence[int]) -> TokenAgreement:
    """Compare two token id sequences (the golden one first)."""
    longest = max(len(golden), len(got))
    same = sum(1 for a, b in zip(golden, got, strict=False) if a == b)
    first = next((i for i, (a, b) in enumerate(zip(golden, got, strict=False)) if a != b), None)
    if first is None and len(golden) != len(got):
        first = min(len(golden), len(got))
    rate = same / longest if longest else 1.0
    return TokenAgreement(rate, first, len(golden), len(got))


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, as a playbook's ``golden.sha256`` names it."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_golden(path: Path, golden: GoldenFile) -> str:
    """Write ``golden`` to ``path``; returns the file's sha256."""
    header = {
        "kind": GOLDEN_KIND,
        "schema_version": GOLDEN_SCHEMA_VERSION,
        "model": golden.model,
        "reference": golden.reference,
    }
    lines = [json.dumps(header, ensure_ascii=False)]
    for e in golden.entries:
        entry = {
            "scenario": e.scenario,
            "modality": e.modality,
            "prompt": e.prompt,
            "messages": [dict(m) for m in e.messages] if e.messages is not None else None,
            "max_tokens": e.max_tokens,
            "text": e.text,
            "token_ids": list(e.token_ids),
            "finish_reason": e.finish_reason,
            "top_logprobs": (
                [[[i, p] for i, p in step] for step in e.top_logprobs]
                if e.top_logprobs is not None
                else None
            ),
        }
        lines.append(json.dumps(entry, ensure_ascii=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return file_sha256(path)


def _steps(value: Any) -> tuple[tuple[tuple[int, float], ...], ...] | None:
    if value is None:
        return None
    return tuple(tuple((int(i), float(p)) for i, p in step) for step in value)


def top_logprobs(
    logits: Any, prompt_len: int, generated: Sequence[int], k: int = TOP_K
) -> tuple[tuple[tuple[int, float], ...], ...] | None:
    """The top-``k`` log-probabilities at each generated step, from teacher-forced logits
    of prompt + generation (row ``j`` predicts token ``j + 1``). None when the scored
    sequence does not reproduce the greedy choice at every step: then the prompt the
    runtime fed was not the raw prompt's ids, and the figures would describe another input."""
    import numpy as np

    steps = []
    for i, token in enumerate(generated):
        row = np.asarray(logits[prompt_len - 1 + i], dtype=np.float64)
        logp = row - (row.max() + np.log(np.exp(row - row.max()).sum()))
        best = np.argsort(-logp, kind="stable")[:k]
        if int(best[0]) != int(token) and logp[int(token)] < logp[int(best[0])]:
            return None
        steps.append(tuple((int(t), round(float(logp[t]), 6)) for t in best))
    return tuple(steps)


def read_golden(path: Path, *, sha256: str | None, models: Sequence[str] = ()) -> GoldenFile:
    """Read a golden file, refusing one whose bytes do not match ``sha256`` (when given)
    or that was recorded from a model not in ``models`` (when given)."""
    if not path.is_file():
        raise UsageError(f"{path}: golden file not found")
    if path.stat().st_size > MAX_GOLDEN_BYTES:
        raise UsageError(f"{path}: larger than {MAX_GOLDEN_BYTES} bytes; not a golden file")
    if sha256 is not None and file_sha256(path) != sha256.lower():
        raise UsageError(
            f"{path}: sha256 {file_sha256(path)} does not match the playbook's golden.sha256 "
            f"{sha256}; the golden file was changed (record it again with apr-qa golden)"
        )
    try:
        lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        header: dict[str, Any] = lines[0]
        if header.get("kind") != GOLDEN_KIND:
            raise ValueError("no apr-qa-golden header")
        if header.get("schema_version") != GOLDEN_SCHEMA_VERSION:
            raise ValueError(f"schema_version {header.get('schema_version')} not read here")
        entries = tuple(
            GoldenEntry(
                scenario=str(x["scenario"]),
                modality=str(x["modality"]),
                prompt=x["prompt"],
                messages=tuple(x["messages"]) if x["messages"] is not None else None,
                max_tokens=int(x["max_tokens"]),
                text=str(x["text"]),
                token_ids=tuple(int(t) for t in x["token_ids"]),
                finish_reason=str(x["finish_reason"]),
                top_logprobs=_steps(x.get("top_logprobs")),
            )
            for x in lines[1:]
        )
    except (json.JSONDecodeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{path}: not an apr-qa golden file ({exc})") from None
    model = str(header.get("model"))
    if models and model not in models:
        raise UsageError(
            f"{path}: recorded from model {model!r}, not {' or '.join(repr(m) for m in models)}"
        )
    return GoldenFile(model, str(header.get("reference")), entries)


def _score_steps(
    client: Any, prompt: str, generated: Sequence[int], timeout_s: float
) -> tuple[tuple[tuple[int, float], ...], ...] | None:
    """Top-k log-probabilities of a run-modality generation (Tokenize, then Score)."""
    from apr_qa.execute.messages import Logits, Score, Tokenize, Tokens

    ids = client.request(Tokenize(prompt), timeout_s).reply
    if not isinstance(ids, Tokens) or not ids.ids:
        return None
    # The last generated token predicts nothing we keep: score up to the one before it.
    sequence = (*ids.ids, *generated[:-1])
    logits = client.request(Score(tuple(sequence)), timeout_s).reply
    if not isinstance(logits, Logits):
        return None
    return top_logprobs(logits.values, len(ids.ids), generated)


def record_golden(playbook: Any, *, timeout_s: float = 300.0) -> GoldenFile:
    """Ask the playbook's reference artifact every explicit scenario, greedily.

    The reference is the safetensors checkpoint on transformers on the CPU (the
    highest precision the model is published in, on the runtime it was trained with).
    """
    from apr_qa.execute.client import WorkerClient
    from apr_qa.execute.messages import Failed, Generate, Generated, Load, Loaded
    from apr_qa.models.sources import ModelRef, resolve
    from apr_qa.plan import PlannedScenario
    from apr_qa.scenarios import instantiate

    model = playbook.model
    ref = ModelRef(
        hf_repo=model.hf_repo, revision=model.revision, path=model.path, files=dict(model.files)
    )
    found = resolve(ref, ["safetensors"], [], convert_missing=False).artifacts
    if not found:
        raise UsageError(
            f"{playbook.path}: no safetensors checkpoint to record golden outputs from"
        )
    artifact = found[0]
    client = WorkerClient()
    try:
        loaded = client.request(Load("transformers", str(artifact.path), "cpu"), timeout_s).reply
        if not isinstance(loaded, Loaded):
            error = loaded.error if isinstance(loaded, Failed) else type(loaded).__name__
            raise UsageError(f"{artifact.path}: the reference did not load: {error}")
        entries = []
        for modality in playbook.matrix.modalities:
            if modality not in ("run", "chat"):
                continue
            for scenario in playbook.scenarios:
                if not scenario.applies_to(modality):
                    continue
                planned = PlannedScenario(
                    scenario.name, scenario.name, "explicit", "explicit", 0, scenario
                )
                instance = instantiate(planned, playbook, modality)
                max_tokens = instance.max_tokens or playbook.matrix.max_tokens
                request = Generate(
                    prompt=instance.prompt,
                    messages=tuple(dict(m) for m in instance.messages)
                    if instance.messages
                    else None,
                    max_tokens=max_tokens,
                    temperature=0.0,
                    seed=0,
                )
                reply = client.request(request, timeout_s).reply
                if not isinstance(reply, Generated):
                    error = reply.error if isinstance(reply, Failed) else type(reply).__name__
                    raise UsageError(f"{scenario.source}: the reference refused: {error}")
                gen = reply.generation
                steps = None
                if instance.prompt is not None and gen.token_ids:
                    steps = _score_steps(client, instance.prompt, gen.token_ids, timeout_s)
                entries.append(
                    GoldenEntry(
                        scenario.name,
                        str(modality),
                        instance.prompt,
                        instance.messages,
                        max_tokens,
                        gen.text,
                        tuple(gen.token_ids),
                        gen.finish_reason,
                        steps,
                    )
                )
    finally:
        client.close()
    reference = f"safetensors-{artifact.quantization}/cpu/transformers"
    return GoldenFile(model.id, reference, tuple(entries))
