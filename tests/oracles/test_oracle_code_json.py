"""code_syntax and json_schema: parse, never run; find the code or JSON in prose."""

from __future__ import annotations

import sys

import pytest

from apr_qa.errors import UsageError
from apr_qa.oracles import create
from apr_qa.oracles.code_syntax import code_blocks
from apr_qa.oracles.json_schema import JsonSchema, find_json

PYTHON = create("code_syntax", {})


def test_model_output_is_never_executed(tmp_path: object) -> None:
    marker = "import sys; sys.modules['__main__'].OWNED = True\nraise SystemExit(3)\n"
    assert PYTHON(marker).passed
    assert not hasattr(sys.modules["__main__"], "OWNED")


def test_python_details_carry_the_error_line() -> None:
    verdict = PYTHON("x = 1\ny = (\n")
    assert not verdict.passed and verdict.details["language"] == "python"
    assert "does not parse" in verdict.reason


@pytest.mark.parametrize(
    ("code", "parses"),
    [("(" * 500 + ")" * 500, False), ("x = 1\0", False), ("s = '\\d'\n", True)],
)
def test_hostile_python_is_judged_without_raising(code: str, parses: bool) -> None:
    verdict = PYTHON(code)
    assert verdict.passed is parses and not verdict.skipped, verdict.reason
    if not parses:
        assert "does not parse" in verdict.reason


def test_invalid_escape_warnings_are_not_syntax_errors() -> None:
    assert PYTHON("s = '\\d'\n").passed


def test_deep_json_fails_cleanly() -> None:
    oracle = create("code_syntax", {"language": "json"})
    assert not oracle("[" * 100_000 + "]" * 100_000).passed


def test_toml_is_parsed() -> None:
    oracle = create("code_syntax", {"language": "toml"})
    assert oracle('name = "apr"\n[tool]\nx = 1\n').passed
    assert not oracle("name = \n").passed


def test_every_block_must_parse_and_unchecked_ones_are_named() -> None:
    both = "```python\nx = 1\n```\nand\n```rust\nfn main() {}\n```\n"
    verdict = PYTHON(both)
    assert verdict.passed and "not checked: rust" in verdict.reason
    broken = "```python\nx = 1\n```\n```python\ndef (\n```\n"
    assert not PYTHON(broken).passed


@pytest.mark.parametrize(
    ("code", "language"),
    [
        ("fn main() { let mut x = 1; }", "rust"),
        ("const x = () => 1;", "javascript"),
        ("def f():\n    return 1", "python"),
        ('{"a": 1}', "json"),
        ("SELECT 1", "python"),  # no telltale: the first configured language
    ],
)
def test_untagged_code_is_told_apart_by_telltales(code: str, language: str) -> None:
    oracle = create("code_syntax", {"languages": ["python", "rust", "javascript", "json"]})
    details = oracle(code).details
    seen = details["language"] if "language" in details else details["languages"]
    assert seen in (language, [language])


def test_unknown_fence_tags_fall_back_to_the_configured_language() -> None:
    assert code_blocks("```pseudo\nx\n```") == [(None, "x\n")]
    assert PYTHON("```pseudo\nx = 1\n```").passed


def test_aliases_name_the_same_language() -> None:
    assert create("code_syntax", {"language": "py3"}).languages == ("python",)  # type: ignore[attr-defined]


SCHEMA = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}


def test_invalid_schema_is_a_usage_error_at_create_time() -> None:
    with pytest.raises(UsageError, match="invalid schema"):
        create("json_schema", {"schema": {"type": "objekt"}})
    with pytest.raises(UsageError, match="must be a mapping"):
        create("json_schema", {"schema": "object"})
    with pytest.raises(UsageError, match="must be a mapping"):
        create("json_schema", {})


def test_json_is_found_in_prose_and_the_error_path_is_reported() -> None:
    oracle = create("json_schema", {"schema": SCHEMA})
    verdict = oracle('Result: {"n": "x"} done')
    assert not verdict.passed and verdict.details["path"] == "n"
    assert oracle('noise { not json } then [1] and {"n": 2}').passed is False  # [1] comes first
    assert oracle('noise { not json } then {"n": 2}').passed


def test_a_bracket_flood_is_bounded() -> None:
    with pytest.raises(LookupError):
        find_json("{" * 10_000)


def test_deep_json_against_a_schema_fails_cleanly() -> None:
    oracle = create("json_schema", {"schema": {"type": "array", "items": {"$ref": "#"}}})
    deep = "[" * 5000 + "]" * 5000
    verdict = oracle(deep)
    assert not verdict.passed and not verdict.skipped, verdict.reason
    assert verdict.reason.startswith("json_schema: ")


def test_parser_crashes_become_failures_not_tracebacks(monkeypatch: pytest.MonkeyPatch) -> None:
    import ast
    import tomllib

    def deep(*_: object, **__: object) -> object:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(ast, "parse", deep)
    monkeypatch.setattr(tomllib, "loads", deep)
    assert "RecursionError" in PYTHON("x = 1").reason
    assert "nested too deeply" in create("code_syntax", {"language": "toml"})("a = 1").reason

    class DeepValidator:
        iter_errors = staticmethod(deep)

    assert "nested too deeply" in JsonSchema(DeepValidator())('{"n": 1}').reason
