"""The explicit scenarios ``apr-qa init`` writes, in the form the model is asked in.

A model with a chat template is asked in conversations (its template frames
them); a base model, which has none, is asked to *continue* text, so its
prompts are completion prompts ("12 + 7 =", "The capital of Japan is"). A code
model gets code prompts besides. These are general-knowledge prompts any
competent model answers; they are not, and must never become, the prompt forms
the bundled fixture models were trained on: a playbook written for a model
must not pass because it recites the model's own training data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Prompt", "PromptForm", "prompts_for", "scenario_yaml"]

PromptForm = Literal["chat", "completion"]
"""``chat`` (conversations through the chat template) or ``completion`` (raw text)."""


@dataclass(frozen=True)
class Prompt:
    """One explicit scenario before it is written out as playbook YAML."""

    name: str
    text: str
    oracle: str
    options: Mapping[str, Any]
    system: str | None = None
    code: bool = False


_CHAT: tuple[Prompt, ...] = (
    Prompt(
        "sum_small", "Add 12 and 7. Reply with the number only.", "arithmetic", {"expected": 19}
    ),
    Prompt("product", "Multiply 6 by 8.", "arithmetic", {"expected": 48}),
    Prompt("capital", "Name the capital city of Australia.", "contains", {"value": "Canberra"}),
    Prompt(
        "system_one_word",
        "Which planet is known as the Red Planet?",
        "contains",
        {"value": "Mars"},
        system="Answer in one word.",
    ),
)
_CHAT_CODE: tuple[Prompt, ...] = (
    Prompt(
        "python_is_even",
        "Write a Python function is_even(n) that returns True when n is even.",
        "code_syntax",
        {"language": "python"},
        code=True,
    ),
    Prompt(
        "python_reverse_words",
        "Write a Python function that reverses the order of the words in a sentence.",
        "code_syntax",
        {"language": "python"},
        code=True,
    ),
    Prompt(
        "json_object",
        'Reply with only a JSON object with the keys "name" and "age" for Ada, aged 36.',
        "code_syntax",
        {"language": "json"},
        code=True,
    ),
)
_COMPLETION: tuple[Prompt, ...] = (
    Prompt("sum_small", "12 + 7 =", "arithmetic", {"expected": 19}),
    Prompt("capital", "The capital city of Australia is", "contains", {"value": "Canberra"}),
    Prompt("weekdays", "Monday, Tuesday, Wednesday,", "contains", {"value": "Thursday"}),
)
_COMPLETION_CODE: tuple[Prompt, ...] = (
    Prompt(
        "python_square",
        "# A Python function that returns the square of x\n",
        "code_syntax",
        {"language": "python"},
        code=True,
    ),
)


def prompts_for(form: PromptForm, *, code: bool) -> tuple[Prompt, ...]:
    """The explicit scenarios of one prompt form; a code model gets code prompts first.

    A code model's code prompts come first so that G2 (which probes the first
    explicit scenarios) asks it what it was made for.
    """
    if form == "chat":
        return (*_CHAT_CODE, *_CHAT) if code else (*_CHAT, _CHAT_CODE[0])
    return (*_COMPLETION_CODE, *_COMPLETION) if code else _COMPLETION


def scenario_yaml(prompt: Prompt, form: PromptForm, *, system_role: bool = True) -> dict[str, Any]:
    """One scenario as a playbook mapping, restricted to the modalities of its form.

    A chat template that refuses a system message (Gemma's) gets the instruction
    at the head of the user's turn instead, as such models are asked.
    """
    item: dict[str, Any] = {"name": f"{form}_{prompt.name}"}
    if form == "chat":
        text = prompt.text
        messages = []
        if prompt.system and system_role:
            messages.append({"role": "system", "content": prompt.system})
        elif prompt.system:
            text = f"{prompt.system} {text}"
        item["messages"] = [*messages, {"role": "user", "content": text}]
    else:
        item["prompt"] = prompt.text
        item["modalities"] = ["run"]
    item["oracle"] = prompt.oracle
    item.update(prompt.options)
    return item
