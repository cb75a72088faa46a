"""The mutant walk: every mutant of the table, through the product's engine.

For each fixture, every mutant that applies to it is built and written into a
playbook of its own (the mutant's base format; the modalities its scenario
gates name, F-A1-001 -> run, F-A2-001 -> chat; a spread of the fixture's own
prompts.json with explicit expected answers), the clean fixture into one more,
and all of them go through one ``execute()`` call. Then, for every gate a
mutant declares:

- implemented: at least one record of it falsifies that mutant;
- planned: the catalogue says so, and the run holds no verdict of it. The day a
  capability starts recording the gate, this fails until the gate is marked
  implemented, and from then on the walk holds the gate to its mutants like
  the others.

The clean fixture, through the same walk, must corroborate every gate its
mutants declare and falsify none.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path

import pytest

from apr_qa import api
from apr_qa.backends.device import gpu_unavailable_reason
from apr_qa.evidence import Outcome, Record, read_evidence
from apr_qa.execute import RunOptions, execute
from apr_qa.fixtures import FixturePrompt, fixture_names, fixture_path, load_prompts
from apr_qa.gates import Gate, lookup, scenario_gate
from apr_qa.playbook import load_playbook
from apr_qa.testing.mutants import MUTANTS, Mutant, applies, build_mutant

pytestmark = pytest.mark.slow

# The scenario gate of each modality on cpu, and the other way round.
MODALITY_OF_GATE = {"F-A1-001": "run", "F-A2-001": "chat"}
# prompts.json prompts asked per modality: spread over its kinds (sums, capitals,
# code, greeting), enough for a broken model to miss some, few enough to stay fast.
PER_MODALITY = 6
# The GGUF quantizations the mutants are written from (clean counterparts).
CLEAN_GGUF = ("f32", "q8_0")
FAILED = (Outcome.FALSIFIED, Outcome.TIMEOUT, Outcome.CRASHED)
# Gates decided by comparing two formats of the model (apr_qa.checks.differential);
# fingerprints and stats compare with the clean fixture's reference file instead.
DIFFERENTIAL = ("F-ROSETTA-DIFF-", "F-ROSETTA-INF-", "F-TOK-PARITY-", "F-TRACE-DIFF-")
TRACE_PAYLOAD = ("F-TRACE-PAYLOAD-001", "F-TRACE-PAYLOAD-002", "F-TRACE-PAYLOAD-003")
TRACE_DIFF = "F-TRACE-DIFF-001"


def _cases() -> list[tuple[str, str]]:
    return [
        (fixture, name)
        for fixture in fixture_names()
        for name in MUTANTS
        if applies(name, fixture_path(fixture))
    ]


CASES = _cases()


def _modalities(mutant: Mutant) -> list[str]:
    """The modalities the mutant's scenario gates name; ``run`` when it names none."""
    named = [MODALITY_OF_GATE[g] for g in mutant.gates if g in MODALITY_OF_GATE]
    return named or ["run"]


