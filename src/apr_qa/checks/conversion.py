"""F-CONV-001..006: convert the model's checkpoint, check what came out, and put
each defect in its bug class (:mod:`apr_qa.checks.bug_class`).

Opt-in (``differential_tests.conversion``): for every safetensors artifact of the
model and every quantization in ``conversion.quantizations`` (default ``f32``),
the converter runs twice into a scratch folder: the reference converter
(:mod:`apr_qa.models.convert`), or ``conversion.command``, a template with
``{src}``, ``{dst}`` and ``{quant}`` (llama.cpp's
``python convert_hf_to_gguf.py {src} --outfile {dst} --outtype {quant}``). Then:

- idempotency: the two outputs are the same bytes;
- tensors (count, names, layout, values): the tensor diff against the checkpoint,
  through the one name table;
- tokens: tokenizer parity (ids on the playbook's texts, special tokens), and
  whether the GGUF has a vocabulary at all;
- the golden rule: greedy answers identical to the checkpoint's for f32, f16 and
  bf16; for a quantized GGUF, the same-top-1 rate and KL of the logit comparison
  within that quantization's limits.

Every gate of the six records one finding over all conversions: falsified by a
defect of its class, corroborated when the conversions were examined and none
was; F-CONV-005 is skipped, naming the class, when a structural defect explains
the drift.
"""

from __future__ import annotations

import functools
import hashlib
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from apr_qa.checks import Artifact, Stage, register
from apr_qa.checks.bug_class import GATE_OF, BugClass, ConversionEvidence, classify
from apr_qa.checks.differential import (
    Pair,
    RuntimeUnavailable,
    Switch,
    playbook_prompts,
    switch,
)
from apr_qa.checks.finding import Finding, Ledger

if TYPE_CHECKING:
    from apr_qa.playbook.model import Playbook

__all__ = [
    "GATES",
    "ConversionCheck",
    "Converter",
    "Reference",
    "convert_once",
    "converter",
    "examine",
    "findings_of",
    "reference_of",
]

GATES = tuple(GATE_OF.values())
Converter = Callable[[Path, Path, str], "str | None"]
"""``(src, dst, quant)`` → None when ``dst`` was written, else how the conversion ended."""
ENTRY = "conversion"
DEFAULT_QUANTS = ("f32",)
UNQUANTIZED = ("f32", "f16", "bf16")
COMMAND_TIMEOUT_S = 900.0
PROMPTS = 3
"""Playbook prompts the golden rule asks."""
DEFAULT_TOKENS = 8


