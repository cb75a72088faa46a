"""Gateway G0: the integrity preflight, run once per model artifact before any cell.

:func:`check_integrity` returns one :class:`Finding` for each of
G0-INTEGRITY-001..005 (rules in docs/gates.md):

- 001 the config agrees with the tensor shapes (:mod:`.integrity_shapes`);
- 002 no tensor holds NaN or Inf, 003 no tensor is all zeros (a norm weight read
  as its architecture stores it: Gemma's ``scale - 1`` norms are broken at -1, not
  at 0; see :mod:`apr_qa.models.architectures`): one streamed pass over the data,
  one tensor in memory at a time;
- 004 the tokenizer is present and loads (:mod:`.integrity_tokenizer`);
- 005 a GGUF file's header and metadata are valid (skipped for safetensors).

A file the reader rejects (bad magic, truncated data, corrupt header) is evidence,
not an exception: it falsifies 005 for a GGUF file and 001 for a safetensors
checkpoint, and the gates that needed the data are skipped with that reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apr_qa.checks.finding import Finding, Ledger, bounded
from apr_qa.checks.integrity_shapes import Claim, check_shapes
from apr_qa.checks.integrity_tokenizer import check_gguf_tokenizer, check_hf_tokenizer
from apr_qa.errors import EnvironmentProblem, UsageError
from apr_qa.models.architectures import (
    EMBED,
    Architecture,
    ModelFormat,
    architecture,
    gguf_architecture,
)
from apr_qa.models.config import CONFIG_FILE, ModelConfig
from apr_qa.models.readers import ModelReader, open_model

__all__ = ["GATES", "Finding", "check_integrity"]

GATES = tuple(f"G0-INTEGRITY-00{i}" for i in range(1, 6))
SHAPES, NONFINITE, ZEROS, TOKENIZER, HEADER = GATES

# Stored types that are not floating point: NaN is impossible and zeros are
# meaningful (index buffers, masks), so the value scan leaves them out.
_NOT_FLOAT_PREFIXES = ("i", "u", "bool")
# Stored types the readers cannot decode yet: not a defect of the model.
_UNDECODABLE = frozenset({"f8_e4m3", "f8_e5m2"})
# GGUF keys, after "<arch>.", that llama.cpp needs to build any decoder.
_GGUF_REQUIRED = ("block_count", "embedding_length", "attention.head_count", "context_length")


def check_integrity(
    path: Path, *, expected_shape: Mapping[str, int] | None = None
) -> list[Finding]:
    """Run G0-INTEGRITY-001..005 on a safetensors checkpoint dir or a GGUF file.

    ``expected_shape`` holds the playbook's ``model.expected_*`` values, compared
    under 001. Raises ``EnvironmentProblem`` only when ``path`` does not exist (a
    missing model, not a broken one).
    """
    path = Path(path)
    if not path.exists():
        raise EnvironmentProblem(f"{path}: model artifact not found")
    is_gguf = path.is_file() and path.suffix.lower() != ".safetensors"
    try:
        reader = open_model(path)
    except UsageError as e:
        return _unreadable(path, is_gguf, str(e))
    with reader:
        if reader.format == "gguf":
            config = ModelConfig.from_gguf(reader.metadata)
            scan = _scan_values(reader, config)
            return _gguf_findings(reader, config, scan, expected_shape)
        config = ModelConfig.from_hf(reader.config)
        scan = _scan_values(reader, config)
        return _safetensors_findings(reader, config, scan, expected_shape)


def _unreadable(path: Path, is_gguf: bool, message: str) -> list[Finding]:
    gate = HEADER if is_gguf else SHAPES
    skip = f"not checked: the artifact could not be read ({gate})"
    findings = {g: Finding(g, None, skip) for g in GATES}
    findings[gate] = Finding(gate, False, message, {"error": message})
    if not is_gguf:
        # The tokenizer files sit beside the weights and can still be judged.
        directory = path if path.is_dir() else path.parent
        findings[TOKENIZER] = check_hf_tokenizer(directory, None)
        findings[HEADER] = _not_gguf()
    return [findings[g] for g in GATES]


def _not_gguf() -> Finding:
    return Finding(HEADER, None, "not a GGUF artifact")


@dataclass
class _Scan:
    """What one streamed pass over the tensor data saw."""

    arch: Architecture
    fmt: ModelFormat
    model_type: str | None
    scanned: int = 0
    skipped: list[str] = field(default_factory=list)  # not floating point or undecodable
    nonfinite: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (nan, inf)
    zero: list[str] = field(default_factory=list)  # all zero, or a norm whose scale is all zero
    norms: list[str] = field(default_factory=list)  # the norm weights among ``zero``
    unjudged: list[str] = field(default_factory=list)  # norms all 0 or all -1, storage unknown
    unread: list[str] = field(default_factory=list)  # tensors whose data could not be read
    error: str | None = None  # the first read error

    @property
    def offset(self) -> float | None:
        """What a stored norm weight adds to get its scale (``None``: unknown)."""
        return self.arch.scale_offset(self.fmt)

    def judge_zero(self, name: str, array: np.ndarray[Any, Any]) -> None:
        """Record ``name`` if its values, read as the architecture stores them, are all zero."""
        if not self.arch.is_norm(self.fmt, name):
            if not array.any():
                self.zero.append(name)
            return
        offset = self.offset
        if offset is None:
            # Scale w or scale 1 + w: all 0 and all -1 are each broken under one of them.
            if not array.any() or bool(np.all(array == -1.0)):
                self.unjudged.append(name)
        elif bool(np.all(array == -offset)):
            self.zero.append(name)
            self.norms.append(name)


def _scan_values(reader: ModelReader, config: ModelConfig) -> _Scan:
    choose = gguf_architecture if reader.format == "gguf" else architecture
    scan = _Scan(choose(config.model_type), reader.format, config.model_type)
    infos = reader.tensor_infos()
    wanted = {
        info.name
        for info in infos
        if not info.dtype.startswith(_NOT_FLOAT_PREFIXES)
        and info.dtype not in _UNDECODABLE
        and info.numel > 0
    }
    scan.skipped = [info.name for info in infos if info.name not in wanted]
    # One tensor at a time by name, not iter_tensors: a tensor that cannot be read
    # (or decoded) must not end the scan of the others.
    for info in infos:
        if info.name not in wanted:
            continue
        try:
            array = reader.read_tensor(info.name)
        except UsageError as e:
            scan.unread.append(info.name)
            scan.error = scan.error or str(e)
            continue
        scan.scanned += 1
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            nan = int(np.count_nonzero(np.isnan(array)))
            scan.nonfinite[info.name] = (nan, bad - nan)
        else:
            scan.judge_zero(info.name, array)
        del array
    return scan


def _value_findings(scan: _Scan, container_gate: str) -> list[Finding]:
    left = f"{len(scan.unread)} tensor(s) unreadable (see {container_gate})" if scan.error else ""
    coverage = {
        "scanned": scan.scanned,
        "not_float_or_undecodable": len(scan.skipped),
        "unread": bounded(scan.unread),
    }
    nan_total = sum(n for n, _ in scan.nonfinite.values())
    inf_total = sum(i for _, i in scan.nonfinite.values())
    names = list(scan.nonfinite)
    if names:
        first = names[0]
        nonfinite = Finding(
            NONFINITE,
            False,
            f"{len(names)} of {scan.scanned} tensor(s) hold NaN/Inf: {nan_total} NaN, "
            f"{inf_total} Inf; first {first} ({scan.nonfinite[first][0]} NaN, "
            f"{scan.nonfinite[first][1]} Inf)",
            {**coverage, "tensors": bounded(names), "nan": nan_total, "inf": inf_total},
        )
    else:
        nonfinite = _clean(NONFINITE, scan, "NaN or Inf", left, coverage)
    return [nonfinite, _zeros(scan, left, coverage)]


def _zeros(scan: _Scan, left: str, coverage: dict[str, object]) -> Finding:
    offset = scan.offset
    details = {
        **coverage,
        "norm_scale": "unknown" if offset is None else ("1 + w" if offset else "w"),
        "norms_not_judged": bounded(scan.unjudged),
    }
    if scan.unjudged:
        # Said whether the gate passes or not: these norms were not checked.
        left = "; ".join(
            part
            for part in (
                left,
                f"{len(scan.unjudged)} norm weight(s) all 0 or all -1 not judged "
                f"({', '.join(bounded(scan.unjudged, 3))}): model type "
                f"{scan.model_type!r} is not in the architecture table, "
                "so whether it stores the scale or scale - 1 is unknown",
            )
            if part
        )
    if scan.zero:
        hint = ""
        if scan.norms and offset:
            hint = (
                f" (a norm weight all {-offset:g}: {scan.arch.name} stores scale - {offset:g}, "
                "so its scale is zero)"
            )
        elif scan.norms:
            hint = " (a zeroed norm weight)"
        return Finding(
            ZEROS,
            False,
            f"{len(scan.zero)} of {scan.scanned} tensor(s) are entirely zero{hint}: "
            f"{', '.join(bounded(scan.zero, 3))}",
            {**details, "tensors": bounded(scan.zero), "norms": bounded(scan.norms)},
        )
    if scan.unjudged and not scan.error and scan.scanned:
        return Finding(
            ZEROS, True, f"{scan.scanned} tensor(s) scanned, none all zero; {left}", details
        )
    return _clean(ZEROS, scan, "an all-zero tensor", left, details)


def _clean(gate: str, scan: _Scan, what: str, left: str, coverage: dict[str, object]) -> Finding:
    if scan.error or not scan.scanned:
        why = left or "no floating-point tensor to scan"
        return Finding(
            gate, None, f"{scan.scanned} tensor(s) scanned without {what}; {why}", coverage
        )
    return Finding(gate, True, f"{scan.scanned} tensor(s) scanned, none with {what}", coverage)


def _safetensors_findings(
    reader: ModelReader,
    config: ModelConfig,
    scan: _Scan,
    expected: Mapping[str, int] | None,
) -> list[Finding]:
    directory = reader.path if reader.path.is_dir() else reader.path.parent
    problems = (f"tensor data unreadable: {scan.error}",) if scan.error else ()
    if not (directory / CONFIG_FILE).is_file():
        problems = (*problems, f"missing {CONFIG_FILE} in {directory}")
    shapes_map = {info.name: info.shape for info in reader.tensor_infos()}
    shapes = check_shapes("safetensors", shapes_map, config, expected=expected, problems=problems)
    embed = shapes_map.get(EMBED.name("safetensors"))
    rows = embed[0] if embed is not None and len(embed) == 2 else None
    tokenizer = check_hf_tokenizer(directory, rows)
    return [shapes, *_value_findings(scan, SHAPES), tokenizer, _not_gguf()]


def _gguf_findings(
    reader: ModelReader,
    config: ModelConfig,
    scan: _Scan,
    expected: Mapping[str, int] | None,
) -> list[Finding]:
    meta = reader.metadata
    tokens = meta.get("tokenizer.ggml.tokens")
    claims = {}
    if isinstance(tokens, list):
        claims["n_tokens"] = Claim(len(tokens), "GGUF tokenizer.ggml.tokens count")
    shapes = check_shapes(
        "gguf",
        {info.name: info.shape for info in reader.tensor_infos()},
        config,
        claims=claims,
        expected=expected,
    )
    header = _gguf_header(reader, scan)
    return [shapes, *_value_findings(scan, HEADER), check_gguf_tokenizer(meta), header]


def _gguf_header(reader: ModelReader, scan: _Scan) -> Finding:
    """Magic, version and the data bounds were checked by the reader on open; what
    is left is the metadata llama.cpp needs and the per-tensor alignment."""
    from gguf import GGUFReader

    led = Ledger(HEADER)
    meta = reader.metadata
    # The reader validated the layout, so gguf-py cannot loop or overrun here.
    raw = GGUFReader(reader.path)
    # Reaching here means the reader accepted the magic, version and data bounds.
    led.check(True, "magic, version and data bounds", "")
    arch = meta.get("general.architecture")
    if led.check(
        isinstance(arch, str) and arch != "",
        "general.architecture",
        f"{reader.path}: GGUF general.architecture is missing or not a string ({arch!r})",
    ):
        for suffix in _GGUF_REQUIRED:
            key = f"{arch}.{suffix}"
            led.check(key in meta, key, f"{reader.path}: GGUF metadata has no {key}")
    led.check(bool(raw.tensors), "tensor count", f"{reader.path}: GGUF file holds no tensor")
    misaligned = [t.name for t in raw.tensors if t.data_offset % raw.alignment]
    led.check(
        not misaligned,
        "alignment",
        f"{reader.path}: {len(misaligned)} tensor(s) not aligned to {raw.alignment} bytes, "
        f"first {misaligned[0] if misaligned else ''}",
    )
    spans = sorted((t.data_offset, t.data_offset + t.n_bytes, t.name) for t in raw.tensors)
    overlaps = [f"{a[2]} and {b[2]}" for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    led.check(
        not overlaps,
        "tensor data overlap",
        f"{reader.path}: GGUF tensor data overlaps: {', '.join(bounded(overlaps, 3))}",
    )
    if scan.error:
        led.fail(f"tensor data unreadable: {scan.error}")
    version = int(raw.fields["GGUF.version"].parts[-1][0])
    return led.finding(
        passed=(
            f"GGUF v{version} header valid: architecture {arch}, {len(raw.tensors)} tensors "
            f"aligned to {raw.alignment} bytes, required metadata present"
        ),
        skipped="",  # unreachable: magic and version are always compared
        details={"version": version, "alignment": int(raw.alignment), "tensors": len(raw.tensors)},
    )
