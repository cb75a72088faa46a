"""The json_schema oracle: does the output's JSON validate against a schema?

The JSON is the whole stripped output if it parses; else the first fenced block
that parses; else the first object or array that decodes from a ``{`` or ``[``
in the text. The schema (JSON Schema Draft 2020-12) is checked when the oracle
is created, so a bad schema is a playbook error, not a failed model; so is a
``pattern`` in it that backtracks catastrophically on a short adversarial input.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from apr_qa.errors import UsageError
from apr_qa.oracles import Verdict, register
from apr_qa.oracles._regex import (
    Pattern,
    RegexTimeout,
    catastrophic_input,
    compile_pattern,
    regex_error,
    search,
)
from apr_qa.oracles.code_syntax import code_blocks

__all__ = ["MAX_JSON_CHARS", "JsonSchema", "find_json", "json_schema"]

# Each '{' or '[' is a decode attempt; bound them so a bracket flood stays cheap.
_MAX_ATTEMPTS = 200
# Each attempt may scan the rest of the output: bound the output too (attempts x length).
MAX_JSON_CHARS = 100_000
_NOT_FOUND = object()


def _loads(text: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_FOUND


def find_json(output: str) -> object:
    """The first JSON value found in ``output`` (see module doc), or raise LookupError."""
    whole = _loads(output.strip())
    if whole is not _NOT_FOUND:
        return whole
    for _, code in code_blocks(output):
        value = _loads(code)
        if value is not _NOT_FOUND:
            return value
    decoder = json.JSONDecoder()
    attempts = 0
    for index, char in enumerate(output):
        if char not in "{[":
            continue
        attempts += 1
        if attempts > _MAX_ATTEMPTS:
            break
        try:
            return decoder.raw_decode(output, index)[0]
        except (ValueError, RecursionError):
            continue
    raise LookupError("no JSON value in the output")


@dataclass(frozen=True)
class JsonSchema:
    """Validates the output's JSON against a checked schema.

    Bounded: an output over ``max_chars`` is not searched for JSON (skipped, with
    the reason), and the schema's ``pattern`` and ``patternProperties`` run on the
    ``regex`` package under a timeout (past it, the verdict is ``timed_out``).
    """

    validator: Any
    max_chars: int = MAX_JSON_CHARS

    def __call__(
        self, output: str, *, prompt: str | None = None, expected: object | None = None
    ) -> Verdict:
        """Pass when a JSON value is found and it validates."""
        if len(output) > self.max_chars:
            return Verdict.skip(
                f"json_schema: output of {len(output)} chars is over the {self.max_chars} "
                "this oracle reads; not judged",
                rule="json_schema",
            )
        try:
            value = find_json(output)
        except LookupError:
            return Verdict.fail("json_schema: no JSON value in the output", rule="json_schema")
        try:
            error = next(iter(self.validator.iter_errors(value)), None)
        except RecursionError:
            return Verdict.fail("json_schema: JSON nested too deeply", rule="json_schema")
        except RegexTimeout as exc:
            return Verdict.timeout(f"json_schema: {exc}", rule="json_schema")
        if error is None:
            return Verdict.ok("json_schema: output JSON validates", rule="json_schema")
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return Verdict.fail(
            f"json_schema: at {where}: {error.message[:200]}",
            rule="json_schema",
            path=where,
        )


@register("json_schema")
def json_schema(*, schema: object = None) -> JsonSchema:
    """The json_schema oracle; ``schema`` is an inline JSON Schema (Draft 2020-12)."""
    if not isinstance(schema, Mapping | bool):
        raise UsageError(f"oracle 'json_schema': option 'schema' must be a mapping, got {schema!r}")
    # Imported here: jsonschema costs ~50 ms, and most runs never build this oracle.
    import jsonschema  # type: ignore[import-untyped, unused-ignore]

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise UsageError(f"oracle 'json_schema': invalid schema: {exc.message}") from None
    except RecursionError:
        raise UsageError("oracle 'json_schema': schema nested too deeply") from None
    for source in _schema_patterns(schema):
        try:
            stalled = catastrophic_input(_compiled(source))
        except regex_error as exc:
            raise UsageError(
                f"oracle 'json_schema': pattern {source!r} does not compile: {exc}"
            ) from None
        if stalled is not None:
            raise UsageError(
                f"oracle 'json_schema': pattern {source!r} shows catastrophic backtracking: "
                f"searching {stalled!r} did not finish; rewrite it"
            )
    return JsonSchema(_bounded_validator()(schema))


def _schema_patterns(schema: object) -> list[str]:
    """Every regex a schema holds: ``pattern`` values and ``patternProperties`` keys."""
    found: list[str] = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            if isinstance(node.get("pattern"), str):
                found.append(node["pattern"])
            if isinstance(node.get("patternProperties"), Mapping):
                found.extend(str(k) for k in node["patternProperties"])
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return found


@lru_cache(maxsize=256)
def _compiled(source: str) -> Pattern:
    return compile_pattern(source)


def _pattern(validator: Any, pattern: str, instance: object, schema: object) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if isinstance(instance, str) and search(_compiled(pattern), instance) is None:
        yield ValidationError(f"{instance[:80]!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: object, schema: object
) -> Iterator[Any]:
    if not isinstance(instance, Mapping):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if search(_compiled(pattern), key) is not None:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


@cache
def _bounded_validator() -> Any:
    """Draft 2020-12 whose pattern keywords use time-bounded ``regex`` searches, not ``re``."""
    import jsonschema

    return jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator,
        {"pattern": _pattern, "patternProperties": _pattern_properties},
    )
