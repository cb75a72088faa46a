"""Certification: summaries into the model registry, the README table and badges.

``certify`` is a pure plan (:func:`plan_certification`: the bytes each file would
hold) and a write of the files whose bytes differ. Nothing is written when
nothing changed, so running it twice gives the same files as running it once,
and ``--check`` is the plan compared with the disk. See docs/certification.md.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from apr_qa.certify.badges import badges
from apr_qa.certify.registry import CertifyError, Registry, read_registry, registry_text
from apr_qa.certify.summaries import apply, rows_from_summary
from apr_qa.certify.table import replace_block

__all__ = [
    "DEFAULT_REGISTRY",
    "CertifyError",
    "CertifyPlan",
    "certify_files",
    "plan_certification",
]

DEFAULT_REGISTRY = Path("docs/certifications/models.csv")


@dataclass(frozen=True)
class CertifyPlan:
    """Every file certification would write, with its new text, and what it decided."""

    files: Mapping[Path, str]
    """Path -> new text, for the files whose text differs from the disk's."""
    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    kept: tuple[str, ...] = field(default=())
    """Summaries older than the registry's row: not applied (one line each)."""
    rows: int = 0


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CertifyError([f"{path}: cannot read ({exc})"]) from None


def plan_certification(
    summaries: Sequence[Path],
    *,
    registry: Path = DEFAULT_REGISTRY,
    readme: Path | None = None,
    badges_dir: Path | None = None,
    append: bool = False,
    now: datetime | None = None,
) -> CertifyPlan:
    """What certifying ``summaries`` would change, without writing anything."""
    now = now or datetime.now(UTC)
    current = read_registry(registry)
    incoming = [row for path in summaries for row in rows_from_summary(path, now)]
    rows, update = apply(current.rows, incoming)
    changes: dict[Path, str] = {}
    text = registry_text(Registry(current.header, tuple(rows)))
    old = _read(registry)
    # An unchanged registry keeps its bytes even when written by hand in another order;
    # certifying nothing into no registry creates none.
    if (old is None and rows) or (old is not None and registry_text(current) != text):
        changes[registry] = text
    if readme is not None:
        old_readme = _read(readme)
        if old_readme is None and not append:
            raise CertifyError([f"{readme}: no such README (pass --append to create one)"])
        new_readme = replace_block(old_readme or "", rows, now, str(readme), append=append)
        if new_readme != old_readme:
            changes[readme] = new_readme
    if badges_dir is not None:
        for name, body in badges(rows).items():
            path = badges_dir / name
            if _read(path) != body:
                changes[path] = body
    return CertifyPlan(changes, update.added, update.replaced, update.kept, len(rows))


def _write(path: Path, text: str) -> None:
    """Write beside and rename, so a README is never left half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
        Path(tmp).chmod(mode)  # mkstemp's 0600 would make a README private
        Path(tmp).replace(path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise CertifyError([f"{path}: cannot write ({exc.strerror or exc})"]) from None


def certify_files(plan: CertifyPlan) -> tuple[Path, ...]:
    """Write the plan's files (only those that change); the paths written."""
    for path, text in plan.files.items():
        _write(path, text)
    return tuple(plan.files)
