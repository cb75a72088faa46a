"""Certification: the registry CSV, the README block, badges, and `apr-qa certify`.

Summaries are made by the product (records scored and rendered by
``render_reports``), never written by hand; the seed README's table is the
founding document's own text, copied verbatim into tests/fixtures/certify.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.score.scoring_records import category_records, gateways_passed, rec

from apr_qa import api
from apr_qa.certify import CertifyError
from apr_qa.certify.registry import (
    COLUMNS,
    Registry,
    Row,
    parse_registry,
    read_registry,
    registry_text,
)
from apr_qa.certify.table import END, START, block_lines
from apr_qa.cli import cli
from apr_qa.evidence import Outcome, Record
from apr_qa.facts import ModelFacts
from apr_qa.gates import CATEGORY_WEIGHTS
from apr_qa.report import render_reports
from apr_qa.score import grade_for

SEED_BLOCK = Path(__file__).parent / "fixtures" / "certify" / "seed-readme-block.md"
T0 = datetime(2026, 2, 1, 9, 30, tzinfo=UTC)
T1 = datetime(2026, 3, 4, 17, 5, tzinfo=UTC)
HEADER = ",".join(COLUMNS)
NONE_ASSESSED = ",".join(["not assessed"] * 6)
README = "# Models\n\nIntro.\n\n" + START + "\n" + END + "\n\nOutro | kept *as is*.\n"


def _facts(model: str, family: str, parameters: int, size: str = "small") -> ModelFacts:
    return ModelFacts(model, family, "qwen2", parameters, size, "safetensors.bf16")


def _summary(
    tmp: Path, records: list[Record], facts: Sequence[ModelFacts] = (), name: str = "out"
) -> Path:
    return render_reports(records, tmp / name, facts=facts).paths["summary"]


def _certified_records(model: str, stamp: str) -> list[Record]:
    """Every gateway held and every category fully passed: Certified, MQS 1000."""
    records = gateways_passed(model, timestamp=stamp)
    for category in CATEGORY_WEIGHTS:
        records += category_records(str(category), 2, 2, model=model)
    return records


def _blocked_records(model: str, stamp: str) -> list[Record]:
    """G2 falsified: Blocked, MQS 0."""
    return [
        rec("G1-LOAD-001", model=model, scenario=None, timestamp=stamp),
        rec("G2-INFER-001", Outcome.FALSIFIED, model=model, reason="empty", timestamp=stamp),
    ]


def _certify(tmp: Path, *summaries: Path, now: datetime = T0, **kw: object) -> api.CertifyResult:
    return api.certify(
        summaries,
        registry=tmp / "docs" / "models.csv",
        readme=tmp / "README.md",
        now=now,
        **kw,  # type: ignore[arg-type]
    )


def _table_rows(readme: str) -> list[list[str]]:
    """The model table's rows (below its header and separator), as cells."""
    lines = readme.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Model |")) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("| "):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


# --- registry ------------------------------------------------------------------------


def test_registry_round_trip_is_byte_identical_and_keeps_unknown_columns(tmp_path: Path) -> None:
    text = (
        "model,notes," + HEADER.removeprefix("model,") + ",tok_s_gguf_cpu\n"
        'org/a,"keep, me ""quoted""",qwen,1.5B,small,Blocked,189,F,'
        "pass,pass,pass,pass,pass,189,not assessed,0,not assessed,not assessed,not assessed,"
        "p.yaml," + "a" * 64 + ",runs/1/evidence.jsonl,2026-01-31T16:41:00Z,12.5\n"
    )
    registry = parse_registry(text, "models.csv")
    assert registry.rows[0].extra == {"notes": 'keep, me "quoted"'}
    assert registry_text(registry) == text
    # Certifying another model keeps the column, its place, and the old row's value.
    path = tmp_path / "docs" / "models.csv"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    summary = _summary(tmp_path, _blocked_records("org/b", "2026-02-01T00:00:00+00:00"))
    api.certify([summary], registry=path, now=T0)
    after = path.read_text(encoding="utf-8")
    assert after.splitlines()[0] == text.splitlines()[0]
    assert after.splitlines()[1] == text.splitlines()[1]
    assert read_registry(path).rows[1].model == "org/b"


