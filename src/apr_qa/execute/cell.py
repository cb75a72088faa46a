"""Run one cell (artifact x backend x modality) in its worker and record what happens.

Every outcome is evidence: a load failure is G1, an empty answer to the probe
is G2, a death by signal is G3 (crashed), a scenario past its deadline is a
timeout and the worker is restarted for the rest of the cell.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from apr_qa import oracles
from apr_qa.evidence import Outcome, Record, ScenarioInfo
from apr_qa.execute.client import WorkerClient, WorkerDied, WorkerTimeout
from apr_qa.execute.records import CellRef, RecordFactory
from apr_qa.gates import scenario_gate
from apr_qa.oracles import Verdict
from apr_qa.plan import PlannedScenario
from apr_qa.playbook.model import OracleSpec, Playbook

__all__ = ["CellJob", "CellResult", "CellRunner", "Halt"]

PROBE_PROMPT = "What is 2 + 2?"
PROBE_MAX_TOKENS = 16
LOAD_TIMEOUT_FLOOR_S = 120.0
SHRINK_BUDGET = 12


class Halt:
    """A shared stop signal: set once with the reason; cells check it between scenarios."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def set(self, reason: str) -> None:
        """Stop with a reason (the first reason wins)."""
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        """Whether work should stop."""
        return self._event.is_set()


@dataclass(frozen=True)
class CellJob:
    """What a cell runs: the artifact to load, where, how, and its scenarios."""

    playbook: Playbook
    cell: CellRef
    backend_kind: str
    path: str
    device: str
    scenarios: Sequence[PlannedScenario]
    trust_remote_code: bool = False
    skip_reason: str | None = None
    converted: bool = False  # produced by the reference converter (G0-FORMAT-GGUF-001)

    @property
    def id(self) -> str:
        """The cell id used in messages."""
        return str(self.cell)


@dataclass
class CellResult:
    """What the supervisor aggregates across cells (G4 garbage rate)."""

    outputs: int = 0
    garbage: int = 0
    scenarios_done: int = 0
    failures: int = 0
    records: list[Record] = field(default_factory=list)


def _scenario_info(planned: PlannedScenario, instance: Any) -> ScenarioInfo:
    source = planned.source
    return ScenarioInfo(
        name=planned.name,
        oracle=instance.oracle.name if instance is not None else None,
        prompt=instance.prompt if instance is not None else None,
        messages=tuple(dict(m) for m in instance.messages)
        if instance and instance.messages
        else None,
        seed=planned.seed,
        file=source.file if source else None,
        line=source.line if source else None,
    )


