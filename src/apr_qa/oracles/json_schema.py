"""The json_schema oracle: does the output's JSON validate against a schema?

The JSON is the whole stripped output if it parses; else the first fenced block
that parses; else the first object or array that decodes from a ``{`` or ``[``
in the text. The schema (JSON Schema Draft 2020-12) is checked when the oracle
is created, so a bad schema is a playbook error, not a failed model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apr_qa.errors import UsageError
from apr_qa.oracles import Verdict, register
from apr_qa.oracles.code_syntax import code_blocks

__all__ = ["JsonSchema", "find_json", "json_schema"]

# Each '{' or '[' is a decode attempt; bound them so a bracket flood stays cheap.
_MAX_ATTEMPTS = 200
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
    """Validates the output's JSON against a checked schema."""

    validator: Any

    def __call__(
        self, output: str, *, prompt: str | None = None, expected: object | None = None
    ) -> Verdict:
        """Pass when a JSON value is found and it validates."""
        try:
            value = find_json(output)
        except LookupError:
            return Verdict.fail("json_schema: no JSON value in the output", rule="json_schema")
        try:
            error = next(iter(self.validator.iter_errors(value)), None)
        except RecursionError:
            return Verdict.fail("json_schema: JSON nested too deeply", rule="json_schema")
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
    return JsonSchema(jsonschema.Draft202012Validator(schema))
