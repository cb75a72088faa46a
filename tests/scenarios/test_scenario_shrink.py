"""shrink: the simplest failing variant within a budget of model calls, against fake models."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from apr_qa.oracles import validate_spec
from apr_qa.plan import PlannedScenario
from apr_qa.playbook import OracleSpec
from apr_qa.scenarios import FAMILIES, Instance, instantiate, shrink, vary
from apr_qa.scenarios.arithmetic import OPERATORS
from apr_qa.scenarios.injection import FRAGMENTS
from apr_qa.scenarios.unicode import SPECIMENS


def _start(family: str, params: dict[str, object], modality: str = "run") -> Instance:
    planned = PlannedScenario("cell#x", "x", "generated", family, 1)
    return vary(instantiate(planned, None, modality), params)  # type: ignore[arg-type]


class Fake:
    """A fake model check that records every instance it is asked about."""

    def __init__(self, rule: Callable[[Instance], bool]) -> None:
        self.rule = rule
        self.asked: list[Instance] = []

    def __call__(self, instance: Instance) -> bool:
        self.asked.append(instance)
        return self.rule(instance)


def _sum_at_least_ten(instance: Instance) -> bool:
    a, b = instance.params["a"], instance.params["b"]
    assert isinstance(a, int) and isinstance(b, int)
    return a + b >= 10


def test_arithmetic_shrinks_to_the_simplest_failing_sum() -> None:
    start = _start("arithmetic", {"a": 17, "b": 9, "op": "+", "phrasing": 0})
    fake = Fake(_sum_at_least_ten)
    found = shrink(start, fake, budget=25)
    assert found is not None
    # The strategy's order: operator, phrasing, a, b, each between 0 and the original.
    box = itertools.product(range(1), range(1), range(18), range(10))
    simplest = min((op, ph, a, b) for op, ph, a, b in box if a + b >= 10)
    assert simplest == (0, 0, 1, 9)
    assert (found.params["a"], found.params["b"]) == (1, 9)
    assert found.describe() == "1 + 9"
    assert found.prompt == "1 + 9 ="
    assert found.expected == 10
    assert len(fake.asked) <= 25


def test_arithmetic_shrinks_operator_and_phrasing_too() -> None:
    start = _start("arithmetic", {"a": 57, "b": 89, "op": "*", "phrasing": 7}, "chat")
    fake = Fake(_sum_at_least_ten)
    found = shrink(start, fake, budget=25)
    assert found is not None and len(fake.asked) <= 25
    rank = FAMILIES["arithmetic"].rank
    assert rank(found.params) < rank(start.params)
    assert _sum_at_least_ten(found)
    # still a chat instance, with the expected value of the new question
    assert found.prompt is None and found.messages is not None
    a, b, op = found.params["a"], found.params["b"], found.params["op"]
    assert isinstance(a, int) and isinstance(b, int)
    assert found.expected == {"+": a + b, "-": a - b, "*": a * b}[str(op)]
    assert op in OPERATORS


@pytest.mark.parametrize("budget", [1, 2, 3, 7, 12])
def test_the_budget_caps_the_calls(budget: int) -> None:
    start = _start("arithmetic", {"a": 93, "b": 78, "op": "*", "phrasing": 3})
    fake = Fake(lambda i: i.params["a"] == 93)  # fails rarely: the search runs to the budget
    shrink(start, fake, budget=budget)
    assert 1 <= len(fake.asked) <= budget


def test_never_failing_model_gives_none_within_the_budget() -> None:
    start = _start("arithmetic", {"a": 40, "b": 2, "op": "-", "phrasing": 2})
    fake = Fake(lambda _: False)
    assert shrink(start, fake, budget=25) is None
    assert 1 <= len(fake.asked) <= 25


def test_the_falsified_instance_itself_is_not_asked_again_nor_returned() -> None:
    start = _start("arithmetic", {"a": 3, "b": 4, "op": "+", "phrasing": 0})
    fake = Fake(lambda i: i.params == start.params)
    assert shrink(start, fake, budget=25) is None
    assert all(dict(i.params) != dict(start.params) for i in fake.asked)


def test_nothing_to_shrink_for_explicit_and_determinism() -> None:
    fake = Fake(lambda _: True)
    explicit = Instance(
        "x", "explicit", "What is 1 + 1?", None, OracleSpec("arithmetic"), 2, None, "QUAL", None
    )
    assert shrink(explicit, fake) is None
    assert shrink(_start("determinism", {"prompt": 3}), fake) is None
    assert (
        shrink(_start("arithmetic", {"a": 9, "b": 9, "op": "+", "phrasing": 0}), fake, budget=0)
        is None
    )
    assert fake.asked == []


def test_unicode_shrinks_to_the_one_specimen_that_breaks_the_model() -> None:
    zero_width = next(i for i, (label, _) in enumerate(SPECIMENS) if label.startswith("zero-width"))
    start = _start("unicode", {"carrier": 3, "specimens": (0, 4, zero_width)})
    fake = Fake(lambda i: "\u200b" in (i.prompt or ""))
    found = shrink(start, fake, budget=25)
    assert found is not None and len(fake.asked) <= 25
    assert dict(found.params) == {"carrier": 0, "specimens": (zero_width,)}
    assert "zero-width" in found.describe()


def test_injection_shrinks_to_the_fragment_that_leaks() -> None:
    llama3 = next(i for i, (label, *_) in enumerate(FRAGMENTS) if label == "Llama-3 header")
    start = _start("injection", {"question": 2, "fragments": (0, 1, llama3)})
    fake = Fake(lambda i: "<|eot_id|>" in (i.prompt or ""))
    found = shrink(start, fake, budget=25)
    assert found is not None and len(fake.asked) <= 25
    assert dict(found.params) == {"question": 0, "fragments": (llama3,)}
    assert validate_spec(found.oracle.name, found.oracle.options) == []


def test_whitespace_shrinks_to_the_shortest_failing_run() -> None:
    start = _start("whitespace", {"kind": 4, "length": 1900})
    fake = Fake(lambda i: len(i.prompt or "") >= 100)
    found = shrink(start, fake, budget=25)
    assert found is not None and len(fake.asked) <= 25
    assert dict(found.params) == {"kind": 1, "length": 100}
    assert found.describe() == "100 spaces"


def test_an_error_in_the_check_propagates_and_stops_the_search() -> None:
    class Broken(Exception):
        pass

    def fails(_: Instance) -> bool:
        fails.calls += 1  # type: ignore[attr-defined]
        raise Broken("worker died")

    fails.calls = 0  # type: ignore[attr-defined]
    start = _start("arithmetic", {"a": 17, "b": 9, "op": "+", "phrasing": 0})
    with pytest.raises(Broken, match="worker died"):
        shrink(start, fails)
    assert fails.calls == 1  # type: ignore[attr-defined]


def test_shrinking_is_deterministic() -> None:
    start = _start("arithmetic", {"a": 88, "b": 31, "op": "-", "phrasing": 4})
    runs = []
    for _ in range(2):
        fake = Fake(lambda i: i.expected is not None and int(str(i.expected)) > 20)
        found = shrink(start, fake, budget=20)
        runs.append((found, [dict(i.params) for i in fake.asked]))
    assert runs[0] == runs[1]
    assert runs[0][0] is not None
