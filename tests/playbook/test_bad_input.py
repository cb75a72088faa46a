"""Bad playbooks get one clear, located line each and never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apr_qa.errors import PlaybookError
from apr_qa.playbook import Playbook, load_playbook
from apr_qa.playbook.source import MAX_FILE_BYTES

MINIMAL = 'model: {id: "org/model"}\n'


def _problems(path: Path) -> list[str]:
    with pytest.raises(PlaybookError) as info:
        load_playbook(path)
    return info.value.lines()


def test_minimal_playbook_gets_defaults(write) -> None:  # type: ignore[no-untyped-def]
    playbook = load_playbook(write(MINIMAL))
    assert playbook.name == "model"
    assert playbook.matrix.formats == ("safetensors", "gguf")
    assert playbook.matrix.scenario_count == 10
    assert playbook.failure_policy == "stop-on-p0"
    assert playbook.model.trust_remote_code is False


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "empty file"),
        ("# only a comment\n", 1, "empty file"),
        ("- a\n- b\n", 1, "a playbook is a mapping"),
        ("name: x\n", 1, "missing 'model'"),
        (
            "model: {id: m}\ntest_matrix:\n  scenario_count: -5\n",
            3,
            "-5 is less than the minimum of 0",
        ),
        ("model: {id: m}\ntest_matrix:\n  backends: [tpu]\n", 3, "'tpu' is not one of: cpu, gpu"),
        (
            "model: {id: m}\ntest_matrx: {}\n",
            2,
            "unknown key 'test_matrx' (did you mean 'test_matrix'?)",
        ),
        (
            "model: {id: m, hf_rep: x}\n",
            1,
            "unknown key 'hf_rep' in model (did you mean 'hf_repo'?)",
        ),
        ("model: {id: m}\nscenarios:\n  - name: s\n", 3, "scenario 's' has no prompt"),
        ("model: {id: m}\nscenarios:\n  - prompt: hi\n", 3, "'name' is required"),
        ("model: {id: m}\nmodel: {id: n}\n", 2, "duplicate key 'model' (first at line 1)"),
        ("model: {id: m}\ntest_matrix:\n  seed: [1\n", 4, "invalid YAML"),
        ("model: {id: m}\ntest_matrix: {timeout_ms: fast}\n", 2, "'fast' is not of type 'integer'"),
        ("model: {id: m}\n---\nmodel: {id: n}\n", 3, "several YAML documents"),
        (
            "model: {id: m}\nscenarios:\n  - {name: s, prompt: p, oracle: arithmetc}\n",
            3,
            "did you mean 'arithmetic'",
        ),
        (
            "model: {id: m}\nscenarios:\n  - {name: s, prompt: p, oracle: regex, pattern: '(['}\n",
            3,
            "regex",
        ),
    ],
)
def test_bad_playbook_is_one_located_line(write, text: str, line: int, fragment: str) -> None:  # type: ignore[no-untyped-def]
    path = write(text)
    problems = _problems(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:{line}:"), problems
    assert fragment in problems[0]


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(range(256)))
    assert "binary file" in _problems(path)[0]


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"model: {id: caf\xe9}\n")
    assert "not UTF-8" in _problems(path)[0]


def test_ten_megabyte_file(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(MINIMAL + "# " + "x" * (10 * 1024 * 1024) + "\n")
    assert path.stat().st_size > MAX_FILE_BYTES
    assert "larger than 2 MiB, the limit for a playbook" in _problems(path)[0]


def test_billion_laughs_is_refused_without_expanding(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join(f'*a{i - 1}' for _ in range(9))}]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("model: {id: m}\nmetadata:\n  " + "\n  ".join(lines) + "\n")
    problems = _problems(path)
    assert "alias bomb" in problems[0]


def test_recursive_alias_is_refused(write) -> None:  # type: ignore[no-untyped-def]
    problems = _problems(write("model: {id: m}\nmetadata: &a\n  self: *a\n"))
    assert "recursive YAML alias" in problems[0] or "alias" in problems[0]


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert "file not found" in _problems(tmp_path / "nope.yaml")[0]
    assert "is a directory" in _problems(tmp_path)[0]


def test_all_problems_of_a_file_are_reported(write) -> None:  # type: ignore[no-untyped-def]
    path = write("model: {id: m}\nfoo: 1\ntest_matrix: {backends: [tpu], seed: -1}\n")
    problems = _problems(path)
    assert len(problems) == 3
    assert any(":2:1: unknown key 'foo'" in p for p in problems)


def test_quoted_scalars_of_the_original_dialect_are_coerced(write) -> None:  # type: ignore[no-untyped-def]
    playbook = load_playbook(
        write('model: {id: m}\ngates: {g0_integrity: "false", g4_max_garbage_rate: "1e-1"}\n')
    )
    assert playbook.gates.g0_integrity is False
    assert playbook.gates.g4_max_garbage_rate == pytest.approx(0.1)


def test_trust_remote_code_is_off_unless_written(write) -> None:  # type: ignore[no-untyped-def]
    on = load_playbook(write("model: {id: m, trust_remote_code: true}\n", "a.yaml"))
    assert on.model.trust_remote_code is True


def test_relative_model_path_resolves_against_the_playbook(write, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    playbook = load_playbook(write("model: {path: ./weights}\n"))
    assert playbook.model.path == tmp_path / "weights"
    assert playbook.model.id == "weights"


# --- property: generated documents give a Playbook or a clean error, nothing else ---

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=False),
    st.text(max_size=20), st.sampled_from(["true", "1e-5", "cpu", "gguf", "run", "q4_k_m", "arithmetic"]),
)  # fmt: skip
_keys = st.sampled_from(
    ["model", "id", "hf_repo", "path", "name", "test_matrix", "modalities", "backends", "formats",
     "scenario_count", "seed", "scenarios", "prompt", "oracle", "expected", "gates", "failure_policy",
     "quantizations", "messages", "role", "content", "unknown_key", "differential_tests"]
)  # fmt: skip
_documents = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=5)
    ),
    max_leaves=25,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=_documents)
def test_loader_never_raises_anything_but_a_playbook_error(write, doc: object) -> None:  # type: ignore[no-untyped-def]
    path = write(yaml.safe_dump(doc))
    try:
        result = load_playbook(path)
    except PlaybookError as exc:
        assert exc.problems
        for line in exc.lines():
            assert line.startswith(str(path) + ":")
            assert "\n" not in line
    else:
        assert isinstance(result, Playbook)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=300))
def test_loader_survives_arbitrary_bytes(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(raw)
    try:
        load_playbook(path)
    except PlaybookError as exc:
        assert exc.problems
