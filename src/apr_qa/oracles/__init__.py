"""Oracles judge one generated output: one Protocol, one registry, small factories.

An oracle is a callable ``oracle(output, *, prompt=None, expected=None) -> Verdict``.
Built-in families live in one module each and register their factories on import
of this package; a user extends the set with :func:`register`. A playbook names an
oracle and its options; :func:`validate_spec` checks that pair before any model
runs, and :func:`create` builds the oracle (raising :class:`UsageError`).
A scenario's ``expected`` is its generic answer key: :func:`with_expected` gives
it to an oracle that takes its answer as an option (``contains``' ``value``).

A verdict that compared nothing is ``skipped`` with a reason, never ``passed``;
a judgment that ran past its time bound is ``timed_out``, never ``passed``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from apr_qa.errors import UsageError
from apr_qa.evidence import Outcome, decide

__all__ = [
    "Oracle",
    "OracleFactory",
    "Verdict",
    "create",
    "names",
    "parse_spec",
    "register",
    "validate_spec",
    "with_expected",
]


@dataclass(frozen=True)
class Verdict:
    """What an oracle decided about one output.

    ``reason`` is one human line saying what was checked and what was seen;
    ``details`` holds JSON-safe facts (the rule that fired, the values compared).
    ``skipped`` means there was nothing to compare; a skipped verdict is never passed.
    ``timed_out`` means the judgment ran past its time bound (a regex that
    backtracks for ever); it decided nothing, is never passed, and is recorded
    as the ``timeout`` outcome.
    """

    passed: bool
    reason: str
    details: Mapping[str, object] = field(default_factory=dict)
    skipped: bool = False
    timed_out: bool = False

    def __post_init__(self) -> None:
        if self.skipped and self.passed:
            raise ValueError("a skipped verdict cannot be passed")
        if self.timed_out and (self.passed or self.skipped):
            raise ValueError("a timed-out verdict is neither passed nor skipped")

    @property
    def outcome(self) -> Outcome:
        """The evidence outcome (:func:`apr_qa.evidence.decide`, the one rule)."""
        return decide(None if self.skipped else self.passed, timed_out=self.timed_out)

    @classmethod
    def ok(cls, reason: str, **details: object) -> Verdict:
        """A corroborating verdict."""
        return cls(True, reason, details)

    @classmethod
    def fail(cls, reason: str, **details: object) -> Verdict:
        """A falsifying verdict."""
        return cls(False, reason, details)

    @classmethod
    def skip(cls, reason: str, **details: object) -> Verdict:
        """Nothing could be compared; says why."""
        return cls(False, reason, details, skipped=True)

    @classmethod
    def timeout(cls, reason: str, **details: object) -> Verdict:
        """The judgment ran past its time bound; says which bound and on what."""
        return cls(False, reason, details, timed_out=True)


class Oracle(Protocol):
    """Judges one output, optionally against its prompt and an expected value."""

    def __call__(
        self, output: str, *, prompt: str | None = None, expected: object | None = None
    ) -> Verdict:
        """Return the verdict on ``output``."""
        ...


OracleFactory = Callable[..., Oracle]
"""Builds an oracle from keyword options; raises UsageError for invalid ones."""

_F = TypeVar("_F", bound=OracleFactory)
_REGISTRY: dict[str, OracleFactory] = {}
_ANSWERS: dict[str, tuple[str, ...]] = {}


def register(name: str, *, answer: tuple[str, ...] = ()) -> Callable[[_F], _F]:
    """Register an oracle factory under ``name`` (a decorator).

    The factory takes its options as keyword-only arguments; unknown option names
    are rejected by :func:`create` from the signature, so factories only check values.
    ``answer`` names the options that hold the oracle's answer key, the one a
    scenario's ``expected`` fills first (``("value", "values")``); see
    :func:`with_expected`.
    """

    def decorate(factory: _F) -> _F:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"oracle {name!r} is already registered")
        accepted = _option_names(factory)
        unknown = [a for a in answer if accepted is not None and a not in accepted]
        if unknown:
            raise ValueError(f"oracle {name!r}: answer options {unknown} are not options")
        _REGISTRY[name] = factory
        _ANSWERS[name] = answer
        return factory

    return decorate


def names() -> list[str]:
    """Every registered oracle name, sorted."""
    return sorted(_REGISTRY)


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _factory(name: str) -> OracleFactory:
    if not isinstance(name, str) or name not in _REGISTRY:
        hint = _did_you_mean(name, names()) if isinstance(name, str) else ""
        raise UsageError(f"unknown oracle {name!r}{hint}; known: {', '.join(names())}")
    return _REGISTRY[name]


def _option_names(factory: OracleFactory) -> list[str] | None:
    """Accepted option names, or None when the factory takes ``**options``."""
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def create(name: str, options: Mapping[str, object] | None = None) -> Oracle:
    """Build the oracle ``name`` with ``options``.

    Raises UsageError for an unknown name (with a did-you-mean), an unknown
    option, or an invalid option value.
    """
    factory = _factory(name)
    opts = dict(options or {})
    accepted = _option_names(factory)
    if accepted is not None:
        for key in opts:
            if key not in accepted:
                hint = _did_you_mean(str(key), accepted)
                known = ", ".join(accepted) or "none"
                raise UsageError(f"oracle {name!r}: unknown option {key!r}{hint}; options: {known}")
    return factory(**opts)


def with_expected(
    name: str, options: Mapping[str, object] | None, expected: object
) -> dict[str, object]:
    """``options`` with a scenario's ``expected`` as the oracle's answer key.

    For an oracle registered with ``answer`` options (``contains``, ``exact``,
    ``starts_with``: ``value``/``values``; ``regex``: ``pattern``), ``expected``
    fills the first of them, and a list fills ``values``; a number is read as its
    text (``expected: 42`` means ``"42"``). Other oracles, and ``expected`` None,
    leave ``options`` as they are: ``arithmetic`` reads ``expected`` when it judges.
    Raises UsageError when ``options`` already hold an answer (both given), or
    when ``expected`` is not text.
    """
    opts = dict(options or {})
    keys = _ANSWERS.get(name, ()) if isinstance(name, str) else ()
    if expected is None or not keys:
        return opts
    given = [k for k in keys if opts.get(k) is not None]
    if given:
        raise UsageError(
            f"oracle {name!r}: give the scenario's 'expected' or the option {given[0]!r}, not both"
        )
    if isinstance(expected, list | tuple):
        if "values" not in keys:
            raise UsageError(f"oracle {name!r}: 'expected' must be one string, got {expected!r}")
        opts["values"] = [_answer_text(name, item) for item in expected]
    else:
        opts[keys[0]] = _answer_text(name, expected)
    return opts


def _answer_text(name: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise UsageError(
            f"oracle {name!r}: 'expected' must be text, got {value!r} "
            "(YAML reads a bare yes, no, true or false as a boolean: quote it)"
        )
    if isinstance(value, int | float):
        return str(value)
    raise UsageError(
        f"oracle {name!r}: 'expected' must be a string, a number or a list of them, got {value!r}"
    )


def validate_spec(
    name: str, options: Mapping[str, object] | None = None, *, expected: object = None
) -> list[str]:
    """The problems with oracle ``name`` and ``options``; empty when it would build.

    With ``expected`` (a scenario's expected value), an oracle that reads it and
    has a ``check_expected(expected) -> str | None`` method also says whether it
    can use that value, so a scenario it would skip at run time is refused now.
    """
    try:
        oracle = create(name, options)
    except UsageError as exc:
        return [str(exc)]
    check = getattr(oracle, "check_expected", None)
    problem = check(expected) if expected is not None and check is not None else None
    return [problem] if isinstance(problem, str) else []


def parse_spec(spec: object) -> tuple[str, dict[str, object]]:
    """Split a playbook oracle entry into ``(name, options)``.

    Accepts ``{"name": "contains", "value": "x"}``, the upstream dialect's
    ``{"type": "garbage", "config": {...}}``, and a bare name string.
    """
    if isinstance(spec, str):
        return spec, {}
    if not isinstance(spec, Mapping):
        raise UsageError(f"an oracle spec must be a name or a mapping, got {spec!r}")
    rest = {str(k): v for k, v in spec.items()}
    if ("name" in rest) == ("type" in rest):
        raise UsageError(f"an oracle spec needs exactly one of 'name' or 'type': {spec!r}")
    name = rest.pop("name", None) or rest.pop("type", None)
    if not isinstance(name, str):
        raise UsageError(f"an oracle name must be a string, got {name!r}")
    config = rest.pop("config", None)
    if config is not None:
        if not isinstance(config, Mapping):
            raise UsageError(f"oracle {name!r}: 'config' must be a mapping, got {config!r}")
        for key, value in config.items():
            if str(key) in rest:
                raise UsageError(f"oracle {name!r}: option {key!r} given twice")
            rest[str(key)] = value
    return name, rest


# Built-ins register themselves on import; the import order is the listing order.
from apr_qa.oracles import (  # noqa: E402, F401
    arithmetic,
    code_syntax,
    combinators,
    garbage,
    json_schema,
    response,
    text,
)
