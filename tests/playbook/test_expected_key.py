"""A scenario's ``expected:`` is the generic answer key of the oracles that take an answer.

Each case goes through the product's own path: the playbook is loaded, the
scenario instantiated, its oracle built from the loaded spec and called as the
engine calls it; the engine case runs a fake model that answers right and one
that answers wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apr_qa.errors import PlaybookError, UsageError
from apr_qa.evidence import Outcome, read_evidence
from apr_qa.execute import RunOptions, execute
from apr_qa.oracles import create, register, with_expected
from apr_qa.plan import build_plan
from apr_qa.playbook import load_playbook
from apr_qa.scenarios import Instance, instantiate


def _book(tmp_path: Path, scenario: str) -> Path:
    path = tmp_path / "book.yaml"
    path.write_text(
        "model: {id: org/m}\n"
        "test_matrix: {modalities: [run], formats: [gguf], quantizations: [q8_0]}\n"
        f"scenarios:\n{scenario}",
        encoding="utf-8",
    )
    return path


def _instance(path: Path) -> Instance:
    playbook = load_playbook(path)
    (cell,) = build_plan([playbook]).cells
    (planned,) = cell.scenarios()
    return instantiate(planned, playbook, "run")


def _judge(instance: Instance, output: str) -> bool:
    oracle = create(instance.oracle.name, dict(instance.oracle.options))
    verdict = oracle(output, prompt=instance.text, expected=instance.expected)
    assert not verdict.skipped, verdict.reason
    return verdict.passed


@pytest.mark.parametrize(
    ("oracle", "expected", "right", "wrong"),
    [
        ("contains", "Tokyo", "The largest city is Tokyo.", "It is Osaka."),
        ("exact", "Tokyo", "  Tokyo\n", "Tokyo."),
        ("starts_with", "Tokyo", "Tokyo, by far.", "I think Tokyo."),
        ("regex", "'\\bTok(yo|io)\\b'", "Tokio or Tokyo", "Kyoto"),
    ],
)
def test_expected_is_the_answer_key_of_each_answer_oracle(
    tmp_path: Path, oracle: str, expected: str, right: str, wrong: str
) -> None:
    path = _book(
        tmp_path,
        f"  - name: city\n    prompt: Name the largest city in Japan.\n"
        f"    oracle: {oracle}\n    expected: {expected}\n",
    )
    instance = _instance(path)
    assert _judge(instance, right)
    assert not _judge(instance, wrong)


def test_a_list_expected_gives_several_values_and_a_number_its_text(tmp_path: Path) -> None:
    listed = _instance(
        _book(
            tmp_path,
            "  - name: answer\n    prompt: Is water wet?\n"
            "    oracle: {name: starts_with, case_sensitive: false}\n    expected: ['yes', 'no']\n",
        )
    )
    assert _judge(listed, "No, not itself.") and _judge(listed, "YES.")
    assert not _judge(listed, "Maybe.")
    number = _instance(
        _book(
            tmp_path,
            "  - {name: legs, prompt: How many legs has a spider?, oracle: exact, expected: 8}\n",
        )
    )
    assert dict(number.oracle.options) == {"value": "8"}
    assert _judge(number, "8") and not _judge(number, "80")


def test_arithmetic_keeps_expected_as_its_number(tmp_path: Path) -> None:
    instance = _instance(
        _book(tmp_path, "  - {name: s, prompt: 'Add 2 and 2.', oracle: arithmetic, expected: 4}\n")
    )
    assert dict(instance.oracle.options) == {} and instance.expected == 4
    assert _judge(instance, "4") and not _judge(instance, "5")


def _problems(path: Path) -> list[str]:
    with pytest.raises(PlaybookError) as info:
        load_playbook(path)
    return info.value.lines()


def _line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ("oracle: contains\n    value: Tokyo\n", "'value'"),
        ("oracle: {name: exact, values: [Tokyo]}\n", "'values'"),
        ("oracle: {type: regex, config: {pattern: Tok}}\n", "'pattern'"),
    ],
)
def test_expected_with_the_oracles_own_answer_is_a_located_error_naming_both(
    tmp_path: Path, options: str, named: str
) -> None:
    path = _book(
        tmp_path, f"  - name: city\n    prompt: Name it.\n    {options}    expected: Tokyo\n"
    )
    (problem,) = _problems(path)
    assert problem.startswith(f"{path}:{_line_of(path, 'expected:')}:"), problem
    assert "'expected'" in problem and named in problem and "not both" in problem


@pytest.mark.parametrize("oracle", ["contains", "exact", "starts_with", "regex"])
def test_an_answer_oracle_with_neither_is_a_located_error(tmp_path: Path, oracle: str) -> None:
    path = _book(tmp_path, f"  - name: city\n    prompt: Name it.\n    oracle: {oracle}\n")
    (problem,) = _problems(path)
    assert problem.startswith(f"{path}:{_line_of(path, 'oracle:')}:"), problem
    assert f"oracle '{oracle}': needs" in problem and "'expected'" in problem


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("oracle: not_contains\n    expected: Tokyo\n", "a scenario's 'expected' is not"),
        ("oracle: regex\n    expected: [a, b]\n", "'expected' must be one string"),
        ("oracle: contains\n    expected: {city: Tokyo}\n", "must be a string, a number"),
        ("oracle: contains\n    expected: [Tokyo, 1.5, {a: 1}]\n", "must be a string, a number"),
        ("oracle: exact\n    expected: yes\n", "got True (YAML reads a bare yes"),
    ],
)
def test_an_expected_the_oracle_cannot_take_is_a_located_error(
    tmp_path: Path, scenario: str, message: str
) -> None:
    path = _book(tmp_path, f"  - name: city\n    prompt: Name it.\n    {scenario}")
    (problem,) = _problems(path)
    assert message in problem, problem
    assert problem.startswith(f"{path}:"), problem


def test_with_expected_leaves_other_oracles_and_absent_expected_alone() -> None:
    assert with_expected("garbage", {"min_tokens": 3}, "x") == {"min_tokens": 3}
    assert with_expected("contains", {"mode": "any"}, None) == {"mode": "any"}
    assert with_expected("contains", {"mode": "any"}, ["a", 2]) == {
        "mode": "any",
        "values": ["a", "2"],
    }
    with pytest.raises(UsageError, match="'expected' or the option 'value', not both"):
        with_expected("contains", {"value": "a"}, "a")


def test_answer_options_must_be_options_of_the_factory() -> None:
    with pytest.raises(ValueError, match=r"answer options \['answer'\] are not options"):

        @register("test-expected-bad-answer", answer=("answer",))
        def bad(*, value: object = None) -> object:  # pragma: no cover - never registered
            raise AssertionError


def test_the_engine_judges_by_expected_falsifying_a_wrong_model(tmp_path: Path) -> None:
    scenarios = (
        "  - {name: city, prompt: 'Name the largest city in Japan.', oracle: contains,"
        " expected: Tokyo}\n"
    )
    outcomes = {}
    for label, answer in (("right", "Tokyo, I think."), ("wrong", "Osaka, I think.")):
        model = tmp_path / f"{label}.json"
        model.write_text(json.dumps({"answers": {"Name the largest city in Japan.": answer}}))
        book = tmp_path / f"{label}.yaml"
        book.write_text(
            f"model: {{id: org/fake, path: {model}}}\n"
            "test_matrix: {modalities: [run], backends: [cpu], formats: [gguf],"
            " quantizations: [q8_0], max_tokens: 16}\nfailure_policy: collect-all\n"
            f"scenarios:\n{scenarios}"
        )
        out = tmp_path / label
        execute([load_playbook(book)], RunOptions(output_dir=out, backend_override="fake"))
        (record,) = [
            r
            for r in read_evidence([out / "evidence.jsonl"]).records
            if r.scenario is not None and r.scenario.name == "city" and r.gate == "F-A1-001"
        ]
        assert record.expected == "Tokyo"
        outcomes[label] = record.outcome
    assert outcomes == {"right": Outcome.CORROBORATED, "wrong": Outcome.FALSIFIED}