def spread(prompts: tuple[FixturePrompt, ...], modality: str, count: int) -> list[FixturePrompt]:
    """``count`` prompts of one modality, taking each kind in turn, evenly within a kind."""
    kinds: dict[str, list[FixturePrompt]] = {}
    for p in prompts:
        if p.modality == modality:
            kinds.setdefault(p.id.split("-")[0], []).append(p)
    wanted: dict[str, int] = dict.fromkeys(kinds, 0)
    for kind, _ in zip(cycle(kinds), range(count), strict=False):
        wanted[kind] += 1
    out: list[FixturePrompt] = []
    for kind, members in kinds.items():
        n = min(wanted[kind], len(members))
        step = max(1, len(members) // max(1, n))
        out += members[::step][:n]
    return out


def scenario(p: FixturePrompt) -> dict[str, object]:
    """A playbook scenario asking the prompt in its own modality, with its expected answer."""
    spec: dict[str, object] = {"name": p.id, "modalities": [p.modality]}
    if p.modality == "run":
        spec["prompt"] = p.prompt
    else:
        spec["messages"] = p.chat_messages()
    if p.oracle == "arithmetic":
        spec.update(oracle="arithmetic", expected=int(p.expected))
    else:
        # The fixture's contract is the whole greedy answer: anything else is a defect.
        spec.update(oracle="exact", value=p.expected)
    return spec


def write_playbook(
    folder: Path,
    name: str,
    model: Path,
    formats: list[str],
    quantizations: list[str],
    modalities: list[str],
    scenarios: list[dict[str, object]],
    backend: str = "cpu",
    compare_with: Path | None = None,
    reference: Path | None = None,
    trace_diff: bool = False,
) -> Path:
    """A collect-all playbook: every cell runs whatever fails first.

    ``compare_with``: the clean counterpart the differential checks compare the
    model with (the checkpoint for a GGUF mutant, its GGUF for a checkpoint mutant);
    ``reference``: the clean checkpoint's fingerprint (``apr-qa fingerprint``).
    """
    quants = f", quantizations: {json.dumps(quantizations)}" if quantizations else ""
    lines = [
        f"name: {name}",
        f"model: {{id: apr-qa/{name}, path: {json.dumps(str(model))}}}",
        f"test_matrix: {{modalities: {json.dumps(modalities)}, backends: [{backend}],"
        f" formats: {json.dumps(formats)}{quants}, max_tokens: 32, timeout_ms: 60000}}",
        "failure_policy: collect-all",
        f"trace_payload: {{enabled: true, gates: {json.dumps(_trace_gates(trace_diff))}}}",
        "scenarios:",
        *(f"  - {json.dumps(s)}" for s in scenarios),
    ]
    differential = []
    if compare_with is not None:
        differential.append(f"compare_with: [{json.dumps(str(compare_with))}]")
    if reference is not None:
        differential.append("fingerprint: {enabled: true}")
        differential.append(f"validate_stats: {{reference: {json.dumps(str(reference))}}}")
    if differential:
        lines.append(f"differential_tests: {{{', '.join(differential)}}}")
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _trace_gates(trace_diff: bool) -> list[str]:
    """The trace gates a walk playbook records: F-TRACE-DIFF-001 (a worker tracing
    each pair) only where a mutant declares it, and in its clean fixture."""
    return [*TRACE_PAYLOAD, *([TRACE_DIFF] * trace_diff)]


def _counterpart(mutant: Mutant, root: Path, fixture: str) -> Path | None:
    """What a mutant declaring a differential gate is compared with; None for the others
    (each comparison loads two runtimes: only where a declared gate needs it)."""
    if not any(g.startswith(DIFFERENTIAL) for g in mutant.gates):
        return None
    return root if mutant.base_format == "gguf" else root / f"{fixture}-f32.gguf"


@dataclass(frozen=True)
class Walk:
    """One fixture's run: records by model id, and the mutants that failed to build."""

    records: dict[str, list[Record]]
    build_errors: dict[str, str]

    def of(self, model: str, gate: str) -> list[Record]:
        """The records of one gate for one model."""
        return [r for r in self.records.get(f"apr-qa/{model}", []) if r.gate == gate]


def run_walk(
    fixture: str,
    tmp: Path,
    *,
    backend: str = "cpu",
    names: list[str] | None = None,
    clean_formats: tuple[str, ...] = ("safetensors", "gguf"),
) -> Walk:
    """Build the applicable mutants of ``fixture`` (``names``: those only) and run them
    and the clean model on ``backend``, in one ``execute()``."""
    root = fixture_path(fixture)
    prompts = load_prompts(fixture)
    reference = tmp / f"{fixture}.fingerprint.json"
    api.fingerprint(root, reference)
    asked = {m: [scenario(p) for p in spread(prompts, m, PER_MODALITY)] for m in ("run", "chat")}
    books = [
        write_playbook(
            tmp,
            f"{fixture}-clean",
            root,
            list(clean_formats),
            list(CLEAN_GGUF) if "gguf" in clean_formats else [],
            ["run", "chat"],
            asked["run"] + asked["chat"],
            backend,
            reference=reference,
            trace_diff=any(TRACE_DIFF in MUTANTS[m].gates for f, m in CASES if f == fixture),
        )
    ]
    errors: dict[str, str] = {}
    for fixture_name, name in CASES:
        if fixture_name != fixture or (names is not None and name not in names):
            continue
        mutant = MUTANTS[name]
        try:
            artifact = build_mutant(name, root, tmp / "mutants")
        except Exception as exc:  # reported by that mutant's test, not the whole walk
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        modalities = _modalities(mutant)
        books.append(
            write_playbook(
                tmp,
                f"{fixture}-{name}",
                artifact,
                [mutant.base_format],
                [],  # a single GGUF file is whatever it is, even unreadable
                modalities,
                [s for m in modalities for s in asked[m]],
                backend,
                _counterpart(mutant, root, fixture),
                reference,
                TRACE_DIFF in mutant.gates,
            )
        )
    out = tmp / "out"
    # Two workers, each with one of the two cores (apr_qa.backends.threads).
    execute([load_playbook(b) for b in books], RunOptions(output_dir=out, workers=2))
    read = read_evidence([out / "evidence.jsonl"])
    assert read.warnings == []
    by_model: dict[str, list[Record]] = {}
    for record in read.records:
        by_model.setdefault(record.model, []).append(record)
    return Walk(by_model, errors)


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Walk]:
    """Each fixture's walk, run once on first use."""
    done: dict[str, Walk] = {}

    def get(fixture: str) -> Walk:
        if fixture not in done:
            done[fixture] = run_walk(fixture, tmp_path_factory.mktemp(fixture))
        return done[fixture]

    return get


def _gate(gate_id: str) -> Gate:
    gate = lookup(gate_id)
    assert gate is not None, f"{gate_id} is not in the gate catalogue"
    return gate


def _seen(records: list[Record]) -> list[tuple[str, str, str, str]]:
    return [
        (r.gate, r.cell, str(r.outcome), r.reason[:120])
        for r in records
        if r.outcome is not Outcome.CORROBORATED
    ]


