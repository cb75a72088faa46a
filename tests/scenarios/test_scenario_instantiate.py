"""instantiate: explicit scenarios keep what the playbook wrote; generated ones come from the seed."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apr_qa.errors import UsageError
from apr_qa.gates import lookup
from apr_qa.plan import GENERATED_FAMILIES, PlannedScenario, build_plan
from apr_qa.playbook import OracleSpec, load_playbook
from apr_qa.scenarios import MODALITIES, Instance, instantiate

PLAYBOOK = """\
model: {id: m}
test_matrix: {modalities: [run, chat], formats: [gguf], quantizations: [q8_0], scenario_count: 12}
scenarios:
  - name: sum
    prompt: "What is 2 + 2?"
    oracle: arithmetic
    expected: 4
    max_tokens: 7
  - name: greeting
    prompt: "Say hello."
    system: "You are terse."
  - name: talk
    messages:
      - {role: user, content: "Hi"}
      - {role: assistant, content: "Hello."}
      - {role: user, content: "Name a fruit."}
    oracle: {name: contains, value: apple}
"""


def _explicit(write, modality: str) -> dict[str, Instance]:  # type: ignore[no-untyped-def]
    playbook = load_playbook(write(PLAYBOOK))
    plan = build_plan([playbook])
    cell = next(c for c in plan.cells if c.modality == modality)
    return {
        p.name: instantiate(p, playbook, modality) for p in cell.scenarios() if p.kind == "explicit"
    }


def _generated(family: str, seed: int, modality: str = "run") -> Instance:
    planned = PlannedScenario(f"cell#{family}-0001", f"{family}-0001", "generated", family, seed)
    return instantiate(planned, None, modality)  # type: ignore[arg-type]


def test_explicit_run_keeps_prompt_oracle_expected_and_max_tokens(write) -> None:  # type: ignore[no-untyped-def]
    got = _explicit(write, "run")
    assert set(got) == {"sum", "greeting"}  # a conversation does not run as a raw completion
    total = got["sum"]
    assert total.prompt == "What is 2 + 2?"
    assert total.messages is None
    assert total.oracle == OracleSpec("arithmetic")
    assert total.expected == 4
    assert total.max_tokens == 7
    assert (total.family, total.category, total.gate, total.repeat) == ("explicit", "QUAL", None, 1)
    assert dict(total.params) == {}


def test_explicit_run_prefixes_system_text_and_defaults_to_garbage(write) -> None:  # type: ignore[no-untyped-def]
    greeting = _explicit(write, "run")["greeting"]
    assert greeting.prompt == "You are terse.\n\nSay hello."
    assert greeting.oracle == OracleSpec("garbage")
    assert greeting.expected is None
    assert greeting.max_tokens is None


def test_explicit_chat_makes_messages_with_a_leading_system_message(write) -> None:  # type: ignore[no-untyped-def]
    got = _explicit(write, "chat")
    assert got["sum"].prompt is None
    assert [dict(m) for m in got["sum"].messages or ()] == [
        {"role": "user", "content": "What is 2 + 2?"}
    ]
    assert [dict(m) for m in got["greeting"].messages or ()] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello."},
    ]
    talk = got["talk"]
    assert [m["content"] for m in talk.messages or ()] == ["Hi", "Hello.", "Name a fruit."]
    assert talk.oracle.name == "contains"
    assert dict(talk.oracle.options) == {"value": "apple"}
    assert talk.text == "Name a fruit."
    assert talk.describe() == "'Name a fruit.'"


def test_a_conversation_in_run_and_a_doubled_system_message_are_usage_errors(write) -> None:  # type: ignore[no-untyped-def]
    playbook = load_playbook(
        write(
            "model: {id: m}\ntest_matrix: {modalities: [chat]}\nscenarios:\n"
            "  - name: twice\n    system: A\n"
            "    messages: [{role: system, content: B}, {role: user, content: hi}]\n"
        )
    )
    planned = next(next(iter(build_plan([playbook]).cells)).scenarios())
    with pytest.raises(UsageError, match=r"playbook\.yaml:\d+.*'system' or a leading system"):
        instantiate(planned, playbook, "chat")
    with pytest.raises(UsageError, match="runs in chat or serve, not run"):
        instantiate(planned, playbook, "run")


def test_unknown_family_or_modality_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown scenario family 'poetry'"):
        _generated("poetry", 1)
    with pytest.raises(UsageError, match="unknown modality 'telepathy'"):
        _generated("arithmetic", 1, "telepathy")


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    family=st.sampled_from(GENERATED_FAMILIES),
    modality=st.sampled_from(MODALITIES),
    noise=st.integers(),
)
def test_same_seed_gives_the_same_instance(
    seed: int, family: str, modality: str, noise: int
) -> None:
    first = _generated(family, seed, modality)
    random.seed(noise)  # the global generator must play no part
    random.random()
    assert _generated(family, seed, modality) == first


@pytest.mark.parametrize("family", GENERATED_FAMILIES)
def test_different_seeds_give_variety(family: str) -> None:
    prompts = Counter(_generated(family, seed).prompt for seed in range(300))
    # determinism has 6 fixed prompts; every other family has far more than 10
    assert len(prompts) >= (6 if family == "determinism" else 10)
    assert prompts.most_common(1)[0][1] < 300 * 0.5


def test_generated_modality_shapes_the_prompt_not_the_question() -> None:
    for family in GENERATED_FAMILIES:
        run = _generated(family, 99, "run")
        for modality in ("chat", "serve"):
            chat = _generated(family, 99, modality)
            assert chat.prompt is None
            assert [dict(m) for m in chat.messages or ()] == [
                {"role": "user", "content": run.prompt}
            ]
            assert (chat.oracle, chat.expected, chat.params) == (
                run.oracle,
                run.expected,
                run.params,
            )


@pytest.mark.parametrize(
    ("family", "category", "gate", "repeat"),
    [
        ("arithmetic", "QUAL", None, 1),
        ("unicode", "EDGE", "F-EDGE-001", 1),
        ("whitespace", "EDGE", "F-EDGE-001", 1),
        ("injection", "EDGE", "F-EDGE-001", 1),
        ("determinism", "STAB", "F-STAB-DET-001", 2),
    ],
)
def test_families_score_in_their_category_and_gate(
    family: str, category: str, gate: str | None, repeat: int
) -> None:
    for seed in range(20):
        instance = _generated(family, seed)
        assert (instance.category, instance.gate, instance.repeat) == (category, gate, repeat)
        if gate is not None:
            known = lookup(gate)
            assert known is not None and known.category.value == category
    if family == "determinism":
        assert _generated(family, 1).temperature == 0.0


def test_instances_are_the_same_in_another_process_with_another_hash_seed() -> None:
    code = (
        "import json\n"
        "from apr_qa.plan import GENERATED_FAMILIES, PlannedScenario\n"
        "from apr_qa.scenarios import instantiate\n"
        "print(json.dumps([instantiate(PlannedScenario('i', 'n', 'generated', f, s), None, 'run')"
        ".prompt for f in GENERATED_FAMILIES for s in range(40)]))\n"
    )
    prompts = []
    for hash_seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            timeout=60,
        )
        prompts.append(json.loads(done.stdout))
    here = [_generated(f, s).prompt for f in GENERATED_FAMILIES for s in range(40)]
    assert prompts[0] == prompts[1] == here


def test_instance_needs_exactly_one_of_prompt_and_messages() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Instance("x", "explicit", None, None, OracleSpec("garbage"), None, None, "QUAL", None)
    with pytest.raises(ValueError, match="exactly one"):
        Instance(
            "x",
            "explicit",
            "hi",
            ({"role": "user", "content": "hi"},),
            OracleSpec("garbage"),
            None,
            None,
            "QUAL",
            None,
        )
