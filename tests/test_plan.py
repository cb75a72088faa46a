"""Matrix expansion, ids, seeds and sharding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import UPSTREAM

from apr_qa.errors import UsageError
from apr_qa.plan import Plan, Shard, build_plan, derive_seed, parse_shard
from apr_qa.planview import render_table, write_json
from apr_qa.playbook import load_playbook

THREE_BY_TWO_BY_THREE = """
name: full-{i}
model: {{hf_repo: org/model-{i}, formats: [gguf, safetensors, apr], quantizations: [q4_k_m]}}
test_matrix: {{modalities: [run, chat, serve], backends: [cpu, gpu], scenario_count: 100, seed: 42}}
"""


def _plan(write, text: str, name: str = "p.yaml") -> Plan:  # type: ignore[no-untyped-def]
    return build_plan([load_playbook(write(text, name))])


def test_three_modalities_two_backends_three_formats_hundred_scenarios_is_1800(write) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(write, THREE_BY_TWO_BY_THREE.format(i=0))
    assert len(plan.cells) == 3 * 2 * 3
    assert plan.test_count == 3 * 2 * 3 * 100 == 1800


def test_upstream_untiered_playbook_multiplies_gguf_by_its_quantizations() -> None:
    # gguf x {q4_k_m, q5_k_m, q8_0} + safetensors + apr = 5 artifacts; x 2 backends x 3 modalities x 100
    plan = build_plan(
        [load_playbook(UPSTREAM / "playbooks/models/qwen2.5-coder-1.5b.playbook.yaml")]
    )
    assert len(plan.cells) == 5 * 2 * 3
    assert plan.test_count == 3000
    assert {c.quantization for c in plan.cells if c.format == "gguf"} == {
        "q4_k_m",
        "q5_k_m",
        "q8_0",
    }
    assert {c.quantization for c in plan.cells if c.format != "gguf"} == {"stored"}


def test_upstream_mvp_playbook_is_18_tests() -> None:
    plan = build_plan([load_playbook(UPSTREAM / "playbooks/models/codegemma-7b-mvp.playbook.yaml")])
    assert len(plan.cells) == 18
    assert plan.test_count == 18


def test_prompt_list_replaces_generated_scenarios() -> None:
    # 15 prompts in test_matrix.prompts cover scenario_count: 1, in each of 18 cells
    plan = build_plan(
        [load_playbook(UPSTREAM / "playbooks/models/qwen2.5-coder-1.5b-mvp.playbook.yaml")]
    )
    assert {c.scenario_count for c in plan.cells} == {15}
    assert plan.test_count == 18 * 15


def test_conversations_do_not_run_as_raw_completions(write) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(
        write,
        "model: {id: m}\ntest_matrix: {modalities: [run, chat], formats: [gguf], quantizations: [q8_0]}\n"
        "scenarios:\n  - {name: a, prompt: hi}\n"
        "  - name: b\n    messages: [{role: user, content: hi}]\n",
    )
    counts = {c.modality: c.scenario_count for c in plan.cells}
    assert counts == {"run": 1, "chat": 2}


def test_ids_and_seeds_are_stable_and_shared_across_cells(write) -> None:  # type: ignore[no-untyped-def]
    text = THREE_BY_TWO_BY_THREE.format(i=1)
    first = _plan(write, text, "a.yaml")
    second = _plan(write, text, "b.yaml")
    a = [(s.id, s.seed) for c in first.cells for s in c.scenarios()]
    b = [(s.id, s.seed) for c in second.cells for s in c.scenarios()]
    assert a == b
    seeds_by_name = {}
    for cell in first.cells:
        for s in cell.scenarios():
            assert seeds_by_name.setdefault(s.name, s.seed) == s.seed
    assert len(set(seeds_by_name.values())) == len(seeds_by_name) == 100


def test_seed_depends_on_playbook_seed() -> None:
    assert derive_seed(42, "arithmetic-0001") != derive_seed(43, "arithmetic-0001")
    assert derive_seed(42, "x") == derive_seed(42, "x")


@pytest.mark.parametrize("text", ["3/2", "0/2", "1/0", "a/b", "1", "-1/2", "2/"])
def test_bad_shard_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_shard(text)


def test_duplicate_playbook_names_are_refused(write) -> None:  # type: ignore[no-untyped-def]
    a = load_playbook(write("name: same\nmodel: {id: a}\n", "a.yaml"))
    b = load_playbook(write("name: same\nmodel: {id: b}\n", "b.yaml"))
    with pytest.raises(UsageError, match="also used by"):
        build_plan([a, b])


@settings(max_examples=40, deadline=None)
@given(
    books=st.lists(
        st.tuples(st.integers(0, 40), st.sampled_from([["run"], ["run", "chat", "serve"]])),
        min_size=1,
        max_size=4,
    ),
    total=st.integers(1, 9),
)
def test_shards_are_disjoint_and_cover_the_plan(tmp_path_factory, books, total: int) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("shards")
    playbooks = []
    for i, (count, modalities) in enumerate(books):
        path = root / f"{i}.yaml"
        path.write_text(
            f"name: b{i}\nmodel: {{id: m{i}}}\n"
            f"test_matrix: {{scenario_count: {count}, modalities: {modalities}, backends: [cpu, gpu]}}\n"
        )
        playbooks.append(load_playbook(path))
    full = build_plan(playbooks)
    shards = [full.select(Shard(k, total)) for k in range(1, total + 1)]
    ids = [c.id for s in shards for c in s.cells]
    assert len(ids) == len(set(ids))
    assert set(ids) == {c.id for c in full.cells}
    assert sum(s.test_count for s in shards) == full.test_count
    # balanced: no shard exceeds the ideal by more than the largest cell
    costs = [sum(c.cost for c in s.cells) for s in shards]
    assert max(costs) <= sum(costs) / total + max(c.cost for c in full.cells) + 1e-9


def test_table_and_json_agree(write, capsys) -> None:  # type: ignore[no-untyped-def]
    import io

    plan = _plan(write, THREE_BY_TWO_BY_THREE.format(i=2))
    table = render_table(plan)
    assert "18 cells, 1,800 tests" in table
    assert "full-2/gguf-q4_k_m/gpu/serve" in table
    buf = io.StringIO()
    write_json(plan, buf)
    data = json.loads(buf.getvalue())
    assert data["totals"] == {"cells": 18, "tests": 1800}
    assert sum(len(c["scenarios"]) for c in data["cells"]) == 1800


def test_explicit_scenarios_keep_their_source_line(write) -> None:  # type: ignore[no-untyped-def]
    path: Path = write("model: {id: m}\nscenarios:\n  - name: a\n    prompt: hi\n")
    plan = build_plan([load_playbook(path)])
    first = next(plan.cells[0].scenarios())
    assert first.source is not None and (first.source.file, first.source.line) == (str(path), 3)
