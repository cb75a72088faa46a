"""Scenarios: planned scenarios become concrete prompts with the oracle that judges them.

:func:`instantiate` turns a :class:`~apr_qa.plan.PlannedScenario` into an
:class:`Instance`: an explicit scenario keeps its prompt or messages, oracle and
expected value; a generated one is built from its seed alone
(``random.Random(seed)``), so every cell and every run asks the same thing.
:func:`shrink` searches, with hypothesis, for the simplest failing variant of a
falsified generated instance. Families, their oracles and the modality rules
are written out in docs/scenarios.md.

Modalities: in ``run`` a prompt is sent as is, and an explicit scenario's
``system`` text is prefixed to it, followed by a blank line (raw completion has
no roles); in ``chat`` and ``serve`` a prompt becomes one user message, and
``system`` becomes a leading system message.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from apr_qa.errors import UsageError
from apr_qa.gates import Category
from apr_qa.plan import GENERATED_FAMILIES, PlannedScenario
from apr_qa.playbook.model import OracleSpec, Playbook, Scenario, frozen_map
from apr_qa.scenarios import arithmetic, determinism, injection, unicode, whitespace
from apr_qa.scenarios.family import Draft, Family, Params, shorten

__all__ = [
    "DEFAULT_ORACLE",
    "FAMILIES",
    "MODALITIES",
    "Instance",
    "instantiate",
    "shrink",
    "vary",
]

DEFAULT_ORACLE = OracleSpec("garbage")
"""What judges an explicit scenario that names no oracle."""

MODALITIES: tuple[str, ...] = ("run", "chat", "serve")

FAMILIES: Mapping[str, Family] = MappingProxyType(
    {
        f.name: f
        for f in (
            arithmetic.FAMILY,
            unicode.FAMILY,
            whitespace.FAMILY,
            injection.FAMILY,
            determinism.FAMILY,
        )
    }
)
if tuple(FAMILIES) != GENERATED_FAMILIES:  # pragma: no cover - a plan/scenarios mismatch
    raise ImportError(f"scenario families {tuple(FAMILIES)} differ from the plan's")

_EMPTY: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True)
class Instance:
    """One concrete scenario: what to send, how many times, and what judges the output.

    Exactly one of ``prompt`` (run modality) and ``messages`` (chat, serve) is set.
    ``max_tokens``, ``temperature`` and ``timeout_ms`` are None when the
    playbook's ``test_matrix`` values apply. ``gate`` is None when the cell's
    scenario gate (F-A1..A6) applies. With ``repeat`` 2 the engine generates
    twice at temperature 0 and gives the second output to the oracle as
    ``expected``. ``params`` are the generator's parameters (empty for explicit
    scenarios).
    """

    name: str
    family: str
    prompt: str | None
    messages: tuple[Mapping[str, str], ...] | None
    oracle: OracleSpec
    expected: object | None
    max_tokens: int | None
    category: str
    gate: str | None
    repeat: int = 1
    params: Mapping[str, object] = field(default_factory=lambda: _EMPTY)
    temperature: float | None = None
    timeout_ms: int | None = None

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError(f"scenario {self.name!r}: set exactly one of prompt and messages")

    @property
    def text(self) -> str:
        """The prompt, or the last user message: what an oracle reads as ``prompt``."""
        if self.prompt is not None:
            return self.prompt
        users = [m["content"] for m in self.messages or () if m.get("role") == "user"]
        return users[-1] if users else ""

    def describe(self) -> str:
        """Human text of what was asked: ``17 + 9`` for arithmetic, else the prompt shortened."""
        family = FAMILIES.get(self.family)
        if family is not None and self.params:
            return family.describe(self.params)
        return shorten(self.text)


def _message(role: str, content: str) -> Mapping[str, str]:
    return frozen_map({"role": role, "content": content})


def _check_modality(modality: str) -> None:
    if modality not in MODALITIES:
        raise UsageError(f"unknown modality {modality!r}; known: {', '.join(MODALITIES)}")


def _explicit(scenario: Scenario, name: str, modality: str) -> Instance:
    where = f"{scenario.source}: scenario {scenario.name!r}"
    prompt: str | None = None
    messages: tuple[Mapping[str, str], ...] | None = None
    if modality == "run":
        if scenario.prompt is None:
            raise UsageError(f"{where} is a conversation; it runs in chat or serve, not run")
        prompt = f"{scenario.system}\n\n{scenario.prompt}" if scenario.system else scenario.prompt
    else:
        if scenario.messages is not None:
            messages = tuple(scenario.messages)
        elif scenario.prompt is not None:
            messages = (_message("user", scenario.prompt),)
        else:
            raise UsageError(f"{where} has neither a prompt nor messages")
        if scenario.system is not None:
            if messages and messages[0].get("role") == "system":
                raise UsageError(f"{where}: give 'system' or a leading system message, not both")
            messages = (_message("system", scenario.system), *messages)
    return Instance(
        name=name,
        family="explicit",
        prompt=prompt,
        messages=messages,
        oracle=scenario.oracle or DEFAULT_ORACLE,
        expected=scenario.expected,
        max_tokens=scenario.max_tokens,
        category=Category.QUAL.value,
        gate=None,
        temperature=scenario.temperature,
        timeout_ms=scenario.timeout_ms,
    )


def _generated(family: Family, name: str, params: Params, as_messages: bool) -> Instance:
    draft: Draft = family.build(params)
    return Instance(
        name=name,
        family=family.name,
        prompt=None if as_messages else draft.prompt,
        messages=(_message("user", draft.prompt),) if as_messages else None,
        oracle=draft.oracle,
        expected=draft.expected,
        max_tokens=None,
        category=family.category,
        gate=family.gate,
        repeat=family.repeat,
        params=MappingProxyType(dict(params)),
        temperature=family.temperature,
    )


def _family(name: str) -> Family:
    family = FAMILIES.get(name)
    if family is None:
        raise UsageError(f"unknown scenario family {name!r}; known: {', '.join(FAMILIES)}")
    return family


def instantiate(planned: PlannedScenario, playbook: Playbook, modality: str) -> Instance:
    """The concrete scenario for one planned scenario in one modality.

    ``playbook`` is accepted so that instances can depend on it; today nothing
    does: playbook defaults are left as None for the engine to apply, and a
    generated instance depends on ``planned.seed`` and the modality only.
    """
    _check_modality(modality)
    if planned.kind == "explicit":
        if planned.scenario is None:
            raise UsageError(f"planned scenario {planned.id!r} is explicit but has no scenario")
        return _explicit(planned.scenario, planned.name, modality)
    family = _family(planned.family)
    params = family.sample(random.Random(planned.seed))
    return _generated(family, planned.name, params, as_messages=modality != "run")


def vary(instance: Instance, params: Params) -> Instance:
    """``instance`` rebuilt from other parameters of its family, in the same modality shape."""
    return _generated(
        _family(instance.family), instance.name, params, as_messages=instance.messages is not None
    )


# shrink needs Instance and vary defined above.
from apr_qa.scenarios.shrink import shrink  # noqa: E402