class CellRunner:
    """Drives one worker through one cell, emitting records as they are decided."""

    def __init__(
        self,
        job: CellJob,
        factory: RecordFactory,
        emit: Callable[[Record], None],
        halt: Callable[[], str | None],
        on_progress: Callable[[int], None] = lambda n: None,
        spawn: Callable[[str], WorkerClient] | None = None,
    ) -> None:
        self.job = job
        self.factory = factory
        self._emit = emit
        self._halt = halt
        self._progress = on_progress
        self._spawn = spawn or (lambda kind: WorkerClient(warm=kind))
        self._oracles: dict[str, Any] = {}
        self.result = CellResult()
        matrix = job.playbook.matrix
        self.timeout_s = matrix.timeout_ms / 1000
        self.worker: WorkerClient | None = None
        self.garbage_oracle: Any = None
        self.crashed: list[str] = []
        self.hung: list[str] = []

    # -- records -------------------------------------------------------------------------

    def record(self, gate: str, outcome: Outcome, reason: str, **kw: Any) -> None:
        """Emit one record for this cell."""
        rec = self.factory.make(
            gate, outcome, reason, self.job.cell, playbook=self.job.playbook, **kw
        )
        if outcome in (Outcome.FALSIFIED, Outcome.TIMEOUT, Outcome.CRASHED):
            self.result.failures += 1
        self._emit(rec)

    def skip_rest(self, scenarios: Sequence[PlannedScenario], reason: str) -> None:
        """Record every scenario not run as skipped, with the reason (visible, never passed)."""
        gate = scenario_gate(self.job.cell.modality or "run", self.job.cell.backend or "cpu")
        for planned in scenarios:
            self.record(gate, Outcome.SKIPPED, reason, scenario=_scenario_info(planned, None))
            self._progress(1)

    # -- worker lifecycle ----------------------------------------------------------------

    def _start(self) -> str | None:
        """Start a worker and load the model; None when loaded, else the reason it did not."""
        self.worker = self._spawn(self.job.backend_kind)
        request = {
            "op": "load",
            "backend": self.job.backend_kind,
            "path": self.job.path,
            "device": self.job.device,
            "trust_remote_code": self.job.trust_remote_code,
        }
        try:
            reply = self.worker.request(request, max(self.timeout_s, LOAD_TIMEOUT_FLOOR_S))
        except WorkerTimeout as exc:
            return f"load timed out: {exc}"
        except WorkerDied as exc:
            if not self._interrupted():
                self.crashed.append(f"load: {exc.signal_name}")
            return (
                f"worker died while loading ({exc.signal_name}): {exc.stderr_tail[-500:].strip()}"
            )
        if not reply.data.get("ok"):
            return str(reply.data.get("error", "load failed"))
        vocab = reply.data.get("vocab") or {}
        options: dict[str, Any] = {}
        if vocab.get("pad_token"):
            options["pad_token"] = vocab["pad_token"]
        specials = [t for t in vocab.get("special_tokens") or [] if t]
        if specials:
            options["special_tokens"] = specials
        self.garbage_oracle = oracles.create("garbage", options)
        self._load_s = float(reply.data.get("load_s", reply.wall_s))
        return None

    def _stop(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def _generate(
        self, instance: Any, seed: int, max_tokens: int, timeout_s: float
    ) -> dict[str, Any]:
        assert self.worker is not None
        request = {
            "op": "generate",
            "prompt": instance.prompt,
            "messages": [dict(m) for m in instance.messages] if instance.messages else None,
            "max_tokens": max_tokens,
            "temperature": (
                instance.temperature
                if instance.temperature is not None
                else self.job.playbook.matrix.temperature
            ),
            "seed": seed,
        }
        reply = self.worker.request(request, timeout_s)
        return reply.data

    # -- the cell ------------------------------------------------------------------------

    def run(self) -> CellResult:
        """Run the whole cell; never raises for model behaviour."""
        job = self.job
        scenarios = list(job.scenarios)
        if job.skip_reason:
            self.skip_rest(scenarios, job.skip_reason)
            return self.result
        try:
            error = self._start()
            if error is not None and (interrupted := self._interrupted()):
                self.skip_rest(scenarios, interrupted)
                return self.result
            if error is not None:
                self.record("G1-LOAD-001", Outcome.FALSIFIED, f"{job.id} did not load: {error}")
                self.skip_rest(scenarios, "not run: the model did not load in this cell")
                self._record_g3()
                return self.result
            self.record(
                "G1-LOAD-001",
                Outcome.CORROBORATED,
                f"{job.id} loaded",
                metrics={"load_s": self._load_s},
            )
            self._probe()
            for i, planned in enumerate(scenarios):
                reason = self._halt()
                if reason:
                    self.skip_rest(scenarios[i:], reason)
                    break
                if self.worker is None and not self._restart(scenarios[i:]):
                    break
                self._scenario(planned)
                self._progress(1)
            self._record_g3()
        finally:
            self._stop()
        return self.result

    def _restart(self, rest: Sequence[PlannedScenario]) -> bool:
        error = self._start()
        if error is None:
            return True
        why = self._interrupted() or f"not run: the worker could not be restarted ({error})"
        self.skip_rest(rest, why)
        return False

    def _interrupted(self) -> str | None:
        """The reason when the run was interrupted (its workers are killed on purpose)."""
        reason = self._halt()
        return reason if reason and reason.startswith("interrupted") else None

    def _lost_worker(self, exc: Exception, what: str, *, basic: bool) -> tuple[Outcome, str]:
        """Book-keeping after a timeout or a crash; the worker is restarted lazily."""
        if self.worker is not None:
            self.worker.kill()
            self.worker = None
        if interrupted := self._interrupted():
            return Outcome.SKIPPED, interrupted
        if isinstance(exc, WorkerTimeout):
            if basic:
                self.hung.append(what)
            return Outcome.TIMEOUT, f"{what}: {exc}"
        assert isinstance(exc, WorkerDied)
        self.crashed.append(f"{what}: {exc.signal_name}")
        tail = exc.stderr_tail.strip()[-800:]
        return Outcome.CRASHED, f"{what}: worker {exc.signal_name}; stderr tail: {tail}"

    def _probe(self) -> None:
        """G2: a trivial prompt yields non-empty tokens."""
        from apr_qa.scenarios import Instance

        modality = self.job.cell.modality
        probe = Instance(
            name="g2-probe",
            family="probe",
            prompt=None if modality != "run" else PROBE_PROMPT,
            messages=({"role": "user", "content": PROBE_PROMPT},) if modality != "run" else None,
            oracle=OracleSpec("garbage"),
            expected=None,
            max_tokens=PROBE_MAX_TOKENS,
            category="GATEWAY",
            gate="G2-INFER-001",
            params={},
        )
        try:
            data = self._generate(probe, 0, PROBE_MAX_TOKENS, self.timeout_s)
        except (WorkerTimeout, WorkerDied) as exc:
            outcome, reason = self._lost_worker(exc, "G2 probe", basic=True)
            self.record("G2-INFER-001", outcome, reason)
            return
        if not data.get("ok"):
            self.record("G2-INFER-001", Outcome.FALSIFIED, f"G2 probe failed: {data.get('error')}")
            return
        gen = data["generation"]
        info = ScenarioInfo(name="g2-probe", prompt=probe.prompt, messages=probe.messages)
        if gen["token_ids"] and gen["text"].strip():
            self.record(
                "G2-INFER-001",
                Outcome.CORROBORATED,
                f"probe yielded {len(gen['token_ids'])} tokens",
                scenario=info,
                output=gen["text"],
                metrics=_metrics(gen),
            )
        else:
            self.record(
                "G2-INFER-001",
                Outcome.FALSIFIED,
                f"probe yielded no text ({len(gen['token_ids'])} tokens, finish {gen['finish_reason']})",
                scenario=info,
                output=gen["text"],
                metrics=_metrics(gen),
            )

    def _scenario(self, planned: PlannedScenario) -> None:
        from apr_qa.scenarios import instantiate

        job = self.job
        modality = job.cell.modality or "run"
        instance = instantiate(planned, job.playbook, modality)
        gate = instance.gate or scenario_gate(modality, job.cell.backend or "cpu")
        info = _scenario_info(planned, instance)
        scenario = planned.scenario
        max_tokens = instance.max_tokens
        if max_tokens is None:
            max_tokens = job.playbook.matrix.max_tokens
        timeout_s = (
            (scenario.timeout_ms / 1000) if scenario and scenario.timeout_ms else self.timeout_s
        )
        basic = planned.kind == "explicit"
        started = time.perf_counter()
        try:
            data = self._generate(instance, planned.seed, max_tokens, timeout_s)
            second = (
                self._generate(instance, planned.seed, max_tokens, timeout_s)
                if instance.repeat > 1 and data.get("ok")
                else None
            )
        except (WorkerTimeout, WorkerDied) as exc:
            waited = time.perf_counter() - started
            outcome, reason = self._lost_worker(exc, f"scenario {planned.name}", basic=basic)
            metrics = {"waited_s": waited, "timeout_s": timeout_s}
            self.record(
                gate, outcome, reason, scenario=info, expected=instance.expected, metrics=metrics
            )
            return
        self.result.scenarios_done += 1
        if not data.get("ok"):
            self.record(
                gate,
                Outcome.FALSIFIED,
                f"the backend refused the scenario: {data.get('error')}",
                scenario=info,
                expected=instance.expected,
            )
            return
        gen = data["generation"]
        text = gen["text"]
        garbage = self.garbage_oracle(text, prompt=instance.text)
        # An empty answer to an empty prompt is the right answer, not garbage for G4.
        if (instance.text or "").strip() or text.strip():
            self.result.outputs += 1
            if not garbage.passed and not garbage.skipped:
                self.result.garbage += 1
        verdict = self._judge(instance, gen, second)
        metrics = {**_metrics(gen), "garbage": 0.0 if garbage.passed or garbage.skipped else 1.0}
        counterexample = None
        if not verdict.passed and not verdict.skipped and planned.kind == "generated":
            counterexample = self._shrink(instance, planned.seed, max_tokens, timeout_s)
        outcome = (
            Outcome.SKIPPED
            if verdict.skipped
            else Outcome.CORROBORATED
            if verdict.passed
            else Outcome.FALSIFIED
        )
        reason = verdict.reason
        if not garbage.passed and not garbage.skipped and instance.oracle.name != "garbage":
            reason = f"{reason}; {garbage.reason}"
        self.record(
            gate,
            outcome,
            reason,
            scenario=info,
            output=text,
            expected=instance.expected,
            metrics=metrics,
            counterexample=counterexample,
        )

    def _judge(self, instance: Any, gen: dict[str, Any], second: dict[str, Any] | None) -> Verdict:
        if instance.repeat > 1:
            if second is None or not second.get("ok"):
                return Verdict.fail("the repeated generation failed")
            again = second["generation"]
            if again["token_ids"] == gen["token_ids"]:
                return Verdict.ok(f"same {len(gen['token_ids'])} tokens twice at temperature 0")
            return Verdict.fail(
                f"different tokens on repeat: {gen['text'][:60]!r} then {again['text'][:60]!r}"
            )
        spec = instance.oracle
        key = f"{spec.name}:{sorted(spec.options.items())!r}"
        oracle = self._oracles.get(key)
        if oracle is None:
            oracle = self._oracles[key] = oracles.create(spec.name, dict(spec.options))
        return oracle(gen["text"], prompt=instance.text, expected=instance.expected)

    def _shrink(self, instance: Any, seed: int, max_tokens: int, timeout_s: float) -> str | None:
        """Search for the minimal failing input of this family (hypothesis), within a budget."""
        from apr_qa.scenarios import shrink

        def fails(candidate: Any) -> bool:
            if self.worker is None:
                return False
            try:
                data = self._generate(candidate, seed, max_tokens, timeout_s)
            except (WorkerTimeout, WorkerDied) as exc:
                self._lost_worker(exc, "shrinking", basic=False)
                return False
            if not data.get("ok"):
                return True
            return not self._judge(candidate, data["generation"], None).passed

        smallest = shrink(instance, fails, budget=SHRINK_BUDGET)
        if smallest is None:
            return f"falsified for {instance.describe()}"
        return f"falsified for {smallest.describe()}"

    def _record_g3(self) -> None:
        if self.crashed:
            self.record(
                "G3-CRASH-001",
                Outcome.FALSIFIED,
                f"worker died {len(self.crashed)} time(s): {'; '.join(self.crashed[:3])}",
            )
        else:
            self.record("G3-CRASH-001", Outcome.CORROBORATED, "no worker died in this cell")
        if self.hung:
            self.record(
                "G3-HANG-001",
                Outcome.FALSIFIED,
                f"hung past the timeout on basic work: {', '.join(self.hung[:3])}",
            )
        else:
            self.record(
                "G3-HANG-001", Outcome.CORROBORATED, "no basic scenario hung past its timeout"
            )


def _metrics(gen: dict[str, Any]) -> dict[str, float]:
    return {
        "duration_s": float(gen["duration_s"]),
        "ttft_s": float(gen["ttft_s"]),
        "tok_per_s": float(gen["tok_per_s"]),
        "tokens": float(len(gen["token_ids"])),
        "prompt_tokens": float(gen["prompt_tokens"]),
    }
