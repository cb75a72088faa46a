"""Tensor fingerprints: per-tensor statistics of one artifact, written to a reference
JSON and compared in a later run.

A fingerprint holds, for every floating-point tensor, its mean, std, min, max,
percentiles, NaN/Inf counts, zero fraction and a checksum of its values. Tensors
are read one at a time through :func:`apr_qa.models.readers.open_model` (peak
memory: one tensor, its float32 copy and the sorted copy the percentiles need).

Two artifacts of one model compare by name and statistics, whatever their format:

- names are Hugging Face's (a GGUF's are translated through the one name table);
- a norm's statistics are its *scale*'s: Gemma's safetensors store ``scale − 1``
  and get their offset added, as llama.cpp's converter does;
- mean, std and percentiles do not depend on row order, so llama's rotary Q/K
  permutation in GGUF leaves them unchanged; the checksum does not, and is only
  compared between artifacts of the same format and stored type.

Each tensor has a role (``norm``, ``embedding``, ``attention``, ``ffn``,
``lm_head``, ``other``) that chooses its tolerance when compared.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from apr_qa.errors import UsageError
from apr_qa.models.architectures import ModelFormat

__all__ = [
    "PERCENTILES",
    "ROLES",
    "SCHEMA_VERSION",
    "Fingerprint",
    "TensorStats",
    "fingerprint",
    "read_fingerprint",
    "role_of",
    "tensor_stats",
    "write_fingerprint",
]

SCHEMA_VERSION = 1
PERCENTILES = (5, 25, 50, 75, 95)
ROLES = ("norm", "embedding", "attention", "ffn", "lm_head", "other")
_ROLE_OF_TABLE = {
    "embed": "embedding",
    "output": "lm_head",
    "q": "attention",
    "k": "attention",
    "v": "attention",
    "o": "attention",
    "qkv": "attention",
    "gate": "ffn",
    "up": "ffn",
    "down": "ffn",
    "gate_up": "ffn",
}


@dataclass(frozen=True)
class TensorStats:
    """One tensor's statistics; ``name`` is Hugging Face's, ``stored_name`` the file's.

    Statistics are over the finite values (NaN and Inf are counted apart, so one
    NaN does not hide the rest); ``checksum`` is the CRC-32 of every value as
    float32, in Hugging Face orientation, as eight hex digits.
    """

    name: str
    stored_name: str
    shape: tuple[int, ...]
    dtype: str
    role: str
    mean: float
    std: float
    min: float
    max: float
    p5: float
    p25: float
    p50: float
    p75: float
    p95: float
    nan_count: int
    inf_count: int
    zero_fraction: float
    checksum: str

    @property
    def finite(self) -> bool:
        """Whether every value and every statistic is a finite number."""
        values = (self.mean, self.std, self.min, self.max, self.p5, self.p95)
        return self.nan_count == 0 and self.inf_count == 0 and all(map(np.isfinite, values))


@dataclass(frozen=True)
class Fingerprint:
    """Every floating-point tensor's statistics for one artifact."""

    format: str
    quantization: str
    architecture: str
    tensors: tuple[TensorStats, ...]
    source: str = ""
    """The artifact the fingerprint was taken of, as given (for the reader)."""

    def by_name(self) -> dict[str, TensorStats]:
        """The tensors by Hugging Face name."""
        return {t.name: t for t in self.tensors}


def role_of(model_type: str | None, fmt: str, name: str) -> str:
    """A tensor's role by the architecture table; ``other`` for names it lacks."""
    from apr_qa.models.architectures import architecture

    arch = architecture(model_type)
    fmt_: ModelFormat = "gguf" if fmt == "gguf" else "safetensors"
    if arch.is_norm(fmt_, name):
        return "norm"
    role = arch.role_of(fmt_, name)
    if role is None:
        return "other"
    return _ROLE_OF_TABLE.get(role.role.removesuffix("_bias"), "other")


