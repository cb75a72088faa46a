"""Model facts: counted from the tensors (checked against the safetensors and gguf
libraries' own tables), written to the evidence, read back, carried into summary.json."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import pytest
from gguf import GGUFReader
from hypothesis import given
from hypothesis import strategies as st
from safetensors import safe_open
from tests.score.scoring_records import gateways_passed

from apr_qa.evidence import EvidenceWriter, read_evidence
from apr_qa.facts import (
    ModelFacts,
    count_facts,
    format_parameters,
    latest_facts,
    parse_parameters,
    size_category,
)
from apr_qa.fixtures import fixture_path
from apr_qa.report import render_reports


def _safetensors_count(path: Path) -> int:
    with safe_open(str(path / "model.safetensors"), "np") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118


def _gguf_count(path: Path) -> int:
    return sum(int(t.n_elements) for t in GGUFReader(path).tensors)


@pytest.mark.parametrize(
    ("parameters", "label", "category"),
    [
        (123_200, "123K", "tiny"),
        (134_515_008, "135M", "tiny"),
        (494_032_768, "494M", "tiny"),
        (999_600_000, "1B", "tiny"),
        (1_543_714_304, "1.5B", "small"),
        (3_821_079_552, "3.8B", "small"),
        (7_615_616_512, "7.6B", "medium"),
        (9_241_705_984, "9.2B", "large"),
        (14_770_033_664, "15B", "xlarge"),
        (72_706_203_648, "73B", "huge"),
    ],
)
def test_counts_are_written_as_people_write_them(
    parameters: int, label: str, category: str
) -> None:
    assert format_parameters(parameters) == label
    assert size_category(parameters) == category


@given(st.integers(1, 10**13))
def test_a_written_count_parses_back_within_its_rounding(parameters: int) -> None:
    back = parse_parameters(format_parameters(parameters))
    assert abs(back - parameters) <= Decimal("0.05") * parameters + 1


@pytest.mark.parametrize("text", ["", "1.5 G", "B", "-3M", "1e9", "7B-instruct"])
def test_what_is_not_a_count_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a parameter count"):
        parse_parameters(text)


@pytest.mark.parametrize("fixture", ["tiny-llama", "tiny-qwen2", "tiny-qa"])
def test_parameters_are_counted_from_the_tensors_of_either_format(fixture: str) -> None:
    root = fixture_path(fixture)
    expected = _safetensors_count(root)
    facts = count_facts(f"apr-qa/{fixture}", root, "safetensors.f32")
    assert facts is not None and facts.parameters == expected
    config = json.loads((root / "config.json").read_text())
    assert facts.architecture == config["model_type"] and facts.family == config["model_type"]
    for gguf in sorted(root.glob("*.gguf")):
        counted = count_facts(f"apr-qa/{fixture}", gguf, gguf.stem, family="declared")
        assert counted is not None and counted.family == "declared"
        assert counted.parameters == _gguf_count(gguf) == expected, gguf.name


def test_no_facts_from_what_cannot_be_read(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 7)
    assert count_facts("m", broken, "gguf.f32") is None
    assert count_facts("m", tmp_path / "absent", "safetensors.f32") is None


def test_facts_travel_through_the_evidence_into_the_summary(tmp_path: Path) -> None:
    old = ModelFacts("org/m", "fam", "llama", 100, "tiny", "gguf.q8_0", "r1", "2026-01-01T00:00")
    new = ModelFacts("org/m", "fam", "llama", 200, "tiny", "safetensors.f32", "r2", "2026-02-01")
    path = tmp_path / "evidence.jsonl"
    with EvidenceWriter(path) as writer:
        writer.write_all(gateways_passed("org/m"))
        writer.write_facts(new)
        writer.write_facts(old)
    with path.open("a") as fh:
        fh.write(json.dumps({**old.to_json(), "parameters": 0}) + "\n")
    read = read_evidence([path])
    assert read.facts == [new, old]
    assert len(read.warnings) == 1 and f"{path}:8: invalid model facts" in read.warnings[0]
    assert latest_facts([old, new]) == latest_facts([new, old]) == {"org/m": new}
    summary = render_reports(read.records, tmp_path / "out", facts=read.facts).summary
    assert summary["models"][0]["facts"] == {
        "family": "fam",
        "architecture": "llama",
        "parameters": 200,
        "size_category": "tiny",
        "artifact": "safetensors.f32",
    }
    # Evidence with no facts (a fake backend, an older apr-qa) says so.
    bare = render_reports(read.records, tmp_path / "bare").summary
    assert bare["models"][0]["facts"] is None
