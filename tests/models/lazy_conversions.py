"""Conversions made on first use and shared by a test module."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from apr_qa.models.convert import convert


def lazy_conversions(checkpoints: Mapping[str, Path], root: Path) -> Callable[[str, str], Path]:
    """``get(key, quant)``: checkpoint ``key`` converted to ``quant`` under ``root``, once."""
    cache: dict[tuple[str, str], Path] = {}

    def get(key: str, quant: str) -> Path:
        if (key, quant) not in cache:
            cache[key, quant] = convert(checkpoints[key], root / f"{key}-{quant}.gguf", quant)
        return cache[key, quant]

    return get