def test_unchanged_registry_is_not_rewritten_even_in_its_own_order(tmp_path: Path) -> None:
    path = tmp_path / "models.csv"
    # Hand-written: rows out of sort order, a quoted field that needs no quotes.
    text = (
        HEADER + "\n"
        f'org/z,"zeta",7B,,Pending,0,-,not run,not run,not run,not run,not run,{NONE_ASSESSED},,,,\n'
        f"org/a,alpha,1B,,Pending,0,-,not run,not run,not run,not run,not run,{NONE_ASSESSED},,,,\n"
    )
    path.write_bytes(text.encode())
    result = api.certify([], registry=path, now=T0)
    assert result.written == () and path.read_bytes() == text.encode()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("org/a,qwen,1B,,Pending,0,-,not run", "8 values for 22 columns"),
        (
            "org/a,qwen,1B,,Certified,1000,A+,pass,pass,pass,pass,pass," + NONE_ASSESSED + ",,,,",
            "contradicts grade A+",
        ),
        (
            "org/a,qwen,1B,,Blocked,500,A,pass,pass,pass,pass,pass," + NONE_ASSESSED + ",,,,",
            "grade 'A' does not match mqs 500 (grade F)",
        ),
        (
            "org/a,qwen,1B,,Provisional,0,F,pass,fail,pass,pass,pass," + NONE_ASSESSED + ",,,,",
            "a failed gateway means mqs 0 and Blocked",
        ),
        (
            "org/a,qwen,1B,,Pending,0,F,not run,not run,not run,not run,not run,"
            + NONE_ASSESSED
            + ",,,,",
            "a Pending row has no evidence",
        ),
        (
            "org/a,qwen,1B,,Shipped,0,-,not run,not run,not run,not run,not run,"
            + NONE_ASSESSED
            + ",,,,",
            "status 'Shipped' is not one of",
        ),
        (
            "org/a,qwen,1B,,Provisional,880,B+,pass,pass,pass,pass,pass,200,150,200,150,150,0,,,,",
            "mqs 880 is not the sum of the category points (850)",
        ),
        (
            "org/a,qwen,huge,,Pending,0,-,not run,not run,not run,not run,not run,"
            + NONE_ASSESSED
            + ",,,,",
            "not a parameter count",
        ),
        ('org/a,"qwen,1B', "not CSV"),
    ],
)
def test_a_malformed_row_is_an_error_naming_its_line(
    tmp_path: Path, line: str, problem: str
) -> None:
    good = (
        f"org/ok,qwen,1B,,Pending,0,-,not run,not run,not run,not run,not run,{NONE_ASSESSED},,,,"
    )
    path = tmp_path / "models.csv"
    path.write_text(f"{HEADER}\n{good}\n{line}\n", encoding="utf-8")
    with pytest.raises(CertifyError) as caught:
        read_registry(path)
    assert f"{path}:3:" in str(caught.value) and problem in str(caught.value)
    # Through the command: exit 2, the line on stderr, nothing written.
    readme = tmp_path / "README.md"
    readme.write_text(README)
    out = CliRunner().invoke(cli, ["certify", "--registry", str(path), "--readme", str(readme)])
    assert out.exit_code == 2 and f"{path}:3:" in out.output
    assert readme.read_text() == README


@pytest.mark.parametrize(
    "line",
    [
        "org/a,qwen,1B,,Certified,1000,A+,pass,pass,pass,pass,pass,200,150,200,150,150,150,,,,",
        "org/a,qwen,1B,,Provisional,1000,A+,pass,pass,not run,pass,pass,200,150,200,150,150,150,,,,",
        "org/a,qwen,1B,,Provisional,850,B+,pass,pass,pass,pass,pass,200,150,200,150,150,0,,,,",
        "org/a,qwen,1B,,Blocked,0,F,pass,fail,pass,pass,pass," + NONE_ASSESSED + ",,,,",
        "org/a,qwen,1B,,Blocked,189,F,pass,pass,pass,pass,pass,189,not assessed,0,"
        "not assessed,not assessed,not assessed,,,,",
    ],
)
def test_a_consistent_row_is_read(tmp_path: Path, line: str) -> None:
    registry = parse_registry(f"{HEADER}\n{line}\n", "models.csv")
    assert [r.model for r in registry.rows] == ["org/a"]


