"""One regression test per hostile input of the robustness issue: each used to hang,
crash, run out of memory or pass silently; each now gets one clear line and an exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from apr_qa.cli import cli
from apr_qa.evidence import EvidenceWriter, Outcome, Record, now_utc
from apr_qa.models.sources import ModelRef, resolve

MODEL = 'model: {id: "org/m"}\n'


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def assert_clean(result: Result, code: int) -> None:
    """The exit code, and no Python exception reached the user."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


def playbook(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- regex oracles -------------------------------------------------------------------


def test_a_catastrophic_regex_is_a_located_validate_error(tmp_path: Path) -> None:
    pattern = "(" + "|".join(["."] * 10) + ")*z"
    path = playbook(
        tmp_path,
        MODEL
        + f'scenarios:\n  - name: s\n    prompt: p\n    oracle: {{type: regex, pattern: "{pattern}"}}\n',
    )
    result = invoke("validate", str(path))
    assert_clean(result, 2)
    assert result.stderr.startswith(f"{path}:5:13: oracle 'regex'")
    assert "catastrophic backtracking" in result.stderr


# --- special files and bounded reads --------------------------------------------------


def test_validate_dev_zero_is_refused_without_reading_it() -> None:
    result = invoke("validate", "/dev/zero")
    assert_clean(result, 2)
    assert result.stderr.strip() == "/dev/zero:1:1: is a character device, not a playbook file"


def test_validate_a_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    # A subprocess: opening a FIFO with no writer would block this test for ever.
    done = subprocess.run(
        [sys.executable, "-m", "apr_qa.cli", "validate", str(fifo)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "is a FIFO (named pipe), not a playbook file" in done.stderr


def test_a_file_is_bounded_by_the_bytes_read_not_by_its_reported_size(tmp_path: Path) -> None:
    from apr_qa.bounded import UnreadableInput, read_regular

    maps = Path("/proc/self/maps")  # a regular file that reports size 0 and holds kilobytes
    assert maps.stat().st_size == 0
    with pytest.raises(UnreadableInput, match="larger than 64 bytes"):
        read_regular(maps, 64)
    small = tmp_path / "small"
    small.write_bytes(b"x" * 64)
    assert read_regular(small, 64) == b"x" * 64


def test_validate_locked_against_a_device_is_one_line(tmp_path: Path) -> None:
    path = playbook(tmp_path, MODEL)
    result = invoke("validate", str(path), "--locked", "/dev/zero")
    assert_clean(result, 2)
    assert "apr-qa: error: /dev/zero: is a character device, not a lock file" in result.stderr


@pytest.mark.parametrize("command", ["validate", "plan", "run"])
def test_model_path_dev_null_is_one_clear_error(tmp_path: Path, command: str) -> None:
    path = playbook(tmp_path, "scenarios:\n  - {name: s, prompt: p}\n")
    result = invoke(command, str(path), "--model-path", "/dev/null")
    assert_clean(result, 2)
    assert "/dev/null is a special file" in result.stderr


def test_resolve_refuses_a_special_file_as_a_model() -> None:
    from apr_qa.errors import UsageError

    with pytest.raises(UsageError, match="special file"):
        resolve(ModelRef(path=Path("/dev/null")), ["gguf"], [])


def test_a_gguf_with_a_bad_magic_reads_well(tmp_path: Path) -> None:
    bad = tmp_path / "model-q4_0.gguf"
    bad.write_bytes(b"NOPE" + bytes(64))
    (missing,) = resolve(ModelRef(path=bad), ["gguf"], ["q8_0"]).missing
    assert missing.reason == (
        f"the model path {bad} is a single GGUF file whose header cannot be read "
        "(not a valid GGUF file)"
    )


def test_convert_to_an_existing_directory_is_a_usage_error(tmp_path: Path) -> None:
    src = Path(__file__).resolve().parents[2] / "src/apr_qa/fixtures/models/tiny-llama"
    result = invoke("convert", str(src), str(tmp_path))
    assert_clean(result, 2)
    assert (
        f"apr-qa: error: {tmp_path}: is a directory; name the GGUF file to write" in result.stderr
    )
    assert list(tmp_path.iterdir()) == []


# --- deep nesting -----------------------------------------------------------------------


def _record() -> Record:
    return Record(
        run_id="r",
        record_id="r-1",
        gate="F-A1-001",
        category="QUAL",
        severity="P1",
        outcome=Outcome.CORROBORATED,
        reason="ok",
        model="org/m",
        timestamp=now_utc(),
    )


def test_report_on_deeply_nested_evidence_skips_the_line(tmp_path: Path) -> None:
    evidence = tmp_path / "e.jsonl"
    with EvidenceWriter(evidence) as writer:
        writer.write(_record())
    with evidence.open("a", encoding="utf-8") as fh:
        fh.write("[" * 100_000 + "]" * 100_000 + "\n")
    result = invoke("report", str(evidence), "-o", str(tmp_path / "out"))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code in (0, 1)
    assert f"{evidence}:2: JSON nested 100000 levels deep (limit 64), skipped" in result.stderr
    assert "org/m" in result.stdout  # the good record was still scored


def test_an_evidence_line_over_the_length_bound_is_skipped(tmp_path: Path) -> None:
    from apr_qa.evidence import MAX_RECORD_BYTES, read_evidence

    evidence = tmp_path / "e.jsonl"
    evidence.write_text('"' + "x" * (MAX_RECORD_BYTES + 10) + '"\n', encoding="utf-8")
    with EvidenceWriter(evidence, append=True) as writer:
        writer.write(_record())
    read = read_evidence([evidence])
    assert [r.record_id for r in read.records] == ["r-1"]
    assert read.warnings == [f"{evidence}:1: line longer than {MAX_RECORD_BYTES} bytes, skipped"]


@pytest.mark.parametrize("depth", [65, 100_000])
def test_a_deeply_nested_playbook_is_refused_not_crashed(tmp_path: Path, depth: int) -> None:
    path = playbook(tmp_path, MODEL + "metadata: {a: " + "[" * depth + "]" * depth + "}\n")
    # A subprocess: 100k levels used to crash the C YAML composer (SIGSEGV), not just raise.
    done = subprocess.run(
        [sys.executable, "-m", "apr_qa.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-500:]
    assert (
        done.stderr
        == f"{path}:2:77: nested more than 64 levels deep; playbooks are limited to 64\n"
    )


def test_a_playbook_nested_within_the_bound_loads(tmp_path: Path) -> None:
    path = playbook(tmp_path, MODEL + "metadata: {a: " + "[" * 60 + "]" * 60 + "}\n")
    assert_clean(invoke("validate", str(path)), 0)


# --- numbers bounded by the schema and the flags ----------------------------------------


@pytest.mark.parametrize(
    ("shard", "message"),
    [
        ("1/1000000000", "--shard '1/1000000000': N must be at most 10000"),
        ("1/" + "9" * 20, f"--shard '1/{'9' * 20}': N must be at most 10000"),
        ("2/1", "--shard '2/1': K must be between 1 and N"),
        ("١/٢", "--shard '١/٢': expected K/N"),
    ],
)
def test_plan_shard_is_bounded(tmp_path: Path, shard: str, message: str) -> None:
    result = invoke("plan", str(playbook(tmp_path, MODEL)), "--shard", shard)
    assert_clean(result, 2)
    assert message in result.stderr


def test_plan_shard_within_the_bound_plans(tmp_path: Path) -> None:
    result = invoke("plan", str(playbook(tmp_path, MODEL)), "--shard", "1/10000")
    assert_clean(result, 0)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "scenario_count: 100000000",
            "test_matrix.scenario_count: 100000000 is greater than the maximum of 100000",
        ),
        (
            "scenario_count: 1e23",
            "test_matrix.scenario_count: 1e+23 is greater than the maximum of 100000",
        ),
        (
            'scenario_count: "1e23"',
            "test_matrix.scenario_count: 1e+23 is greater than the maximum of 100000",
        ),
        (
            "seed: 99999999999999999999",
            "test_matrix.seed: 1e+20 is greater than the maximum of 4294967295",
        ),
        (
            "max_tokens: 10000000",
            "test_matrix.max_tokens: 10000000 is greater than the maximum of 1048576",
        ),
        (
            "timeout_ms: 1e12",
            "test_matrix.timeout_ms: 1000000000000 is greater than the maximum of 86400000",
        ),
        ("temperature: .nan", "test_matrix.temperature: NaN is not a number this field accepts"),
    ],
)
def test_matrix_numbers_are_bounded_by_the_schema(tmp_path: Path, line: str, message: str) -> None:
    path = playbook(tmp_path, MODEL + f"test_matrix:\n  {line}\n")
    result = invoke("validate", str(path))
    assert_clean(result, 2)
    assert result.stderr == f"{path}:3:{len(line.split(':')[0]) + 5}: {message}\n"


def test_the_largest_allowed_scenario_count_plans(tmp_path: Path) -> None:
    path = playbook(tmp_path, MODEL + "test_matrix: {scenario_count: 100000, formats: [gguf]}\n")
    result = invoke("plan", str(path))
    assert_clean(result, 0)
    assert "100000 tests" in result.output or "100,000" in result.output


# --- values accepted silently before ----------------------------------------------------


def test_arithmetic_expected_that_is_not_a_number_is_a_located_error(tmp_path: Path) -> None:
    path = playbook(
        tmp_path,
        MODEL + "scenarios:\n  - name: s\n    prompt: What is 2+2?\n    oracle: arithmetic\n"
        "    expected: four-ish\n",
    )
    result = invoke("validate", str(path))
    assert_clean(result, 2)
    assert result.stderr.startswith(f"{path}:6:15: oracle 'arithmetic': expected value 'four-ish'")
    numeric = playbook(
        tmp_path,
        MODEL
        + "scenarios:\n  - {name: s, prompt: 'What is 2+2?', oracle: arithmetic, expected: four}\n",
    )
    assert_clean(invoke("validate", str(numeric)), 0)


@pytest.mark.parametrize("gate", ["g1_model_loads", "g2_basic_inference", "g3_no_crashes"])
def test_switching_off_an_always_on_gateway_warns(tmp_path: Path, gate: str) -> None:
    path = playbook(tmp_path, MODEL + f"gates: {{{gate}: false}}\n")
    result = invoke("validate", str(path))
    assert_clean(result, 0)
    name = gate[:2].upper()
    assert (
        f"apr-qa: warning: gates.{gate}: false is ignored: {name} cannot be switched off; "
        f"the gateway still runs ({path})"
    ) in result.stderr


def test_switching_off_g0_and_g4_is_honoured_without_a_warning(tmp_path: Path) -> None:
    from apr_qa.playbook import load_playbook

    path = playbook(tmp_path, MODEL + "gates: {g0_integrity: false, g4_output_quality: false}\n")
    loaded = load_playbook(path)
    assert loaded.warnings == ()
    assert not loaded.gates.g0_integrity and not loaded.gates.g4_output_quality


@pytest.mark.parametrize("version", ['"9.9"', '"2.0"', "3", '"abc"'])
def test_an_unknown_format_version_is_refused(tmp_path: Path, version: str) -> None:
    path = playbook(tmp_path, f"version: {version}\n" + MODEL)
    result = invoke("validate", str(path))
    assert_clean(result, 2)
    assert result.stderr.startswith(f"{path}:1:10: version: ")
    assert "is not a version this apr-qa reads" in result.stderr


@pytest.mark.parametrize("version", ['"1.0"', "1", "1.0", '"1.x"', '"1.0.0"', '"1.1.0"', '"2.0.0"'])
def test_this_format_and_the_original_revisions_are_accepted(tmp_path: Path, version: str) -> None:
    path = playbook(tmp_path, f"version: {version}\n" + MODEL)
    assert_clean(invoke("validate", str(path)), 0)


def test_convert_a_checkpoint_with_a_deeply_nested_config_is_a_usage_error(tmp_path: Path) -> None:
    # Found by the fuzzing suite: json.loads raised RecursionError through `apr-qa convert`.
    src = tmp_path / "ckpt"
    src.mkdir()
    (src / "config.json").write_text("[" * 100_000, encoding="utf-8")
    result = invoke("convert", str(src), str(tmp_path / "out.gguf"))
    assert_clean(result, 2)
    assert f"{src / 'config.json'}: not valid JSON (JSON nested 100000 levels deep" in result.stderr


@pytest.mark.parametrize(
    "config",
    [
        '{"architectures": -1}',
        '{"architectures": ["LlamaForCausalLM"], "num_attention_heads": 4, "hidden_size": 8, "rope_scaling": 5}',
    ],
)
def test_convert_a_config_with_values_of_the_wrong_type_is_a_usage_error(
    tmp_path: Path, config: str
) -> None:
    # Found by the fuzzing suite: `for arch in -1` raised TypeError through `apr-qa convert`.
    src = tmp_path / "ckpt"
    src.mkdir()
    (src / "config.json").write_text(config, encoding="utf-8")
    result = invoke("convert", str(src), str(tmp_path / "out.gguf"))
    assert_clean(result, 2)
    # one line naming the file: the value it cannot use, or the architecture it cannot read
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"apr-qa: error: {src / 'config.json'}: ")
    assert "unusable value:" in line or "unsupported architecture" in line
