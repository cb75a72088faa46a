"""The model registry: ``docs/certifications/models.csv``, one row per model and playbook.

The registry is the certification table's data; the README block is rendered
from it alone. The original rewrote its CSV lossily; this one reads and writes
the same bytes when nothing changed, keeps columns it does not know where they
were, and refuses a row whose status or grade contradicts its own numbers
(docs/certification.md lists the columns and the rules).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from apr_qa.errors import UsageError
from apr_qa.facts import parse_parameters
from apr_qa.gates import CATEGORY_WEIGHTS, GATEWAYS
from apr_qa.score import Status, grade_for

__all__ = [
    "CATEGORY_COLUMNS",
    "COLUMNS",
    "GATEWAY_COLUMNS",
    "NOT_ASSESSED",
    "NOT_RUN",
    "NO_GRADE",
    "TOK_S_PREFIX",
    "CertifyError",
    "Registry",
    "Row",
    "parse_registry",
    "read_registry",
    "registry_text",
    "row_problems",
    "sort_key",
]

GATEWAY_COLUMNS: tuple[str, ...] = tuple(g.lower() for g in GATEWAYS)
CATEGORY_COLUMNS: tuple[str, ...] = tuple(str(c).lower() for c in CATEGORY_WEIGHTS)
_HEAD = ("model", "family", "parameters", "size_category", "status", "mqs", "grade")
_TAIL = ("playbook", "playbook_sha256", "evidence", "last_certified")
COLUMNS: tuple[str, ...] = (*_HEAD, *GATEWAY_COLUMNS, *CATEGORY_COLUMNS, *_TAIL)
"""The documented header, in the order a new registry is written."""
TOK_S_PREFIX = "tok_s_"
"""Throughput columns: ``tok_s_<format>_<backend>`` (tokens per second, when profiled)."""

NOT_RUN = "not run"
NOT_ASSESSED = "not assessed"
NO_GRADE = "-"
_GATEWAY_VALUES = ("pass", "fail", NOT_RUN)
_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_TOK_S = re.compile(rf"^{TOK_S_PREFIX}[a-z0-9]+_[a-z0-9]+$")


class CertifyError(UsageError):
    """A registry, README or summary that cannot be used; one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))

    def lines(self) -> list[str]:
        return list(self.problems)


