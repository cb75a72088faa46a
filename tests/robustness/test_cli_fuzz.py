"""Fuzzing the command line: hostile arguments and playbook values, never a traceback.

Each test draws inputs from hostile strategies (huge and negative numbers, NaN
strings, special files, deep nesting, odd encodings, catastrophic regexes) and
runs a command in-process with click's CliRunner. The invariant is the CLI's
contract: the exit code is one of 0 ok, 1 falsified, 2 usage, 3 environment,
and no Python exception reaches the user. A watchdog alarm turns a hang (a FIFO
opened, a regex without a bound) into a failure instead of a stuck suite.

Budget: 150 examples per test keep the file well under two minutes on two shared
cores; ``derandomize`` makes CI runs repeatable (the same examples each run), and
``APR_QA_FUZZ_EXAMPLES`` sets a longer hunt.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apr_qa.cli import cli
from apr_qa.evidence import Outcome, Record, now_utc

ALLOWED = {0, 1, 2, 3}
# Examples per test; raise it for a longer local hunt (APR_QA_FUZZ_EXAMPLES=2000).
EXAMPLES = int(os.environ.get("APR_QA_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WATCHDOG_S = 60


class Hang(Exception):
    """A command ran past the watchdog."""


@contextmanager
def watchdog(seconds: int = WATCHDOG_S) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise Hang(f"command ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def invoke(*args: str) -> Result:
    with watchdog():
        return CliRunner().invoke(cli, list(args))


def assert_contract(result: Result) -> None:
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), (
        f"{type(exc).__name__}: {exc}\n{result.output[-2000:]}"
    )
    assert result.exit_code in ALLOWED, (result.exit_code, result.output[-2000:])
    assert "Traceback" not in result.output


# --- hostile values ------------------------------------------------------------------------

huge_ints = (
    st.sampled_from(
        [0, -1, 1, 2**31, 2**32, 2**63, 2**64 + 1, 10**20, -(10**30), 10**300, 100_000, 100_001]
    )
    | st.integers()
)
odd_floats = (
    st.sampled_from(
        [
            float("nan"),
            float("inf"),
            float("-inf"),
            1e23,
            -0.0,
            1e-320,
            5e-324,
            1.7976931348623157e308,
        ]
    )
    | st.floats()
)
number_strings = st.sampled_from(
    [
        "NaN",
        "nan",
        "inf",
        "-inf",
        "1e23",
        "1e400",
        "-1",
        "0x10",
        "1_000",
        "١٢",
        "",
        " ",
        "1e-5",
        "true",
    ]
)
odd_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30
) | st.sampled_from(["\x00", "\ufeff", "\u202e", "a\u0000b", "\r\n", "${HOME}", "../../etc/passwd"])
scalars = huge_ints | odd_floats | number_strings | odd_text | st.booleans() | st.none()
# Values a field could hold: without them almost every example stops at the schema.
plausible = st.one_of(
    st.integers(0, 200_000),
    st.floats(0, 2),
    st.sampled_from(["1.0", "1.0.0", "2.0.0", "q4_0", "gguf", "collect-all", "run", "4", "four"]),
    st.lists(
        st.sampled_from(["q4_0", "f16", "run", "chat", "What is 2+2?"]), min_size=1, max_size=3
    ),
)


@st.composite
def nested(draw: st.DrawFn) -> Any:
    """A list or mapping nested 1 to 3000 levels, or a wide shallow one."""
    depth = draw(st.sampled_from([1, 10, 63, 64, 65, 200, 1000, 3000]))
    leaf = draw(scalars)
    value: Any = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


atoms = st.sampled_from(["a", ".", r"\w", r"\d", "[a-c]", "[^x]", r"\s", "z", "(?:a|a)", ""])


@st.composite
def regexes(draw: st.DrawFn) -> str:
    """Patterns built from overlapping pieces under repetition, the backtracking recipe;
    plus a few that do not compile."""
    if draw(st.booleans()):
        return draw(
            st.sampled_from(["(", "[", "a{2,1}", "(?P<x", "\\", "*a", "(.|.|.)*z", "(a+)+$"])
        )
    pieces = draw(st.lists(atoms, min_size=1, max_size=4))
    body = "|".join(pieces) if draw(st.booleans()) else "".join(pieces)
    repeat = draw(st.sampled_from(["*", "+", "?", "{0,50}", "{2,}", ""]))
    tail = draw(st.sampled_from(["", "z", "$", "z$", "!"]))
    return f"({body}){repeat}{tail}"


# Where a hostile value goes in an otherwise valid playbook.
FIELDS = [
    ("version",),
    ("name",),
    ("failure_policy",),
    ("model", "path"),
    ("model", "trust_remote_code"),
    ("model", "expected_hidden_dim"),
    ("test_matrix", "scenario_count"),
    ("test_matrix", "seed"),
    ("test_matrix", "timeout_ms"),
    ("test_matrix", "max_tokens"),
    ("test_matrix", "temperature"),
    ("test_matrix", "quantizations"),
    ("test_matrix", "prompts"),
    ("gates", "g2_basic_inference"),
    ("gates", "g4_max_garbage_rate"),
    ("scenarios", 0, "max_tokens"),
    ("scenarios", 0, "timeout_ms"),
    ("scenarios", 0, "expected"),
    ("scenarios", 0, "prompt"),
    ("scenarios", 0, "oracle"),
    ("scenarios", 1, "pattern"),
    ("scenarios", 1, "max_chars"),
    ("metadata",),
]


def base_playbook() -> dict[str, Any]:
    return {
        "version": "1.0",
        "model": {"id": "org/fuzz"},
        "test_matrix": {"formats": ["gguf"], "scenario_count": 2},
        "gates": {"g0_integrity": True},
        "scenarios": [
            {"name": "sum", "prompt": "What is 2+2?", "oracle": "arithmetic", "expected": 4},
            {"name": "re", "prompt": "Say hi", "oracle": "regex", "pattern": "hi"},
        ],
    }


def place(doc: dict[str, Any], where: tuple[str | int, ...], value: Any) -> None:
    node: Any = doc
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value


@st.composite
def encodings(draw: st.DrawFn) -> tuple[str, str]:
    return draw(
        st.sampled_from(
            [("utf-8", "")] * 5 + [("utf-16", ""), ("utf-8", "\ufeff"), ("latin-1", "")]
        )
    )


@st.composite
def playbook_bytes(draw: st.DrawFn) -> bytes:
    doc = base_playbook()
    for _ in range(draw(st.integers(0, 3))):  # 0: the valid playbook reaches plan
        field = draw(st.sampled_from(FIELDS))
        value = draw(regexes()) if field[-1] == "pattern" else draw(plausible | scalars | nested())
        place(doc, field, value)
    try:
        text = yaml.safe_dump(doc, allow_unicode=True, width=10**9)
    except (RecursionError, yaml.YAMLError):
        text = "model: {id: m}\nmetadata: " + "[" * 5000 + "]" * 5000 + "\n"
    codec, prefix = draw(encodings())
    raw = (prefix + text).encode(codec, errors="replace")
    if draw(st.integers(0, 9)) == 0:
        raw = raw.replace(b"fuzz", b"fu\x00zz")  # a stray NUL
    return raw


SPECIAL = ["/dev/zero", "/dev/null", "/dev/full", "/proc/self/mem", "/proc/self/maps", "/", "."]


@pytest.fixture
def fifo(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("fifo") / "pipe"
    os.mkfifo(path)
    return str(path)


# --- the fuzz tests ------------------------------------------------------------------------


@FUZZ
@given(raw=playbook_bytes(), command=st.sampled_from(["validate", "plan"]))
def test_validate_and_plan_survive_hostile_playbooks(
    tmp_path: Path, raw: bytes, command: str
) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(raw)
    assert_contract(invoke(command, str(path)))


@FUZZ
@given(
    shard=st.one_of(
        st.tuples(huge_ints, huge_ints).map(lambda kn: f"{kn[0]}/{kn[1]}"),
        number_strings,
        odd_text,
        st.just("1/" + "9" * 5000),
    ),
    special=st.sampled_from([*SPECIAL, "FIFO", None]),
)
def test_plan_survives_hostile_shards_and_model_paths(
    tmp_path: Path, fifo: str, shard: str, special: str | None
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(base_playbook()), encoding="utf-8")
    args = ["plan", str(path), "--shard", shard]
    if special is not None:
        args += ["--model-path", fifo if special == "FIFO" else special]
    assert_contract(invoke(*args))


@FUZZ
@given(target=st.sampled_from([*SPECIAL, "FIFO", "missing", "subdir/missing/x.yaml"]))
def test_validate_and_lock_survive_special_files(tmp_path: Path, fifo: str, target: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(base_playbook()), encoding="utf-8")
    hostile = (
        fifo
        if target == "FIFO"
        else target
        if target.startswith(("/", "."))
        else str(tmp_path / target)
    )
    assert_contract(invoke("validate", hostile))
    assert_contract(invoke("validate", str(path), "--locked", hostile))
    assert_contract(invoke("lock", str(path), "-o", hostile))


def _record(**changes: Any) -> dict[str, Any]:
    record = Record(
        run_id="r",
        record_id="r-1",
        gate="F-A1-001",
        category="QUAL",
        severity="P1",
        outcome=Outcome.CORROBORATED,
        reason="ok",
        model="org/m",
        timestamp=now_utc(),
    ).to_json()
    record.update(changes)
    return record


record_fields = st.sampled_from(
    ["reason", "model", "output", "expected", "metrics", "scenario", "shard", "outcome", "gate",
     "schema_version", "category", "host", "format", "counterexample"]
)  # fmt: skip


@st.composite
def evidence_lines(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 4))
    if kind == 0:  # a valid record with one hostile field
        field = draw(record_fields)
        value = draw(scalars | nested() | st.dictionaries(odd_text, odd_floats, max_size=3))
        try:
            return json.dumps(_record(**{field: value}), allow_nan=True).encode() + b"\n"
        except RecursionError:  # deeper than json.dumps goes: the reader sees deep text instead
            return b'{"reason": ' + b"[" * 5000 + b"]" * 5000 + b"}\n"
    if kind == 1:  # deep JSON
        depth = draw(st.sampled_from([63, 65, 1000, 100_000]))
        return b"[" * depth + b"]" * depth + b"\n"
    if kind == 2:  # bytes that are not UTF-8, NULs, a truncated line
        return draw(st.binary(max_size=200))
    if kind == 3:  # a lone surrogate as an escape, a huge number
        return b'{"a": "\\ud800", "b": 1' + b"0" * 5000 + b"}\n"
    return json.dumps(_record()).encode() + b"\n"


@FUZZ
@given(lines=st.lists(evidence_lines(), min_size=1, max_size=5), utf16=st.booleans())
def test_report_survives_hostile_evidence(tmp_path: Path, lines: list[bytes], utf16: bool) -> None:
    evidence = tmp_path / "e.jsonl"
    raw = b"".join(lines)
    evidence.write_bytes(raw.decode("utf-8", "replace").encode("utf-16") if utf16 else raw)
    assert_contract(invoke("report", str(evidence), "-o", str(tmp_path / "out")))


@FUZZ
@given(
    config=st.one_of(
        scalars,
        nested(),
        st.dictionaries(
            st.sampled_from(
                ["architectures", "vocab_size", "hidden_size", "num_hidden_layers", "model_type"]
            ),
            scalars | nested(),
            max_size=5,
        ),
    ),
    quant=st.sampled_from(["f16", "f32", "q8_0", "q4_k_m", "Q8_0"] * 3 + ["", "f16\x00", "q99"])
    | odd_text,
    dst=st.sampled_from(["dir", "file", "/dev/null", "/dev/full", "FIFO", "missing/x.gguf"]),
)
def test_convert_survives_hostile_checkpoints_and_destinations(
    tmp_path: Path, fifo: str, config: Any, quant: str, dst: str
) -> None:
    src = tmp_path / "ckpt"
    src.mkdir(exist_ok=True)
    try:
        text = json.dumps(config, allow_nan=True)
    except RecursionError:
        text = "[" * 100_000
    (src / "config.json").write_text(text, encoding="utf-8")
    (src / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    target = {"dir": str(tmp_path), "file": str(tmp_path / "out.gguf"), "FIFO": fifo}.get(
        dst, dst if dst.startswith("/") else str(tmp_path / dst)
    )
    assert_contract(invoke("convert", str(src), target, "--quant", quant))


@FUZZ
@given(src=st.sampled_from([*SPECIAL, "FIFO", "missing"]))
def test_convert_survives_special_sources(tmp_path: Path, fifo: str, src: str) -> None:
    source = fifo if src == "FIFO" else src if src.startswith(("/", ".")) else str(tmp_path / src)
    assert_contract(invoke("convert", source, str(tmp_path / "x.gguf")))


# --- a few real processes: what reaches stderr -------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "/dev/zero"],
        ["plan", "/dev/null", "--shard", "1/" + "9" * 20],
        ["convert", "/proc/self/mem", "/dev/full"],
        ["report", "/dev/zero", "-o", "/dev/null"],
    ],
)
def test_no_traceback_reaches_stderr_of_a_real_process(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "apr_qa.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in ALLOWED, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.strip(), "an error says something"


def test_the_watchdog_can_fire() -> None:
    # The guard against hangs must itself be able to fail a test.
    with pytest.raises(Hang), watchdog(1):
        signal.pause()


def test_the_contract_check_can_fail() -> None:
    @cli.command("boom-for-fuzz-test", hidden=True)
    def boom() -> None:
        raise RecursionError("maximum recursion depth exceeded")

    try:
        result = invoke("boom-for-fuzz-test")
    finally:
        cli.commands.pop("boom-for-fuzz-test")
    with pytest.raises(AssertionError, match="RecursionError"):
        assert_contract(result)