def test_missing_columns_are_named() -> None:
    with pytest.raises(CertifyError, match=r"models.csv:1: missing columns grade, g0"):
        parse_registry(HEADER.replace(",grade,g0", "") + "\n", "models.csv")


def test_rows_sort_by_family_then_parameters_parsed_numerically(tmp_path: Path) -> None:
    sizes = ["7B", "135M", "", "1.5B", "494032768", "32B"]
    lines = [
        f"org/m{i},{'qwen' if i else 'Alpha'},{size},,Pending,0,-,"
        f"not run,not run,not run,not run,not run,{NONE_ASSESSED},,,,"
        for i, size in enumerate(sizes)
    ]
    registry = parse_registry(HEADER + "\n" + "\n".join(lines) + "\n", "models.csv")
    ordered = [line.split(",")[0] for line in registry_text(registry).splitlines()[1:]]
    # Alpha (m0, 7B) first by family; then qwen by size: 135M, 494M, 1.5B, 32B, unknown.
    assert ordered == ["org/m0", "org/m1", "org/m4", "org/m3", "org/m5", "org/m2"]
    table = [r[0] for r in _table_rows("\n".join(block_lines(registry.rows, "x")))]
    assert [re.sub(r"\].*", "", c).lstrip("[") for c in table] == [
        "m0",
        "m1",
        "m4",
        "m3",
        "m5",
        "m2",
    ]


# --- the seed README ------------------------------------------------------------------

SEED_ROWS = """\
deepseek-ai/deepseek-coder-1.3b-instruct,deepseek-coder,1.3B
google/gemma-2-2b-it,gemma,2B
meta-llama/Llama-3.2-3B-Instruct,llama,3B
meta-llama/Llama-3.2-1B-Instruct,llama,1B
mistralai/Mistral-7B-Instruct-v0.3,mistral,7B
microsoft/Phi-3-mini-4k-instruct,phi,3.8B
Qwen/Qwen2.5-Coder-32B-Instruct,qwen-coder,32B
Qwen/Qwen2.5-Coder-14B-Instruct,qwen-coder,14B
Qwen/Qwen2.5-Coder-7B-Instruct,qwen-coder,7B!
Qwen/Qwen2.5-Coder-3B-Instruct,qwen-coder,3B!
Qwen/Qwen2.5-Coder-1.5B-Instruct,qwen-coder,1.5B!
Qwen/Qwen2.5-Coder-0.5B-Instruct,qwen-coder,0.5B!
"""


def _seed_registry() -> str:
    """The seed's 12 models as registry rows, deliberately out of order; ``!`` marks the
    four that were evaluated (Blocked: gateways held, MQS 189 from QUAL alone)."""
    lines = [HEADER]
    for entry in SEED_ROWS.splitlines():
        model, family, size = entry.split(",")
        if size.endswith("!"):
            lines.append(
                f"{model},{family},{size[:-1]},,Blocked,189,F,pass,pass,pass,pass,pass,"
                "189,not assessed,not assessed,not assessed,not assessed,not assessed,"
                "playbooks/models/x.yaml,,,2026-01-31T16:41:00Z"
            )
        else:
            lines.append(
                f"{model},{family},{size},,Pending,0,-,not run,not run,not run,not run,"
                f"not run,{NONE_ASSESSED},,,,"
            )
    return "\n".join(lines) + "\n"