@dataclass(frozen=True)
class Row:
    """One registry row: a model certified by one playbook, every value as written."""

    model: str
    family: str
    parameters: str
    size_category: str
    status: str
    mqs: str
    grade: str
    gateways: Mapping[str, str]
    """``g0``..``g4`` -> ``pass`` / ``fail`` / ``not run``."""
    points: Mapping[str, str]
    """``qual``..``regr`` -> points earned, or ``not assessed``."""
    playbook: str = ""
    playbook_sha256: str = ""
    evidence: str = ""
    last_certified: str = ""
    """UTC, ``YYYY-MM-DDTHH:MM:SSZ``: when the evidence behind the row was recorded."""
    tok_s: Mapping[str, str] = field(default_factory=dict)
    """``tok_s_<format>_<backend>`` -> tokens per second."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """Columns this apr-qa does not know, kept as they were."""

    @property
    def key(self) -> tuple[str, str]:
        """A newer run replaces an older one for the same model and playbook."""
        return (self.model, self.playbook)

    def cells(self) -> dict[str, str]:
        """Column -> value, for writing."""
        values = {
            "model": self.model,
            "family": self.family,
            "parameters": self.parameters,
            "size_category": self.size_category,
            "status": self.status,
            "mqs": self.mqs,
            "grade": self.grade,
            **self.gateways,
            **self.points,
            "playbook": self.playbook,
            "playbook_sha256": self.playbook_sha256,
            "evidence": self.evidence,
            "last_certified": self.last_certified,
        }
        return {**values, **self.tok_s, **self.extra}


@dataclass(frozen=True)
class Registry:
    """Rows and the header they were read with (unknown columns in their place)."""

    header: tuple[str, ...]
    rows: tuple[Row, ...]


def sort_key(row: Row) -> tuple[bool, str, int, Decimal, str, str]:
    """Family (rows without one last), then parameter count parsed numerically
    (135M < 1.5B < 7B; unknown last), then model id and playbook."""
    try:
        size, unknown = parse_parameters(row.parameters), 0
    except ValueError:
        size, unknown = Decimal(0), 1  # an unknown size sorts after its family's known ones
    family = row.family.casefold()
    return (not family, family, unknown, size, row.model.casefold(), row.playbook)


def _number(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def row_problems(row: Row) -> list[str]:
    """What is wrong with a row: its values, and its status and grade against its own
    numbers by the rules of docs/scoring.md (empty when nothing is)."""
    out: list[str] = []
    if not row.model.strip():
        out.append("model is empty")
    if row.parameters:
        try:
            parse_parameters(row.parameters)
        except ValueError as exc:
            out.append(str(exc))
    statuses = [str(s) for s in Status]
    if row.status not in statuses:
        out.append(f"status {row.status!r} is not one of {', '.join(statuses)}")
    mqs = int(row.mqs) if row.mqs.isdigit() else None
    if mqs is None or mqs > 1000:
        out.append(f"mqs {row.mqs!r} is not an integer in 0..1000")
    for column, value in row.gateways.items():
        if value not in _GATEWAY_VALUES:
            out.append(f"{column} {value!r} is not one of {', '.join(_GATEWAY_VALUES)}")
    points: dict[str, Decimal] = {}
    for column, value in row.points.items():
        number = _number(value)
        weight = CATEGORY_WEIGHTS[next(c for c in CATEGORY_WEIGHTS if c.lower() == column)]
        if value in ("", NOT_ASSESSED):
            continue
        if number is None or not 0 <= number <= weight:
            out.append(f"{column} {value!r} is not {NOT_ASSESSED!r} or points in 0..{weight}")
        else:
            points[column] = number
    for column, value in row.tok_s.items():
        number = _number(value)
        if value and (number is None or number < 0):
            out.append(f"{column} {value!r} is not a throughput in tokens per second")
    if row.last_certified and not _STAMP.match(row.last_certified):
        out.append(f"last_certified {row.last_certified!r} is not YYYY-MM-DDTHH:MM:SSZ")
    if row.playbook_sha256 and not all(_SHA.match(s) for s in row.playbook_sha256.split(";")):
        out.append(f"playbook_sha256 {row.playbook_sha256!r} is not a sha256")
    if out or mqs is None:
        return out
    return out + _status_problems(row, mqs, points)


def _status_problems(row: Row, mqs: int, points: Mapping[str, Decimal]) -> list[str]:
    """The status and grade a row claims, against its own numbers."""
    failed = any(v == "fail" for v in row.gateways.values())
    if row.status == Status.PENDING:
        if row.grade != NO_GRADE or mqs != 0 or failed:
            return [f"a Pending row has no evidence: mqs 0, grade {NO_GRADE!r}, no failed gateway"]
        return []
    if row.grade != grade_for(mqs):
        return [f"grade {row.grade!r} does not match mqs {mqs} (grade {grade_for(mqs)})"]
    if failed:
        if row.status != Status.BLOCKED or mqs != 0:
            return [f"a failed gateway means mqs 0 and Blocked, not {row.status} with mqs {mqs}"]
        return []
    if points:
        total = sum(points.values(), Decimal(0))
        # Points are written to two places: six roundings move the sum by at most 0.03.
        if abs(total - mqs) > Decimal("0.53"):
            return [f"mqs {mqs} is not the sum of the category points ({total})"]
    if row.grade == "F":
        expected = Status.BLOCKED
    elif row.grade in ("A+", "A") and (
        all(v == "pass" for v in row.gateways.values())
        and all(v not in ("", NOT_ASSESSED) for v in row.points.values())
    ):
        expected = Status.CERTIFIED
    else:
        expected = Status.PROVISIONAL
    if row.status != expected:
        return [
            f"status {row.status} contradicts grade {row.grade} and its gateways and "
            f"categories (that is {expected})"
        ]
    return []


def parse_registry(text: str, where: str) -> Registry:
    """Parse registry ``text``; every malformed row is an error naming ``where:line``."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[str] = []
    try:
        header = tuple(next(reader))
    except StopIteration:
        return Registry(COLUMNS, ())
    except csv.Error as exc:
        raise CertifyError([f"{where}:1: not CSV ({exc})"]) from None
    missing = [c for c in COLUMNS if c not in header]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if missing or duplicated:
        what = [f"missing columns {', '.join(missing)}"] if missing else []
        what += [f"repeated columns {', '.join(duplicated)}"] if duplicated else []
        raise CertifyError([f"{where}:1: {'; '.join(what)} (see docs/certification.md)"])
    rows: list[Row] = []
    seen: dict[tuple[str, str], int] = {}
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"{where}:{reader.line_num}: not CSV ({exc})")
            break
        line = reader.line_num
        if not values:
            continue
        if len(values) != len(header):
            problems.append(f"{where}:{line}: {len(values)} values for {len(header)} columns")
            continue
        row = _row(dict(zip(header, values, strict=True)))
        problems.extend(f"{where}:{line}: {row.model or 'row'}: {p}" for p in row_problems(row))
        if row.key in seen:
            problems.append(
                f"{where}:{line}: {row.model} with playbook {row.playbook!r} is already "
                f"on line {seen[row.key]}"
            )
        seen[row.key] = line
        rows.append(row)
    if problems:
        raise CertifyError(problems)
    return Registry(header, tuple(rows))


def _row(cells: Mapping[str, str]) -> Row:
    known = set(COLUMNS)
    return Row(
        model=cells["model"],
        family=cells["family"],
        parameters=cells["parameters"],
        size_category=cells["size_category"],
        status=cells["status"],
        mqs=cells["mqs"],
        grade=cells["grade"],
        gateways={c: cells[c] for c in GATEWAY_COLUMNS},
        points={c: cells[c] for c in CATEGORY_COLUMNS},
        playbook=cells["playbook"],
        playbook_sha256=cells["playbook_sha256"],
        evidence=cells["evidence"],
        last_certified=cells["last_certified"],
        tok_s={c: v for c, v in cells.items() if _TOK_S.match(c)},
        extra={c: v for c, v in cells.items() if c not in known and not _TOK_S.match(c)},
    )


def read_registry(path: Path) -> Registry:
    """The registry at ``path``; an empty one when the file does not exist yet."""
    if not path.exists():
        return Registry(COLUMNS, ())
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CertifyError([f"{path}: cannot read the registry ({exc})"]) from None
    return parse_registry(text, str(path))


def _header(registry: Registry, rows: Iterable[Row]) -> tuple[str, ...]:
    """The file's own column order; columns it lacks (a new throughput) appended."""
    header = list(registry.header)
    for row in rows:
        for column in row.cells():
            if column not in header:
                header.append(column)
    return tuple(header)


def registry_text(registry: Registry) -> str:
    """The registry as CSV: its header order, rows sorted, ``\\n`` line ends, minimal quoting."""
    rows = sorted(registry.rows, key=sort_key)
    header = _header(registry, rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        cells = row.cells()
        writer.writerow([cells.get(column, "") for column in header])
    return out.getvalue()
