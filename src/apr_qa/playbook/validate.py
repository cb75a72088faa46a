"""Check a playbook's plain data against the shipped JSON Schema.

Three passes, each reporting ``file:line:col: message`` problems:
1. coercion of the original dialect's quoted scalars (``"true"``, ``"1e-5"``)
   where the schema asks for a boolean or a number;
2. unknown keys, with a did-you-mean, and keys that are accepted but not
   supported (one warning each);
3. JSON Schema (draft 2020-12) for types, enums and ranges.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from apr_qa.errors import Problem
from apr_qa.playbook.source import Path_, Source

__all__ = ["Checked", "check", "playbook_schema"]

_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off"}
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
UNSUPPORTED = "x-apr-qa"


@cache
def playbook_schema() -> dict[str, Any]:
    """The playbook JSON Schema shipped in the package."""
    text = resources.files("apr_qa.schemas").joinpath("playbook.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(playbook_schema())


@dataclass
class Checked:
    """The outcome of checking one playbook's data."""

    data: Any
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unsupported: list[Path_] = field(default_factory=list)


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        resolved: dict[str, Any] = playbook_schema()["$defs"][ref.rsplit("/", 1)[1]]
        return resolved
    return node


def _branches(node: dict[str, Any], value: Any) -> Iterator[dict[str, Any]]:
    """The schema branches that could describe ``value`` (by JSON type)."""
    node = _resolve(node)
    options = node.get("oneOf") or node.get("anyOf")
    if not options:
        yield node
        return
    for option in options:
        option = _resolve(option)
        kind = option.get("type")
        if (
            (isinstance(value, dict) and kind == "object")
            or (isinstance(value, list) and kind == "array")
            or (not isinstance(value, dict | list) and kind not in ("object", "array"))
        ):
            yield option


def _types(node: dict[str, Any]) -> set[str]:
    kind = node.get("type")
    if isinstance(kind, list):
        return set(kind)
    return {kind} if isinstance(kind, str) else set()


def _coerce_scalar(node: dict[str, Any], value: Any) -> Any:
    if not isinstance(value, str):
        return value
    kinds = _types(node)
    text = value.strip()
    if "boolean" in kinds and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    if kinds & {"number", "integer"} and "string" not in kinds and _NUMBER.match(text):
        number = float(text)
        if "integer" in kinds and number.is_integer() and "number" not in kinds:
            return int(number)
        return number
    return value


class _Walker:
    def __init__(self, source: Source, checked: Checked) -> None:
        self.source = source
        self.checked = checked

    def walk(self, node: dict[str, Any], value: Any, at: Path_) -> Any:
        branches = list(_branches(node, value))
        if not branches:
            return value
        node = branches[0]
        if node.get(UNSUPPORTED) == "unsupported":
            self.checked.unsupported.append(at)
        if isinstance(value, dict) and node.get("type") == "object":
            return self._mapping(node, value, at)
        if isinstance(value, list) and isinstance(node.get("items"), dict):
            return [self.walk(node["items"], item, (*at, i)) for i, item in enumerate(value)]
        value = _coerce_scalar(node, value)
        if isinstance(value, float) and math.isnan(value) and _types(node) & {"number", "integer"}:
            # NaN compares false with every bound, so the schema's ranges would let it through.
            self.checked.problems.append(
                self.source.problem(at, f"{_dotted(at)}: NaN is not a number this field accepts")
            )
        return value

    def _mapping(self, node: dict[str, Any], value: dict[str, Any], at: Path_) -> dict[str, Any]:
        props: dict[str, Any] = node.get("properties", {})
        closed = node.get("additionalProperties") is False
        extra = node.get("additionalProperties")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in props:
                out[key] = self.walk(props[key], item, (*at, key))
            elif closed:
                self.checked.problems.append(
                    self.source.problem((*at, key), _unknown_key(key, props, at), key=True)
                )
            elif isinstance(extra, dict):
                out[key] = self.walk(extra, item, (*at, key))
            else:
                out[key] = item
        return out


def _dotted(at: Path_) -> str:
    text = ""
    for part in at:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "playbook"


def _unknown_key(key: str, props: dict[str, Any], at: Path_) -> str:
    where = f" in {_dotted(at)}" if at else ""
    message = f"unknown key '{key}'{where}"
    close = difflib.get_close_matches(key, list(props), n=1, cutoff=0.6)
    if close:
        return f"{message} (did you mean '{close[0]}'?)"
    return f"{message}; known keys: {', '.join(sorted(props))}"


def _specific(error: ValidationError) -> ValidationError:
    """For a oneOf/anyOf failure, the error of the branch that fits the value's shape."""
    while error.validator in ("oneOf", "anyOf") and error.context:
        shaped = [
            e
            for e in error.context
            if e.validator != "type" and len(e.absolute_path) >= len(error.absolute_path)
        ]
        if not shaped:
            break
        error = max(shaped, key=lambda e: len(e.absolute_path))
    return error


def _describe(error: ValidationError) -> str:
    error = _specific(error)
    at = _dotted(tuple(error.absolute_path))
    if error.validator == "required":
        missing = error.message.replace(" is a required property", "")
        if missing == "'model'":
            return "missing 'model': name the model to qualify (or pass --model-path)"
        return f"{at}: {missing} is required"
    if error.validator in ("oneOf", "anyOf"):
        return f"{at}: {_short(error.instance)} is not a valid value here"
    if error.validator == "enum":
        allowed: Any = error.validator_value
        options = ", ".join(str(o) for o in allowed)
        return f"{at}: {_short(error.instance)} is not one of: {options}"
    if error.validator in ("maximum", "minimum"):
        side = (
            "greater than the maximum" if error.validator == "maximum" else "less than the minimum"
        )
        return f"{at}: {_number(error.instance)} is {side} of {error.validator_value}"
    if error.validator == "pattern" and at.endswith(("quantizations", "]")):
        return f"{at}: {_short(error.instance)} is not a known quantization"
    return f"{at}: {error.message}"


def _number(value: Any) -> str:
    """A number as the author would recognise it: 1e23 read back is not 99999999999999991611392."""
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) >= 1e15:
        return f"{float(value):.6g}"
    return str(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check(source: Source) -> Checked:
    """Coerce, look for unknown keys, and validate one playbook's data."""
    checked = Checked(data=None)
    checked.data = _Walker(source, checked).walk(playbook_schema(), source.data, ())
    for error in sorted(
        _validator().iter_errors(checked.data), key=lambda e: list(e.absolute_path).__repr__()
    ):
        if error.validator == "additionalProperties":
            continue  # reported with a did-you-mean by the walker
        at = tuple(_specific(error).absolute_path)
        checked.problems.append(source.problem(at, _describe(error)))
    for at in checked.unsupported:
        checked.warnings.append(f"accepted, not supported: {_dotted(at)}")
    return checked