def convert_once(src: Path, dst: Path, quant: str, command: str | None) -> str | None:
    """Run the converter; None when ``dst`` was written, else how it ended."""
    if command is None:
        from apr_qa.errors import UsageError
        from apr_qa.models.convert import convert

        try:
            convert(src, dst, quant)
        except UsageError as exc:
            return f"the reference converter refused: {exc}"
        return None
    argv = shlex.split(
        command.format(src=shlex.quote(str(src)), dst=shlex.quote(str(dst)), quant=quant)
    )
    try:
        done = subprocess.run(argv, capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{argv[0]}: {exc}"
    if done.returncode != 0 or not dst.is_file():
        # Shown to the reader; never read to classify the failure.
        tail = done.stderr.decode(errors="replace").strip()[-300:]
        return f"exit status {done.returncode}{', no output file' if not dst.is_file() else ''}: {tail}"
    return None


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tensor_evidence(pair: Pair) -> dict[str, tuple[str, ...]]:
    from apr_qa.checks import tensor_diff

    def run(words: Sequence[str]) -> Mapping[str, Ledger]:
        ledgers = {g: Ledger(g) for g in tensor_diff.GATES}
        tensor_diff.diff_pair(pair, Switch(True, None, {}, {"filter": list(words)}), ledgers)
        return ledgers

    every, embedding = run(()), run(("embed_tokens", "lm_head"))
    layout, shapes, values = tensor_diff.GATES
    emb = set(embedding[layout].problems)
    return {
        "embedding_layout": tuple(p for p in every[layout].problems if p in emb),
        "other_layout": tuple(p for p in every[layout].problems if p not in emb),
        "shapes": tuple(every[shapes].problems),
        "values": tuple(every[values].problems),
    }


@dataclass(frozen=True)
class Reference:
    """The checkpoint's side, computed once for every conversion of it: ids of the
    texts, and each prompt's ids plus greedy answer, with their logits."""

    texts: Mapping[str, tuple[int, ...]]
    prompts: tuple[str, ...]
    sequences: tuple[tuple[int, ...], ...]
    answers: tuple[tuple[int, ...], ...]
    logits: tuple[npt.NDArray[np.float32], ...]


def reference_of(src: Path, prompts: Sequence[str], tokens: int) -> Reference | str:
    """The checkpoint's side in one transformers worker; why not, when it cannot load."""
    from apr_qa.checks.differential import Runtime
    from apr_qa.checks.tokenizer_parity import PROBES

    texts = list(dict.fromkeys([*prompts, *PROBES]))
    try:
        with Runtime(src, "safetensors") as hf:
            ids = {t: tuple(hf.tokenize(t)) for t in texts}
            answers = [tuple(hf.generate(p, tokens).token_ids) for p in prompts]
            seqs = [(*ids[p], *a) for p, a in zip(prompts, answers, strict=True)]
            logits = [hf.score(seq) for seq in seqs]
    except RuntimeUnavailable as exc:
        return str(exc)
    return Reference(ids, tuple(prompts), tuple(seqs), tuple(answers), tuple(logits))


def _special_problems(pair: Pair) -> tuple[str, ...]:
    from apr_qa.checks import tokenizer_parity

    ledgers = {g: Ledger(g) for g in tokenizer_parity.GATES}
    sw = Switch(True, (tokenizer_parity.SPECIAL,), {}, {})
    tokenizer_parity.compare_pair(pair, sw, {}, ledgers)  # file-level: loads no runtime
    return tuple(ledgers[tokenizer_parity.SPECIAL].problems)


def _runtime_evidence(
    pair: Pair, ref: Reference, sw: Switch, tokens: int
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Token problems, golden-rule problems, and what could not be compared, from one
    llama.cpp worker on the GGUF."""
    from apr_qa.checks import logit_compare
    from apr_qa.checks.differential import Runtime

    label = pair.quantization
    try:
        with Runtime(pair.gguf, "gguf") as gg:
            got = {t: tuple(gg.tokenize(t)) for t in ref.texts}
            scored = [gg.score(seq) for seq in ref.sequences]
            answers = [tuple(gg.generate(p, tokens).token_ids) for p in ref.prompts]
    except RuntimeUnavailable as exc:
        return (), (), (str(exc),)
    tokens_seen = [
        f"{label}: {text!r} tokenizes differently: checkpoint {list(ids)}, GGUF {list(got[text])}"
        for text, ids in ref.texts.items()
        if got[text] != ids
    ]
    drift: list[str] = []
    stats = logit_compare.kl_stats(list(zip(ref.logits, scored, ref.sequences, strict=True)))
    quant = pair.quantization
    if quant in UNQUANTIZED:
        # The golden rule: an unquantized conversion answers exactly as the checkpoint.
        for prompt, want, answer in zip(ref.prompts, ref.answers, answers, strict=True):
            if want != answer:
                drift.append(
                    f"{label}: {prompt!r}: greedy answer {list(answer)}, the checkpoint's "
                    f"{list(want)}"
                )
    floor = logit_compare.limit(sw.options.get("min_top1_agreement"), quant, "top1")
    ceiling = logit_compare.limit(sw.options.get("tolerance"), quant, "kl")
    if stats.positions and stats.same_top1 < floor:
        drift.append(
            f"{label}: the same top-1 token at {stats.same_top1:.1%} of {stats.positions} "
            f"positions (floor {floor:.0%})"
        )
    if stats.positions and stats.kl_mean > ceiling:
        drift.append(f"{label}: mean KL divergence {stats.kl_mean:.3g} (ceiling {ceiling:g})")
    return tuple(tokens_seen), tuple(drift), ()


def converter(command: str | None) -> Converter:
    """The converter a playbook names: its command template, else the reference one."""
    return functools.partial(convert_once, command=command)


def examine(
    src: Path,
    quant: str,
    convert: Converter,
    ref: Callable[[], Reference | str],
    sw: Switch,
    folder: Path,
) -> ConversionEvidence:
    """Convert ``src`` twice into ``folder`` with ``convert`` (:func:`converter`) and
    gather the evidence on the result (``ref`` gives :func:`reference_of`'s answer,
    asked only once a conversion produced a file with a vocabulary to run)."""
    first, second = folder / f"a-{quant}.gguf", folder / f"b-{quant}.gguf"
    failure = convert(src, first, quant)
    if failure is not None:
        return ConversionEvidence(produced=False, failure=failure)
    again = convert(src, second, quant)
    reproducible = again is None and _digest(first) == _digest(second)
    second.unlink(missing_ok=True)
    pair = Pair(src, first, quant)
    tensors = _tensor_evidence(pair)
    vocabulary = _vocabulary_problem(pair)
    tokens: tuple[str, ...] = vocabulary
    drift: tuple[str, ...] = ()
    unavailable: tuple[str, ...] = ()
    if not vocabulary:
        tokens = _special_problems(pair)
        reference = ref()
        if isinstance(reference, str):
            unavailable = (reference,)
        else:
            seen, drift, unavailable = _runtime_evidence(pair, reference, sw, _tokens(sw))
            tokens = (*tokens, *seen)
    return ConversionEvidence(
        produced=True,
        reproducible=reproducible,
        embedding_layout=tensors["embedding_layout"],
        other_layout=tensors["other_layout"],
        shapes=tensors["shapes"],
        values=tensors["values"],
        tokens=tokens,
        drift=drift,
        unavailable=unavailable,
    )


def _vocabulary_problem(pair: Pair) -> tuple[str, ...]:
    from apr_qa.models.readers import open_model

    with open_model(pair.gguf) as reader:
        if reader.metadata.get("tokenizer.ggml.tokens"):
            return ()
    return (f"{pair.gguf.name}: no tokenizer.ggml.tokens (no vocabulary)",)


def _tokens(sw: Switch) -> int:
    return int(sw.options.get("max_tokens", DEFAULT_TOKENS))


def _quantizations(options: Mapping[str, Any]) -> list[str]:
    given = options.get("quantizations", DEFAULT_QUANTS)
    if isinstance(given, str):
        given = [given]
    return [str(q).lower() for q in given]


def findings_of(outcomes: Sequence[tuple[str, ConversionEvidence]]) -> list[Finding]:
    """One finding per bug-class gate over every conversion examined."""
    ledgers = {g: Ledger(g) for g in GATES}
    explained: list[str] = []
    for label, evidence in outcomes:
        classes = classify(evidence)
        for cls, gate in GATE_OF.items():
            if cls is BugClass.SEMANTIC_DRIFT and evidence.drift and cls not in classes:
                others = ", ".join(f"{c} ({GATE_OF[c]})" for c in classes)
                explained.append(f"{label}: answers differ, explained by {others}")
                continue
            if not evidence.produced and cls is not BugClass.UNKNOWN:
                continue  # nothing to examine
            for problem in classes.get(cls, []):
                ledgers[gate].fail(f"{label}: {cls}: {problem}")
            if cls not in classes:
                ledgers[gate].check(True, label, "")
    what = ", ".join(label for label, _ in outcomes) or "none"
    out = []
    for cls, gate in GATE_OF.items():
        skipped = "not examined: no conversion produced a GGUF"
        if cls is BugClass.SEMANTIC_DRIFT and explained:
            skipped = "; ".join(explained)
        finding = ledgers[gate].finding(passed=f"no {cls} in {what}", skipped=skipped)
        details = {**finding.details, "bug_class": str(cls)}
        out.append(Finding(gate, finding.passed, finding.reason, details))
    return out


@register(Stage.MODEL)
class ConversionCheck:
    """F-CONV-001..006 over every checkpoint of the model (opt-in)."""

    name = "conversion"

    def check(self, playbook: Playbook, artifacts: Sequence[Artifact]) -> Iterable[Finding]:
        """Convert, examine, classify; one finding per gate the playbook asks for."""
        sw = switch(playbook, ENTRY)
        if ENTRY not in playbook.sections.get("differential_tests", {}) or not sw.enabled:
            return []
        given = sw.options.get("command")
        convert = converter(str(given) if given else None)
        prompts = playbook_prompts(playbook)[:PROMPTS] or ["The capital of France is"]
        sources = [a.path for a in artifacts if a.ref.format == "safetensors"]
        outcomes: list[tuple[str, ConversionEvidence]] = []
        with tempfile.TemporaryDirectory(prefix="apr-qa-conversion-") as scratch:
            for index, src in enumerate(dict.fromkeys(sources)):
                # The source's own answers, loaded once and only when a conversion needs them.
                ref = functools.cache(functools.partial(reference_of, src, prompts, _tokens(sw)))
                for quant in _quantizations(sw.options):
                    folder = Path(scratch) / f"{index}"
                    folder.mkdir(exist_ok=True)
                    evidence = examine(src, quant, convert, ref, sw, folder)
                    outcomes.append((f"{src.name} → {quant}", evidence))
        if not sources:
            reason = "not examined: the model has no safetensors checkpoint to convert"
            return [Finding(g, None, reason) for g in GATES if sw.runs(g)]
        return [f for f in findings_of(outcomes) if sw.runs(f.gate)]