def _planned_is_silent(walk: Walk, model: str, gate: Gate) -> None:
    # A skipped record checked nothing; any other verdict means something records it now.
    recorded = [r for r in walk.of(model, gate.id) if r.outcome is not Outcome.SKIPPED]
    assert recorded == [], (
        f"{gate.id} is planned ({gate.planned}) but the engine recorded it for {model}: "
        "mark it implemented in apr_qa.gates; the walk then holds it to its mutants"
    )


@pytest.mark.parametrize(("fixture", "name"), CASES, ids=[f"{f}:{m}" for f, m in CASES])
def test_mutant_is_falsified_by_every_implemented_gate_it_declares(
    walk: Callable[[str], Walk], fixture: str, name: str
) -> None:
    run = walk(fixture)
    assert name not in run.build_errors, run.build_errors.get(name)
    model = f"{fixture}-{name}"
    records = run.records.get(f"apr-qa/{model}", [])
    assert records, f"the engine recorded nothing for {model}"
    mutant = MUTANTS[name]
    assert {r.format for r in records if r.format} == {mutant.base_format}
    for gate in map(_gate, mutant.gates):
        if not gate.is_implemented:
            _planned_is_silent(run, model, gate)
            continue
        outcomes = [r.outcome for r in run.of(model, gate.id)]
        assert Outcome.FALSIFIED in outcomes, (
            f"{gate.id} did not falsify {model}",
            _seen(records) or "every record corroborated",
        )
        if gate.id in MODALITY_OF_GATE:
            falsified = [r for r in run.of(model, gate.id) if r.outcome is Outcome.FALSIFIED]
            assert {r.modality for r in falsified} == {MODALITY_OF_GATE[gate.id]}


@pytest.mark.parametrize("fixture", fixture_names())
def test_clean_fixture_corroborates_every_gate_its_mutants_declare(
    walk: Callable[[str], Walk], fixture: str
) -> None:
    run = walk(fixture)
    model = f"{fixture}-clean"
    records = run.records.get(f"apr-qa/{model}", [])
    cells = {(r.format, r.quantization, r.modality) for r in records if r.gate == "G1-LOAD-001"}
    assert {(f, q) for f, q, _ in cells if f == "gguf"} == {("gguf", q) for q in CLEAN_GGUF}
    assert {m for *_, m in cells} == {"run", "chat"}
    declared = sorted({g for f, m in CASES if f == fixture for g in MUTANTS[m].gates})
    for gate in map(_gate, declared):
        if not gate.is_implemented:
            _planned_is_silent(run, model, gate)
            continue
        held = run.of(model, gate.id)
        failed = [(r.cell, str(r.outcome), r.reason) for r in held if r.outcome in FAILED]
        assert failed == [], gate.id
        assert Outcome.CORROBORATED in {r.outcome for r in held}, (gate.id, _seen(held))
    # Every scenario asked of the clean model is answered as its contract says.
    for gate, modality in MODALITY_OF_GATE.items():
        asked = [r for r in run.of(model, gate) if r.scenario is not None]
        assert asked and {r.modality for r in asked} == {modality}
        assert len(asked) >= PER_MODALITY * 3  # safetensors, gguf f32, gguf q8_0


def test_spread_takes_every_kind_and_the_right_modality() -> None:
    prompts = load_prompts(fixture_names()[0])
    for modality in ("run", "chat"):
        chosen = spread(prompts, modality, PER_MODALITY)
        assert len(chosen) == PER_MODALITY == len({p.id for p in chosen})
        assert {p.modality for p in chosen} == {modality}
        kinds = {p.id.split("-")[0] for p in prompts if p.modality == modality}
        assert {p.id.split("-")[0] for p in chosen} == kinds


def test_gpu_scenario_gates_falsify_the_scenario_mutants(tmp_path: Path) -> None:
    """F-A4-001 and F-A5-001 are F-A1-001 and F-A2-001 on a CUDA device: same cells, same
    oracles; only a machine with one can show them falsifying (docs/gates.md says so)."""
    why = gpu_unavailable_reason("transformers")
    if why is not None:
        pytest.skip(f"F-A4-001/F-A5-001 need a CUDA device: {why}")
    fixture = "tiny-llama"
    names = [
        n
        for f, n in CASES
        if f == fixture
        and MUTANTS[n].base_format == "safetensors"
        and set(MUTANTS[n].gates) & set(MODALITY_OF_GATE)
    ]
    assert names
    run = run_walk(fixture, tmp_path, backend="gpu", names=names, clean_formats=("safetensors",))
    for name in names:
        for cpu_gate in set(MUTANTS[name].gates) & set(MODALITY_OF_GATE):
            gate = scenario_gate(MODALITY_OF_GATE[cpu_gate], "gpu")
            outcomes = {r.outcome for r in run.of(f"{fixture}-{name}", gate)}
            assert Outcome.FALSIFIED in outcomes, (name, gate, outcomes)
    for modality in ("run", "chat"):
        held = run.of(f"{fixture}-clean", scenario_gate(modality, "gpu"))
        assert held and {r.outcome for r in held} == {Outcome.CORROBORATED}