def test_seed_readme_table_is_reproduced_from_equivalent_registry_rows(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "models.csv").write_text(_seed_registry(), encoding="utf-8")
    (tmp_path / "README.md").write_text(README, encoding="utf-8")
    _certify(tmp_path)
    ours = (tmp_path / "README.md").read_text(encoding="utf-8")
    seed = SEED_BLOCK.read_text(encoding="utf-8")

    def body(text: str) -> tuple[str, list[str]]:
        inner = text[text.index(START) + len(START) : text.index(END)].strip("\n").splitlines()
        lines = inner[1:]
        # The seed's hand-written priority note (and the blank line after it) is not data.
        for i, line in enumerate(lines):
            if line.startswith("**Priority Family:**"):
                del lines[i : i + 2]
                break
        return inner[0], lines

    our_update, our_lines = body(ours)
    seed_update, seed_lines = body(seed)
    assert our_lines == seed_lines  # counts, columns, rows, order, links, badges, marks
    # The update line may differ, in its time only.
    assert re.sub(r"\d", "0", our_update) == re.sub(r"\d", "0", seed_update)
    assert len(_table_rows(ours)) == 12
    assert ours.startswith("# Models\n\nIntro.\n\n") and ours.endswith(
        END + "\n\nOutro | kept *as is*.\n"
    )


# --- certify: summaries, newer and older, README, badges, --check ---------------------


def test_a_summary_certifies_into_registry_readme_and_badge(tmp_path: Path) -> None:
    model = "Qwen/Qwen2.5-Coder-1.5B-Instruct"
    facts = [_facts(model, "qwen-coder", 1_543_714_304)]
    summary = _summary(tmp_path, _certified_records(model, "2026-02-01T08:00:00+00:00"), facts)
    (tmp_path / "README.md").write_text(README)
    _certify(tmp_path, summary, badges=tmp_path / "badges")
    row = read_registry(tmp_path / "docs" / "models.csv").rows[0]
    document = json.loads(summary.read_text())["models"][0]
    assert (row.model, row.status, row.mqs, row.grade) == (
        document["model"],
        document["status"],
        str(document["mqs"]),
        document["grade"],
    )
    assert row.status == "Certified" and row.mqs == "1000" and row.grade == "A+"
    assert row.parameters == "1543714304" and row.family == "qwen-coder"
    assert row.last_certified == "2026-02-01T08:00:00Z"
    assert row.evidence == (tmp_path / "out" / "summary.json").as_posix()  # no evidence beside it
    cells = _table_rows((tmp_path / "README.md").read_text())[0]
    assert cells[:3] == [
        f"[Qwen2.5-Coder-1.5B-Instruct](https://huggingface.co/{model})",
        "qwen-coder",
        "1.5B",
    ]
    assert cells[3:] == [
        "![certified](https://img.shields.io/badge/CERTIFIED-brightgreen)",
        "1000",
        "A+",
        "✓",
        "✓",
        "✓",
        "✓",
    ]
    badge = json.loads((tmp_path / "badges" / "Qwen__Qwen2.5-Coder-1.5B-Instruct.json").read_text())
    assert badge == {
        "schemaVersion": 1,
        "label": "apr-qa",
        "message": "Certified · MQS 1000 (A+)",
        "color": "brightgreen",
    }