def tensor_stats(
    name: str, stored_name: str, dtype: str, role: str, values: npt.NDArray[np.float32]
) -> TensorStats:
    """The statistics of one tensor's values (any shape)."""
    flat = values.reshape(-1)
    nan = int(np.isnan(flat).sum())
    inf = int(np.isinf(flat).sum())
    finite = flat[np.isfinite(flat)] if nan or inf else flat
    checksum = f"{zlib.crc32(np.ascontiguousarray(flat, dtype='<f4').tobytes()):08x}"
    zeros = float(np.count_nonzero(flat == 0)) / flat.size if flat.size else 0.0
    if finite.size == 0:
        mean = std = lo = hi = float("nan")
        pct = [float("nan")] * len(PERCENTILES)
    else:
        as64 = finite.astype(np.float64)
        mean, std = float(as64.mean()), float(as64.std())
        lo, hi = float(finite.min()), float(finite.max())
        pct = [float(v) for v in np.percentile(finite, PERCENTILES)]
    p5, p25, p50, p75, p95 = pct
    shape = tuple(int(d) for d in values.shape)
    return TensorStats(
        name, stored_name, shape, dtype, role, mean, std, lo, hi,
        p5, p25, p50, p75, p95, nan, inf, zeros, checksum,
    )  # fmt: skip


def fingerprint(path: Path) -> Fingerprint:
    """Every floating-point tensor's statistics, read one tensor at a time.

    Raises :class:`~apr_qa.errors.UsageError` for a file the readers refuse.
    """
    from apr_qa.models.architectures import architecture, gguf_architecture
    from apr_qa.models.readers import open_model

    with open_model(path) as reader:
        fmt = reader.format
        if fmt == "gguf":
            arch = gguf_architecture(reader.metadata.get("general.architecture"))
        else:
            arch = architecture(reader.config.get("model_type"))
        offset = arch.scale_offset(fmt) or 0.0
        rows: list[TensorStats] = []
        for info in reader.tensor_infos():
            if not _floating(info.dtype):
                continue  # integer and bool tensors are ids and masks, not weights
            values = reader.read_tensor(info.name)
            name = (arch.hf_name(info.name) or info.name) if fmt == "gguf" else info.name
            role = role_of(arch.name, fmt, info.name)
            if role == "norm" and offset:
                values = values + np.float32(offset)  # the scale, as the GGUF stores it
            rows.append(tensor_stats(name, info.name, info.dtype, role, values))
            del values
        return Fingerprint(fmt, reader.quantization, arch.name, tuple(rows), str(path))


def _floating(dtype: str) -> bool:
    return not dtype.startswith(("i", "u", "bool", "f8"))


def write_fingerprint(fp: Fingerprint, path: Path) -> None:
    """Write ``fp`` as JSON (``schema_version``, the artifact, ``fingerprints``)."""
    doc = {
        "schema_version": SCHEMA_VERSION,
        "format": fp.format,
        "quantization": fp.quantization,
        "architecture": fp.architecture,
        "source": fp.source,
        "fingerprints": [_jsonable(asdict(t)) for t in fp.tensors],
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    # JSON has no NaN: a statistic that is not a number is written as null.
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, float) and not np.isfinite(value):
            out[key] = None
        elif isinstance(value, tuple):
            out[key] = list(value)
        else:
            out[key] = value
    return out


_FLOATS = ("mean", "std", "min", "max", "p5", "p25", "p50", "p75", "p95", "zero_fraction")


def read_fingerprint(path: Path) -> Fingerprint:
    """Read a reference written by :func:`write_fingerprint`.

    Raises :class:`~apr_qa.errors.UsageError` naming the file for anything else.
    """
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the fingerprint reference: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
        raise UsageError(
            f"{path}: not an apr-qa fingerprint (schema_version {SCHEMA_VERSION} expected;"
            " write one with `apr-qa fingerprint`)"
        )
    try:
        rows = tuple(_row(r) for r in doc["fingerprints"])
        return Fingerprint(
            str(doc["format"]),
            str(doc["quantization"]),
            str(doc["architecture"]),
            rows,
            str(doc.get("source", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{path}: malformed fingerprint entry: {exc!r}") from None


def _row(raw: Mapping[str, Any]) -> TensorStats:
    values = dict(raw)
    for key in _FLOATS:
        values[key] = float("nan") if values[key] is None else float(values[key])
    values["shape"] = tuple(int(d) for d in values["shape"])
    values["nan_count"], values["inf_count"] = int(values["nan_count"]), int(values["inf_count"])
    if values["role"] not in ROLES:
        raise ValueError(f"unknown role {values['role']!r}")
    return TensorStats(**{k: values[k] for k in TensorStats.__dataclass_fields__})
