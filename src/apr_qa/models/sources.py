"""Model sources: turn a playbook's ``model`` into concrete artifacts.

``resolve(ref, formats, quantizations)`` finds one artifact per requested format
(and, for GGUF, per quantization) in a local directory, a local file, or a
Hugging Face repo (downloading only what is needed). A requested artifact that
cannot be found is data (``Resolution.missing``), which the engine records as a
G1 failure; only "no model at all" raises.

GGUF files for a quantization are named in ``ref.files`` (a name or a glob,
relative to the model directory) or found by name: ``q4_k_m`` matches
``*q4_k_m*.gguf`` in any letter case, as a whole token, so ``f16`` does not
match ``model-bf16.gguf`` nor ``q4_k`` match ``model-q4_k_m.gguf``.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from apr_qa.errors import EnvironmentProblem, UsageError
from apr_qa.models.readers import GGUF_MAGIC
from apr_qa.models.readers_safetensors import INDEX_NAME

__all__ = [
    "CONVERTED_NOTE",
    "Artifact",
    "MissingArtifact",
    "ModelRef",
    "Resolution",
    "resolve",
]

ArtifactFormat = Literal["safetensors", "gguf"]
Origin = Literal["local", "hub", "converted"]

CONVERTED_NOTE = "G0-FORMAT-GGUF-001: produced by the reference converter"
_NO_APR = "format apr has no runtime in apr-qa's process: it runs through runtimes.apr"
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class ModelRef:
    """Where a model comes from, as the playbook says it.

    ``files`` maps a format or quantization (``q4_k_m``, ``safetensors``) to a
    file name or glob given explicitly in the playbook.
    """

    hf_repo: str | None = None
    revision: str | None = None
    path: Path | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    trust_remote_code: bool = False


@dataclass(frozen=True)
class Artifact:
    """One loadable model artifact.

    ``path`` is the checkpoint directory for safetensors and the file for GGUF.
    ``quantization`` is the GGUF file type (``q4_k_m``) or the stored dtype of a
    safetensors checkpoint (``bf16``).
    """

    format: ArtifactFormat
    quantization: str
    path: Path
    origin: Origin
    note: str = ""


MissingWhy = Literal["not-found", "conversion-failed", "conversion-disabled"]


@dataclass(frozen=True)
class MissingArtifact:
    """A requested artifact that could not be found or produced, and why.

    ``why`` tells a defect (``conversion-failed``: the checkpoint did not convert)
    from an absence (``not-found``) and from the caller's choice
    (``conversion-disabled``: ``--no-convert``).
    """

    format: str
    quantization: str
    reason: str
    why: MissingWhy = "not-found"


@dataclass(frozen=True)
class Resolution:
    """What ``resolve`` found and what it could not."""

    artifacts: list[Artifact]
    missing: list[MissingArtifact]


def resolve(
    ref: ModelRef,
    formats: Sequence[str],
    quantizations: Sequence[str],
    *,
    convert_missing: bool = True,
    workdir: Path | None = None,
) -> Resolution:
    """Resolve ``ref`` into artifacts for each format (GGUF: each quantization).

    Safetensors is one artifact whatever ``quantizations`` says; GGUF with no
    quantizations requested means every GGUF file found. A missing GGUF
    quantization is converted from the safetensors checkpoint when
    ``convert_missing`` (into ``workdir``, a fresh temporary directory if None).
    Raises ``EnvironmentProblem`` when there is no model at all, ``UsageError``
    for a path that is not a model or an ambiguous file pattern.
    """
    quants = [q.lower() for q in quantizations]
    origin: Origin
    if ref.path is not None:
        root, origin = Path(ref.path).expanduser(), "local"
        if not root.exists():
            raise EnvironmentProblem(f"{root}: model not found (no such file or directory)")
        if not (root.is_file() or root.is_dir()):
            raise UsageError(
                f"{root}: a special file (device, FIFO or socket), not a model file or directory"
            )
    elif ref.hf_repo:
        root, origin = _from_hub(ref, formats, quants, convert_missing), "hub"
    else:
        raise UsageError("model: neither path nor hf_repo given")
    if root.is_file():
        return _resolve_file(root, formats, quants, origin)
    return _Resolver(root, ref, origin, convert_missing, workdir).run(formats, quants)


def _from_hub(ref: ModelRef, formats: Sequence[str], quants: list[str], convert: bool) -> Path:
    from apr_qa.models import sources_hub as hub

    assert ref.hf_repo is not None
    listing = hub.remote_files(ref.hf_repo, ref.revision)
    patterns = list(hub.SMALL_PATTERNS) + list(ref.files.values())
    if listing is None:
        # Offline or unreachable: nothing will be downloaded, so broad patterns
        # cost nothing and let the cached snapshot answer.
        patterns += hub.CHECKPOINT_PATTERNS
        if "gguf" in formats:
            patterns += [hub.caseless_glob(f"*{q}*.gguf") for q in quants] or ["*.[gG][gG][uU][fF]"]
        return hub.hub_snapshot(ref.hf_repo, ref.revision, patterns)
    need_checkpoint = "safetensors" in formats
    if "gguf" in formats:
        ggufs = [name for name in listing if name.lower().endswith(".gguf")]
        if not quants:
            patterns += ggufs
        for quant in quants:
            if quant in ref.files:
                continue
            # Choosing here, before any download, keeps an ambiguous pattern from
            # fetching several multi-GB files only to reject them.
            chosen = _pick(ggufs, quant, f"{ref.hf_repo}@{ref.revision or 'main'}")
            if chosen is not None:
                patterns.append(chosen)
            elif convert:
                need_checkpoint = True
    if need_checkpoint:
        patterns += hub.CHECKPOINT_PATTERNS
    return hub.hub_snapshot(ref.hf_repo, ref.revision, patterns)


def _pick(names: Sequence[str], quant: str, where: str) -> str | None:
    """The one file name matching ``quant`` as a whole token; None if none."""
    rx = _quant_regex(quant)
    matches = sorted(n for n in names if rx.search(Path(n).name))
    if len(matches) > 1:
        raise UsageError(
            f"{where}: {quant} is ambiguous: {', '.join(matches)}; name one in model.files"
        )
    return matches[0] if matches else None


def _is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


# A broken artifact is still an artifact: its defect is evidence for G0 and G1
# (the engine records it), not a reason to refuse the whole run.
UNREADABLE = "unreadable"


def _gguf_quantization(path: Path) -> str:
    from apr_qa.models.readers_gguf import GGUFModelReader

    try:
        return GGUFModelReader(path).quantization
    except UsageError:
        return UNREADABLE


def _safetensors_dtype(root: Path) -> str:
    from apr_qa.models.readers_safetensors import SafetensorsModelReader

    try:
        return SafetensorsModelReader(root).quantization
    except UsageError:
        return UNREADABLE


def _resolve_file(
    path: Path, formats: Sequence[str], quants: list[str], origin: Origin
) -> Resolution:
    artifacts: list[Artifact] = []
    missing: list[MissingArtifact] = []
    if _is_gguf(path) or path.suffix.lower() == ".gguf":
        quant = _gguf_quantization(path)
        for fmt in formats:
            if fmt != "gguf":
                missing.append(_missing_format(fmt, f"the model path {path} is a single GGUF file"))
        if "gguf" in formats:
            if not quants or quant in quants:
                artifacts.append(Artifact("gguf", quant, path, origin))
            what = (
                "whose header cannot be read (not a valid GGUF file)"
                if quant == UNREADABLE
                else f"of quantization {quant}"
            )
            missing += [
                MissingArtifact("gguf", q, f"the model path {path} is a single GGUF file {what}")
                for q in quants
                if q != quant
            ]
        return Resolution(artifacts, missing)
    if path.suffix.lower() == ".safetensors":
        # A checkpoint is its directory: config and tokenizer live next to the weights.
        return _Resolver(path.parent, ModelRef(path=path.parent), origin, False, None).run(
            formats, quants
        )
    raise UsageError(f"{path}: not a model file (expected a directory, .safetensors or .gguf)")


def _missing_format(fmt: str, reason: str) -> MissingArtifact:
    if fmt == "apr":
        reason = _NO_APR
    return MissingArtifact(fmt, "", reason)


def _quant_regex(quant: str) -> re.Pattern[str]:
    # Whole token: not preceded by a letter/digit, not followed by one or by "_".
    return re.compile(rf"(?<![a-z0-9]){re.escape(quant)}(?![a-z0-9_])", re.IGNORECASE)


class _Resolver:
    """Resolution inside one model directory."""

    def __init__(
        self,
        root: Path,
        ref: ModelRef,
        origin: Origin,
        convert_missing: bool,
        workdir: Path | None,
    ) -> None:
        self.root = root
        self.ref = ref
        self.origin = origin
        self.convert_missing = convert_missing
        self.workdir = workdir
        self.checkpoint = self._checkpoint()
        self.ggufs = sorted(
            p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".gguf"
        )

    def _checkpoint(self) -> Path | None:
        named = self.ref.files.get("safetensors")
        where = self.root / named if named is not None else self.root
        if where.is_file():
            where = where.parent
        if where.is_dir() and ((where / INDEX_NAME).is_file() or any(where.glob("*.safetensors"))):
            return where
        return None

    def run(self, formats: Sequence[str], quants: list[str]) -> Resolution:
        if self.checkpoint is None and not self.ggufs and not self.ref.files:
            raise UsageError(f"{self.root}: no model weights (no *.safetensors, no *.gguf)")
        artifacts: list[Artifact] = []
        missing: list[MissingArtifact] = []
        for fmt in formats:
            if fmt == "safetensors":
                if self.checkpoint is not None:
                    dtype = _safetensors_dtype(self.checkpoint)
                    artifacts.append(Artifact("safetensors", dtype, self.checkpoint, self.origin))
                else:
                    where = self.root / self.ref.files.get("safetensors", "")
                    missing.append(MissingArtifact(fmt, "", f"no safetensors weights in {where}"))
            elif fmt == "gguf":
                found, lost = self._ggufs(quants)
                artifacts += found
                missing += lost
            else:
                missing.append(_missing_format(fmt, f"unknown format {fmt!r}"))
        return Resolution(artifacts, missing)

    def _ggufs(self, quants: list[str]) -> tuple[list[Artifact], list[MissingArtifact]]:
        if not quants:
            named = self.ref.files.get("gguf")
            if named is not None and not (self.root / named).is_file():
                return [], [MissingArtifact("gguf", "", f"{self.root / named}: file not found")]
            files = [self.root / named] if named is not None else self.ggufs
            return [Artifact("gguf", _gguf_quantization(p), p, self.origin) for p in files], []
        found: list[Artifact] = []
        lost: list[MissingArtifact] = []
        for quant in quants:
            path, reason = self._find(quant)
            if path is not None:
                actual = _gguf_quantization(path)
                # The name chose the file; its header may disagree, which the
                # integrity gate should see.
                note = "" if actual == quant else f"file_type says {actual}"
                found.append(Artifact("gguf", quant, path, self.origin, note))
            elif self.convert_missing and self.checkpoint is not None:
                artifact_or_reason = self._convert(quant)
                if isinstance(artifact_or_reason, Artifact):
                    found.append(artifact_or_reason)
                else:
                    why: MissingWhy = (
                        "conversion-failed"
                        if "conversion failed" in artifact_or_reason
                        else "not-found"
                    )
                    lost.append(MissingArtifact("gguf", quant, artifact_or_reason, why))
            elif self.checkpoint is not None:
                reason = f"{reason}; not converted (conversion disabled)"
                lost.append(MissingArtifact("gguf", quant, reason, "conversion-disabled"))
            else:
                lost.append(MissingArtifact("gguf", quant, reason))
        return found, lost

    def _find(self, quant: str) -> tuple[Path | None, str]:
        named = self.ref.files.get(quant)
        if named is not None:
            if _GLOB_CHARS & set(named):
                candidates = sorted(self.root.glob(named))
            else:
                candidates = [p for p in [self.root / named] if p.is_file()]
            if not candidates:
                return None, f"{self.root / named}: file named for {quant} not found"
        else:
            name = _pick([p.name for p in self.ggufs], quant, str(self.root))
            if name is None:
                return None, f"no GGUF file for {quant} in {self.root} (pattern *{quant}*.gguf)"
            return self.root / name, ""
        if len(candidates) > 1:
            names = ", ".join(p.name for p in candidates)
            raise UsageError(f"{self.root}: {quant} is ambiguous: {names}; name one in model.files")
        return candidates[0], ""

    def _convert(self, quant: str) -> Artifact | str:
        try:
            from apr_qa.models.convert import convert
        except ImportError as e:
            return f"no GGUF file for {quant} and the reference converter is unavailable ({e})"
        workdir = self.workdir or Path(tempfile.mkdtemp(prefix="apr-qa-convert-"))
        workdir.mkdir(parents=True, exist_ok=True)
        assert self.checkpoint is not None
        dst = workdir / f"{self.checkpoint.name}-{quant}.gguf"
        try:
            convert(self.checkpoint, dst, quant)
        except UsageError as e:
            # An unsupported architecture or quantization is a finding about this
            # cell, not a reason to stop resolving the others.
            return f"no GGUF file for {quant}; conversion failed: {e}"
        return Artifact("gguf", quant, dst, "converted", CONVERTED_NOTE)
