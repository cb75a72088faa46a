"""Broken converters: the reference converter followed by one defect, each with the
bug class F-CONV-* must put it in.

They are the conversion checks' mutants: a playbook names one as its
``differential_tests.conversion.command`` (:func:`command`), the engine runs it
as it would llama.cpp's converter, and the conversion must be classified into
the class listed here. Run as ``python -m apr_qa.testing.broken_converters NAME
SRC DST QUANT``.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from apr_qa.checks.bug_class import BugClass
from apr_qa.testing import mutants_files as files
from apr_qa.testing import mutants_weights as weights
from apr_qa.testing.mutants_io import rewrite_gguf

__all__ = ["BROKEN_CONVERTERS", "BrokenConverter", "command", "convert", "main"]

Rewrite = Callable[[Path, Path], Path]


@dataclass(frozen=True)
class BrokenConverter:
    """One defect a converter can introduce, and its bug class."""

    name: str
    description: str
    bug_class: BugClass
    quant: str
    """The quantization it converts to (the defect needs that storage)."""
    rewrite: Rewrite | None
    """Applied to the reference converter's output; None: the converter fails."""


def _drop_tokenizer(src: Path, dst: Path) -> Path:
    import gguf

    keys = [k for k in gguf.GGUFReader(str(src)).fields if k.startswith("tokenizer.")]
    return rewrite_gguf(src, dst, drop_keys=tuple(keys))


def _norm_eps(src: Path, dst: Path) -> Path:
    import gguf

    arch = str(gguf.GGUFReader(str(src)).get_field("general.architecture").contents())  # type: ignore[union-attr]
    return rewrite_gguf(src, dst, set_keys={f"{arch}.attention.layer_norm_rms_epsilon": 1.0})


def _stamped(src: Path, dst: Path) -> Path:
    # A converter that writes the time or a random id: never the same bytes twice.
    return rewrite_gguf(src, dst, set_keys={"general.name": f"model-{uuid.uuid4().hex}"})


_TABLE = (
    BrokenConverter(
        "embedding-transposed",
        "writes token_embd transposed",
        BugClass.EMBEDDING_TRANSPOSITION,
        "f32",
        weights.gguf_embedding_transposed,
    ),
    BrokenConverter(
        "tokenizer-dropped",
        "writes no tokenizer.* keys",
        BugClass.TOKENIZER_MISSING,
        "f32",
        _drop_tokenizer,
    ),
    BrokenConverter(
        "pretokenizer-wrong",
        "writes the wrong tokenizer.ggml.pre",
        BugClass.TOKENIZER_MISSING,
        "f32",
        files.gguf_wrong_pre,
    ),
    BrokenConverter(
        "scales-corrupt",
        "q8_0 block scales each multiplied by a random factor in [e^-2, e^2]",
        BugClass.WEIGHT_CORRUPTION,
        "q8_0",
        weights.gguf_quant_scales,
    ),
    BrokenConverter(
        "tensor-dropped",
        "leaves out blk.0.ffn_down.weight",
        BugClass.SHAPE_MISMATCH,
        "f32",
        weights.gguf_missing_tensor,
    ),
    BrokenConverter(
        "norm-eps-wrong",
        "writes layer_norm_rms_epsilon 1.0: every tensor and token right, the answers not",
        BugClass.SEMANTIC_DRIFT,
        "f32",
        _norm_eps,
    ),
    BrokenConverter(
        "not-reproducible",
        "stamps a random id into general.name",
        BugClass.UNKNOWN,
        "f32",
        _stamped,
    ),
    BrokenConverter(
        "exits-nonzero",
        "writes nothing and exits with status 3",
        BugClass.UNKNOWN,
        "f32",
        None,
    ),
)

BROKEN_CONVERTERS: dict[str, BrokenConverter] = {b.name: b for b in _TABLE}
"""Every broken converter by name."""


def convert(name: str, src: Path, dst: Path, quant: str) -> str | None:
    """Run broken converter ``name`` in this process (a ``Converter``): None when
    ``dst`` was written, else how it ended, as a command's exit would say."""
    from apr_qa.models.convert import convert as reference

    broken = BROKEN_CONVERTERS[name]
    if broken.rewrite is None:
        return "exit status 3, no output file"
    with tempfile.TemporaryDirectory() as scratch:
        clean = reference(src, Path(scratch) / "clean.gguf", quant)
        broken.rewrite(clean, dst)
    return None


def command(name: str) -> str:
    """The ``conversion.command`` template that runs broken converter ``name``."""
    return f"{shlex.quote(sys.executable)} -m apr_qa.testing.broken_converters {name} {{src}} {{dst}} {{quant}}"


def main(argv: Sequence[str]) -> int:
    """``NAME SRC DST QUANT``: convert with the reference converter, then break it."""
    name, src, dst, quant = argv
    return 0 if convert(name, Path(src), Path(dst), quant) is None else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
