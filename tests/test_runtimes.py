"""The ``runtimes`` section's pieces: answers taken out of stdout, argument lists
filled in without a shell, the ``apr`` artifact found, templates checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from apr_qa.playbook.model import ModelSpec
from apr_qa.runtimes import (
    RuntimeSpec,
    apr_artifact,
    extract,
    render,
    runtime_problems,
    runtime_skip,
)

CLI = ("apr", "run", "{model}")


def test_json_output_is_followed_down_its_path() -> None:
    spec = RuntimeSpec("apr", CLI, json_path="choices.0.text")
    assert extract(spec, '{"choices": [{"text": "4"}, {"text": "5"}]}') == "4"
    with pytest.raises(ValueError, match=re.escape("no 'choices.0.text' (stopped at '0')")):
        extract(spec, '{"choices": []}')
    with pytest.raises(ValueError, match="not JSON"):
        extract(spec, "ANSWER: 4")
    with pytest.raises(ValueError, match="is not a string"):
        extract(spec, '{"choices": [{"text": 4}]}')


def test_a_regex_takes_its_answer_group_else_its_first_else_the_match() -> None:
    log = "loading...\nANSWER: 4\nRESULT 5\n"
    assert extract(RuntimeSpec("apr", CLI, regex="x=(1)|ANSWER: (?P<answer>.*)"), log) == "4"
    assert extract(RuntimeSpec("apr", CLI, regex=r"^RESULT (\d)$"), log) == "5"
    assert extract(RuntimeSpec("apr", CLI, regex=r"\d"), log) == "4"
    assert extract(RuntimeSpec("apr", CLI), "  4\n") == "  4"  # all of stdout, less its newline


def test_arguments_are_filled_in_one_by_one_never_split() -> None:
    argv = render(
        ("apr", "run", "{model}", "-n{max_tokens}"), {"model": "a b; rm -rf x", "max_tokens": "8"}
    )
    assert argv == ["apr", "run", "a b; rm -rf x", "-n8"]


def test_templates_name_only_known_placeholders() -> None:
    raw = {
        "apr": {
            "command": ["apr", "{model}", "{messages_file}", "{{literal}}"],
            "chat_command": ["apr", "{messages_file}", "{prompt_file}"],
        }
    }
    problems = list(runtime_problems(raw))
    # {messages_file} belongs to chat_command only; a doubled brace is text.
    assert [at for at, _ in problems] == [("apr", "command", 2)]


def test_a_runtime_skips_chat_cells_without_a_chat_command_and_absent_programs() -> None:
    assert runtime_skip(None, "apr", "run") is not None
    here = RuntimeSpec("apr", ("sh", "{model}"))
    assert runtime_skip(here, "apr", "run") is None
    assert "no chat_command" in (runtime_skip(here, "apr", "chat") or "")
    gone = RuntimeSpec("apr", ("/nonexistent/apr", "{model}"))
    assert "does not exist" in (runtime_skip(gone, "apr", "run") or "")


def test_the_apr_artifact_is_the_path_the_named_file_or_the_only_one(tmp_path: Path) -> None:
    (tmp_path / "a.apr").write_bytes(b"x")
    assert apr_artifact(ModelSpec("m", path=tmp_path)) == tmp_path / "a.apr"
    assert apr_artifact(ModelSpec("m", path=tmp_path / "a.apr")) == tmp_path / "a.apr"
    named = ModelSpec("m", path=tmp_path, files={"apr": "b.apr"})
    assert apr_artifact(named) == tmp_path / "b.apr"
    (tmp_path / "c.apr").write_bytes(b"x")
    assert apr_artifact(ModelSpec("m", path=tmp_path)) is None  # two: which one is ambiguous
    assert apr_artifact(ModelSpec("m", hf_repo="org/m")) is None


@pytest.mark.parametrize("doc", ["README.md", "docs/runtimes.md"])
def test_the_documented_example_is_a_valid_playbook_section(tmp_path: Path, doc: str) -> None:
    from apr_qa.playbook import load_playbook
    from apr_qa.runtimes import runtime_specs

    text = (Path(__file__).parents[1] / doc).read_text("utf-8")
    block = re.search(r"```yaml\n(runtimes:\n.*?)```", text, re.DOTALL)
    assert block is not None, f"{doc} shows no runtimes: example"
    book = tmp_path / "book.yaml"
    book.write_text(f"model: {{id: org/m, path: {tmp_path}}}\n{block[1]}")
    spec = runtime_specs(load_playbook(book).sections)["apr"]
    assert spec.command[:3] == ("apr", "run", "{model}") and spec.regex and spec.chat_command
    assert extract(spec, "loading\nANSWER: 4\n") == "4"