def test_newer_run_replaces_older_and_older_never_replaces_newer(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(README)
    model = "org/m"
    old = _summary(tmp_path, _blocked_records(model, "2026-01-01T00:00:00+00:00"), name="old")
    new = _summary(tmp_path, _certified_records(model, "2026-02-01T00:00:00+00:00"), name="new")
    _certify(tmp_path, old)
    assert read_registry(tmp_path / "docs" / "models.csv").rows[0].status == "Blocked"
    _certify(tmp_path, new)
    assert read_registry(tmp_path / "docs" / "models.csv").rows[0].status == "Certified"
    result = _certify(tmp_path, old, now=T1)
    assert result.written == () and len(result.plan.kept) == 1
    rows = read_registry(tmp_path / "docs" / "models.csv").rows
    assert [(r.model, r.status) for r in rows] == [(model, "Certified")]
    # Given together, in either order, the newer wins.
    assert _certify(tmp_path, new, old, now=T1).written == ()


def test_a_pending_row_registered_by_hand_is_filled_in_by_its_first_summary(
    tmp_path: Path,
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "models.csv").write_text(
        f"{HEADER}\norg/m,my-family,7B,,Pending,0,-,not run,not run,not run,not run,not run,"
        f"{NONE_ASSESSED},,,,\n"
    )
    (tmp_path / "README.md").write_text(README)
    _certify(tmp_path, _summary(tmp_path, _blocked_records("org/m", "2026-02-01T00:00:00Z")))
    rows = read_registry(tmp_path / "docs" / "models.csv").rows
    # No facts in this evidence: the registry's family and size stay.
    assert [(r.model, r.family, r.parameters, r.status) for r in rows] == [
        ("org/m", "my-family", "7B", "Blocked")
    ]


def test_idempotent_and_timestamp_moves_only_with_content(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(README)
    summary = _summary(tmp_path, _certified_records("org/m", "2026-02-01T00:00:00+00:00"))
    first = _certify(tmp_path, summary, now=T0, badges=tmp_path / "b")
    assert len(first.written) == 3
    before = {p: p.read_bytes() for p in first.written}
    again = _certify(tmp_path, summary, now=T1, badges=tmp_path / "b")
    assert again.written == ()
    assert {p: p.read_bytes() for p in first.written} == before
    assert "(updated: 2026-02-01 09:30 UTC)" in (tmp_path / "README.md").read_text()
    blocked = _summary(tmp_path, _blocked_records("org/n", "2026-03-01T00:00:00+00:00"), name="n")
    _certify(tmp_path, blocked, now=T1)
    assert "(updated: 2026-03-04 17:05 UTC)" in (tmp_path / "README.md").read_text()


def test_check_changes_nothing_and_exits_1_when_out_of_date(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(README)
    summary = _summary(tmp_path, _certified_records("org/m", "2026-02-01T00:00:00+00:00"))
    args = [
        "certify",
        str(summary),
        "--registry",
        str(tmp_path / "docs" / "models.csv"),
        "--readme",
        str(tmp_path / "README.md"),
    ]
    stale = CliRunner().invoke(cli, [*args, "--check"])
    assert stale.exit_code == 1 and "out of date" in stale.output
    assert (tmp_path / "README.md").read_text() == README
    assert not (tmp_path / "docs" / "models.csv").exists()
    assert CliRunner().invoke(cli, args).exit_code == 0
    current = CliRunner().invoke(cli, [*args, "--check"])
    assert current.exit_code == 0, current.output
    # A hand edit inside the block is out of date again.
    text = (tmp_path / "README.md").read_text()
    (tmp_path / "README.md").write_text(text.replace("| 1000 |", "| 999 |"))
    assert CliRunner().invoke(cli, [*args, "--check"]).exit_code == 1


def test_missing_markers_are_an_error_or_appended(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Models\n\nNo table yet.")
    with pytest.raises(CertifyError, match="no <!-- CERTIFICATION_TABLE_START -->"):
        _certify(tmp_path)
    assert readme.read_text() == "# Models\n\nNo table yet."
    _certify(tmp_path, append=True)
    text = readme.read_text()
    assert text.startswith("# Models\n\nNo table yet.\n\n## Model Certifications\n\n" + START)
    assert _certify(tmp_path, append=True, now=T1).written == ()
    readme.write_text(f"{START}\n{END}\n{START}\n{END}\n")
    with pytest.raises(CertifyError, match="found 2 start and 2 end"):
        _certify(tmp_path)


def test_throughput_columns_appear_when_measured() -> None:
    line = "org/a,qwen,1B,,Blocked,0,F,pass,fail,pass,pass,pass," + NONE_ASSESSED + ",,,,,"
    registry = parse_registry(f"{HEADER},tok_s_gguf_cpu\n{line}\n", "m.csv")
    assert "tok/s" not in "\n".join(block_lines(registry.rows, "x"))
    measured = parse_registry(f"{HEADER},tok_s_gguf_cpu\n{line}12.5\n", "m.csv")
    lines = block_lines(measured.rows, "x")
    assert lines[-3].endswith("| G4 | tok/s gguf cpu |") and lines[-1].endswith(
        "| ✗ | ✓ | ✓ | ✓ | 12.5 |"
    )


def test_names_from_files_cannot_break_the_table() -> None:
    row = Row(
        "evil|name",
        "fam|<script>",
        "1B",
        "",
        "Pending",
        "0",
        "-",
        dict.fromkeys(("g0", "g1", "g2", "g3", "g4"), "not run"),
        {c.lower(): "not assessed" for c in CATEGORY_WEIGHTS},
    )
    last = block_lines([row], "x")[-1]
    assert last.count(" | ") == 9 and "<script>" not in last and "evil\\|name" in last


# --- the property: certify(certify(x)) == certify(x) ----------------------------------

_GATEWAY_KEYS = ("g0", "g1", "g2", "g3", "g4")
_CATS = [str(c).lower() for c in CATEGORY_WEIGHTS]
_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)


@st.composite
def _rows(draw: st.DrawFn, index: int) -> Row:
    model = f"org{index}/" + draw(st.from_regex(r"[A-Za-z0-9._-]{1,10}", fullmatch=True))
    family = draw(st.sampled_from(["qwen", "llama", "a,b", 'q"x', "x|y"]) | _text)
    parameters = draw(st.sampled_from(["", "135M", "1.5B", "7B"]) | st.integers(1, 10**12).map(str))
    kind = draw(st.sampled_from(["pending", "failed", "scored"]))
    points = dict.fromkeys(_CATS, "not assessed")
    gateways = dict.fromkeys(_GATEWAY_KEYS, "not run")
    stamp = draw(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)))
    when = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "pending":
        return Row(model, family, parameters, "", "Pending", "0", "-", gateways, points)
    if kind == "failed":
        gateways = {g: draw(st.sampled_from(["pass", "fail"])) for g in _GATEWAY_KEYS}
        gateways["g1"] = "fail"
        return Row(
            model,
            family,
            parameters,
            "",
            "Blocked",
            "0",
            "F",
            gateways,
            points,
            playbook=draw(_text),
            last_certified=when,
        )
    for c, weight in zip(_CATS, CATEGORY_WEIGHTS.values(), strict=True):
        if draw(st.booleans()):
            points[c] = str(draw(st.integers(0, weight)))
    gateways = {g: draw(st.sampled_from(["pass", "not run"])) for g in _GATEWAY_KEYS}
    mqs = sum(int(v) for v in points.values() if v != "not assessed")
    grade = grade_for(mqs)
    complete = all(v != "not assessed" for v in points.values())
    if grade == "F":
        status = "Blocked"
    elif grade in ("A+", "A") and complete and all(v == "pass" for v in gateways.values()):
        status = "Certified"
    else:
        status = "Provisional"
    return Row(
        model,
        family,
        parameters,
        "",
        status,
        str(mqs),
        grade,
        gateways,
        points,
        playbook=draw(_text),
        last_certified=when,
        tok_s=draw(st.sampled_from([{}, {"tok_s_gguf_cpu": "3.5"}])),
    )


@st.composite
def _registries(draw: st.DrawFn) -> list[Row]:
    n = draw(st.integers(0, 6))
    return [draw(_rows(i)) for i in range(n)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_registries(), before=_text, after=_text)
def test_certify_is_idempotent_and_keeps_text_outside_the_markers(
    rows: list[Row], before: str, after: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        registry = root / "models.csv"
        registry.write_text(registry_text(Registry(COLUMNS, tuple(rows))), encoding="utf-8")
        # Round trip: what was written reads back into the same bytes.
        assert registry_text(read_registry(registry)) == registry.read_text(encoding="utf-8")
        readme = root / "README.md"
        outside = (
            before.replace(START, "").replace(END, ""),
            after.replace(START, "").replace(END, ""),
        )
        readme.write_bytes(f"{outside[0]}\n{START}\n{END}\n{outside[1]}".encode())
        plan_kw = {"registry": registry, "readme": readme, "badges": root / "b"}
        api.certify([], now=T0, **plan_kw)  # type: ignore[arg-type]
        once = {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        second = api.certify([], now=T1, **plan_kw)  # type: ignore[arg-type]
        twice = {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        assert second.written == () and twice == once
        text = readme.read_bytes().decode()
        assert text.startswith(f"{outside[0]}\n{START}") and text.endswith(f"{END}\n{outside[1]}")
        assert len(_table_rows(text)) == len(rows)


def test_a_summary_whose_status_contradicts_its_numbers_is_refused(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(README)
    summary = _summary(tmp_path, _blocked_records("org/m", "2026-02-01T00:00:00+00:00"))
    document = json.loads(summary.read_text())
    document["models"][0]["status"] = "Provisional"  # a gateway failed: it is Blocked
    summary.write_text(json.dumps(document))
    with pytest.raises(CertifyError, match=r"summary.json: org/m: a failed gateway means"):
        _certify(tmp_path, summary)
    assert (tmp_path / "README.md").read_text() == README
    assert not (tmp_path / "docs" / "models.csv").exists()
    summary.write_text("{}")
    with pytest.raises(CertifyError, match=r"not a valid summary.json"):
        _certify(tmp_path, summary)


def test_a_crlf_readme_stays_crlf_and_a_missing_one_is_created_only_on_append(
    tmp_path: Path,
) -> None:
    readme = tmp_path / "README.md"
    readme.write_bytes(README.replace("\n", "\r\n").encode())
    _certify(tmp_path)
    data = readme.read_bytes()
    assert b"\r\n| Status | Count |\r\n" in data and data.count(b"\n") == data.count(b"\r\n")
    assert data.startswith(b"# Models\r\n\r\nIntro.\r\n\r\n" + START.encode() + b"\r\n")
    assert _certify(tmp_path, now=T1).written == ()
    readme.unlink()
    with pytest.raises(CertifyError, match="no such README"):
        _certify(tmp_path)
    _certify(tmp_path, append=True)
    assert readme.read_text().startswith("## Model Certifications\n\n" + START)


def test_certifying_nothing_creates_no_registry(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(README)
    result = _certify(tmp_path, check=True)
    assert result.exit_code == 1 and result.out_of_date == (tmp_path / "README.md",)
    _certify(tmp_path)
    assert not (tmp_path / "docs").exists()
    assert "| Pending | 0/0 |" in (tmp_path / "README.md").read_text()
    assert _certify(tmp_path, check=True).exit_code == 0


def test_profiled_throughput_reaches_the_registry_and_the_table(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(README)
    model = "org/m"
    stamp = "2026-02-01T00:00:00+00:00"

    def timed(gate: str, tok_per_s: float, backend: str = "cpu") -> Record:
        base = rec(gate, model=model, backend=backend, timestamp=stamp)
        return dataclasses.replace(base, metrics={"tok_per_s": tok_per_s})

    profiled = [
        *gateways_passed(model, timestamp=stamp),
        timed("F-PROFILE-CI-001", 10.0),
        timed("F-PROFILE-CI-002", 30.0),
        timed("F-PROFILE-CI-001", 12.5),
        timed("F-PROFILE-CI-001", 7.0, backend="gpu"),
        timed("F-A1-001", 99.0),  # a scenario's own timing is no profile
    ]
    summary = _summary(tmp_path, profiled)
    assert json.loads(summary.read_text())["models"][0]["throughput"] == [
        {"format": "gguf", "backend": "cpu", "tok_per_s": 12.5},
        {"format": "gguf", "backend": "gpu", "tok_per_s": 7.0},
    ]
    _certify(tmp_path, summary)
    row = read_registry(tmp_path / "docs" / "models.csv").rows[0]
    assert row.tok_s == {"tok_s_gguf_cpu": "12.5", "tok_s_gguf_gpu": "7"}
    table = (tmp_path / "README.md").read_text()
    assert "| G4 | tok/s gguf cpu | tok/s gguf gpu |" in table
    assert _table_rows(table)[0][-2:] == ["12.5", "7"]
    # A newer run that was not profiled: no throughput of the older run's is left behind.
    newer = _summary(
        tmp_path, gateways_passed(model, timestamp="2026-03-01T00:00:00+00:00"), name="newer"
    )
    assert json.loads(newer.read_text())["models"][0]["throughput"] == []
    _certify(tmp_path, newer)
    assert read_registry(tmp_path / "docs" / "models.csv").rows[0].tok_s == {
        "tok_s_gguf_cpu": "",
        "tok_s_gguf_gpu": "",
    }
    assert "tok/s" not in (tmp_path / "README.md").read_text()
