"""The fixtures whose GGUFs llama.cpp's own converter writes (gemma2, phi3: the
certification table's architectures it converts from a SentencePiece tokenizer).

- Each committed GGUF is byte for byte what llama.cpp's converter (and, for q4_0,
  its quantizer) writes from the committed checkpoint today, so every differential
  test that runs over the fixtures' GGUFs is proven on GGUFs as users get them.
- The reference converter agrees with llama.cpp's on every tensor (names, shapes,
  types, f32 values) and on the vocabulary and the keys llama.cpp's runtime reads.
- The conversion check (F-CONV-*) run with llama.cpp's converter as its command
  corroborates each fixture, idempotency included.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from apr_qa.checks import Artifact
from apr_qa.checks.conversion import ConversionCheck
from apr_qa.evidence import Outcome
from apr_qa.execute.records import CellRef
from apr_qa.fixtures import fixture_path
from apr_qa.models.convert import convert
from apr_qa.playbook import load_playbook
from apr_qa.testing.fixtures.specs import FIXTURE_SPECS
from apr_qa.testing.llama_cpp_converter import SCRIPT, convert_with_llama_cpp, converter_dir

LLAMA_CPP = sorted(n for n, s in FIXTURE_SPECS.items() if s.gguf_writer == "llama.cpp")

# Keys the reference converter writes differently on purpose, or that only name the file.
_NAMING = ("general.",)


def test_gemma2_and_phi3_fixtures_ship_llama_cpp_conversions() -> None:
    assert {FIXTURE_SPECS[n].architecture for n in LLAMA_CPP} == {"gemma2", "phi3"}
    for name in LLAMA_CPP:
        assert (fixture_path(name) / "tokenizer.model").is_file()
        assert sorted(p.name for p in fixture_path(name).glob("*.gguf")) == sorted(
            f"{name}-{q}.gguf" for q in FIXTURE_SPECS[name].quants
        )


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["f32", "q4_0"])
@pytest.mark.parametrize("fixture", LLAMA_CPP)
def test_committed_gguf_is_what_llama_cpp_writes(tmp_path: Path, fixture: str, quant: str) -> None:
    committed = fixture_path(fixture) / f"{fixture}-{quant}.gguf"
    fresh = convert_with_llama_cpp(fixture_path(fixture), tmp_path / committed.name, quant)
    assert fresh.read_bytes() == committed.read_bytes()


def _fields(reader: Any) -> dict[str, Any]:
    out = {}
    for name, field in reader.fields.items():
        if name.startswith(_NAMING) or name.startswith("GGUF."):
            continue
        out[name] = field.contents()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("fixture", LLAMA_CPP)
def test_the_reference_converter_writes_what_llama_cpp_writes(tmp_path: Path, fixture: str) -> None:
    import gguf

    ours = gguf.GGUFReader(convert(fixture_path(fixture), tmp_path / "ours.gguf", "f32"))
    theirs = gguf.GGUFReader(fixture_path(fixture) / f"{fixture}-f32.gguf")
    ours_t = {t.name: t for t in ours.tensors}
    theirs_t = {t.name: t for t in theirs.tensors}
    assert sorted(ours_t) == sorted(theirs_t)
    for name, t in theirs_t.items():
        assert ours_t[name].tensor_type == t.tensor_type, name
        assert list(ours_t[name].shape) == list(t.shape), name
        np.testing.assert_array_equal(ours_t[name].data, t.data, err_msg=name)
    mine, llama = _fields(ours), _fields(theirs)
    missing = sorted(set(llama) - set(mine))
    assert missing == [], f"keys llama.cpp writes that the reference converter does not: {missing}"
    for key, value in llama.items():
        assert mine[key] == value, key


@pytest.mark.slow
@pytest.mark.parametrize("fixture", LLAMA_CPP)
def test_conversion_check_with_llama_cpps_converter_corroborates(
    tmp_path: Path, fixture: str
) -> None:
    script = converter_dir() / SCRIPT
    command = f"{sys.executable} {script} {{src}} --outfile {{dst}} --outtype {{quant}}"
    path = tmp_path / "conv.yaml"
    path.write_text(
        "name: conv\nmodel: {id: org/conv}\n"
        "test_matrix: {modalities: [run], backends: [cpu], formats: [safetensors]}\n"
        'scenarios:\n  - {name: s, prompt: "What is 2 + 3?", oracle: garbage}\n'
        "differential_tests:\n  conversion:\n"
        f"    command: '{command}'\n    quantizations: [f32, q8_0]\n"
    )
    book = load_playbook(path)
    artifact = Artifact(book, CellRef("org/conv", "safetensors"), fixture_path(fixture), "local")
    findings = {f.gate: f for f in ConversionCheck().check(book, [artifact])}
    assert findings
    for gate, finding in findings.items():
        assert finding.outcome is Outcome.CORROBORATED, (gate, finding.reason)
        assert finding.details["compared"] == 2
