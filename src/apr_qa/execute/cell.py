"""Run one cell (artifact x backend x modality) in its worker and record what happens.

Every outcome is evidence: a load failure is G1, the cell-stage checks (G2 and
whatever else is registered) run once the model is loaded, a death by signal is
G3 (crashed), a scenario past its deadline is a timeout and the worker is
restarted for the rest of the cell.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from apr_qa import oracles
from apr_qa.backends import Generation, Vocab
from apr_qa.checks import Stage, registered
from apr_qa.evidence import HaltKind, Outcome, Record, ScenarioInfo
from apr_qa.execute.client import Worker, WorkerClient, WorkerDied, WorkerTimeout
from apr_qa.execute.halt import Halt, Stop
from apr_qa.execute.messages import Failed, FailureKind, Generate, Generated, Load, Loaded
from apr_qa.execute.records import CellRef, RecordFactory
from apr_qa.gates import scenario_gate
from apr_qa.oracles import Verdict
from apr_qa.plan import PlannedScenario
from apr_qa.playbook.model import Playbook
from apr_qa.scenarios import Instance

__all__ = [
    "Asked",
    "CellJob",
    "CellRunner",
    "Halt",
    "Lost",
    "Refused",
    "Stop",
    "scenario_info",
]

LOAD_TIMEOUT_FLOOR_S = 120.0
SHRINK_BUDGET = 12


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

    @property
    def id(self) -> str:
        """The cell id used in messages."""
        return str(self.cell)


@dataclass(frozen=True)
class Refused:
    """The backend answered with an error instead of a generation."""

    error: str
    kind: FailureKind = "error"

    @property
    def unasked(self) -> bool:
        """The prompt did not fit the context: nothing was asked, so nothing is known."""
        return self.kind == "context"


@dataclass(frozen=True)
class Lost:
    """The worker hung or died; the outcome and reason are already decided."""

    outcome: Outcome
    reason: str
    waited_s: float


Asked = Generation | Refused | Lost
"""What asking the model once came to."""


def scenario_info(planned: PlannedScenario | None, instance: Instance | None) -> ScenarioInfo:
    """The evidence's view of a scenario: where it came from and what it asked."""
    source = planned.source if planned is not None else None
    name = planned.name if planned is not None else instance.name if instance else "-"
    return ScenarioInfo(
        name=name,
        id=planned.id if planned is not None else name,
        oracle=instance.oracle.name if instance is not None else None,
        prompt=instance.prompt if instance is not None else None,
        messages=tuple(dict(m) for m in instance.messages)
        if instance and instance.messages
        else None,
        seed=planned.seed if planned is not None else None,
        file=source.file if source else None,
        line=source.line if source else None,
    )


def generation_metrics(gen: Generation) -> dict[str, float]:
    """The timing and size figures every generating record carries."""
    return {
        "duration_s": float(gen.duration_s),
        "ttft_s": float(gen.ttft_s),
        "tok_per_s": float(gen.tok_per_s),
        "tokens": float(len(gen.token_ids)),
        "prompt_tokens": float(gen.prompt_tokens),
    }


class CellRunner:
    """Drives one worker through one cell, emitting records as they are decided.

    It is also the session that cell-stage checks see: :attr:`job`,
    :meth:`ask` and :meth:`record`.
    """

    def __init__(
        self,
        job: CellJob,
        factory: RecordFactory,
        emit: Callable[[Record], None],
        halt: Callable[[], Stop | None],
        on_progress: Callable[[int], None] = lambda n: None,
        spawn: Callable[[str], Worker] | None = None,
    ) -> None:
        self.job = job
        self.factory = factory
        self._emit = emit
        self._halt = halt
        self._progress = on_progress
        self._spawn = spawn or (lambda kind: WorkerClient(warm=kind))
        self._oracles: dict[str, oracles.Oracle] = {}
        self.timeout_s = job.playbook.matrix.timeout_ms / 1000
        self.worker: Worker | None = None
        self.garbage_oracle: oracles.Oracle | None = None
        self.crashed: list[str] = []
        self.hung: list[str] = []
        self._load_s = 0.0

    # -- the session cell-stage checks use -----------------------------------------------

    def record(self, gate: str, outcome: Outcome, reason: str, **kw: Any) -> None:
        """Emit one record for this cell."""
        self._emit(
            self.factory.make(
                gate, outcome, reason, self.job.cell, playbook=self.job.playbook, **kw
            )
        )

    def ask(
        self,
        instance: Instance,
        *,
        seed: int,
        max_tokens: int,
        timeout_s: float,
        what: str,
        basic: bool = True,
        min_tokens: int = 0,
    ) -> Asked:
        """Ask the loaded model once; a hang or a death is book-kept here (G3).

        ``basic`` work (explicit scenarios, probes) that hangs fails G3-HANG-001;
        generated and shrinking work that hangs is only its own timeout.
        ``min_tokens``: see ``Backend.generate`` (the profile's fixed-length runs).
        """
        started = time.perf_counter()
        if self.worker is None and (error := self._start()) is not None:
            return Refused(f"the worker could not be restarted: {error}")
        assert self.worker is not None
        request = Generate(
            prompt=instance.prompt,
            messages=tuple(dict(m) for m in instance.messages) if instance.messages else None,
            max_tokens=max_tokens,
            temperature=(
                instance.temperature
                if instance.temperature is not None
                else self.job.playbook.matrix.temperature
            ),
            seed=seed,
            min_tokens=min_tokens,
        )
        try:
            answer = self.worker.request(request, timeout_s)
        except (WorkerTimeout, WorkerDied) as exc:
            outcome, reason = self._lost_worker(exc, what, basic=basic)
            return Lost(outcome, reason, time.perf_counter() - started)
        reply = answer.reply
        if isinstance(reply, Generated):
            return reply.generation
        if isinstance(reply, Failed):
            return Refused(reply.error, reply.kind)
        return Refused(f"unexpected reply {type(reply).__name__}")

    def request(self, message: Any, *, timeout_s: float, what: str) -> Any:
        """Send any other request (``Tokenize``, ``Score``, ``HiddenStates``) to the loaded
        model: its reply, :class:`Refused` for a ``Failed`` one, or :class:`Lost` when
        the worker hung or died (book-kept as :meth:`ask` does, as non-basic work)."""
        started = time.perf_counter()
        if self.worker is None and (error := self._start()) is not None:
            return Refused(f"the worker could not be restarted: {error}")
        assert self.worker is not None
        try:
            reply = self.worker.request(message, timeout_s).reply
        except (WorkerTimeout, WorkerDied) as exc:
            outcome, reason = self._lost_worker(exc, what, basic=False)
            return Lost(outcome, reason, time.perf_counter() - started)
        if isinstance(reply, Failed):
            return Refused(reply.error, reply.kind)
        return reply

    # -- records -------------------------------------------------------------------------

    def skip_rest(
        self, scenarios: Sequence[PlannedScenario], reason: str, halted: HaltKind | None = None
    ) -> None:
        """Record every scenario not run as skipped, with the reason (visible, never passed)."""
        gate = scenario_gate(self.job.cell.modality or "run", self.job.cell.backend or "cpu")
        for planned in scenarios:
            self.record(
                gate,
                Outcome.SKIPPED,
                reason,
                scenario=scenario_info(planned, None),
                halted=halted,
            )
            self._progress(1)

    def _skip_stopped(self, scenarios: Sequence[PlannedScenario], stop: Stop) -> None:
        self.skip_rest(scenarios, f"not run: {stop.reason}", stop.kind)

    # -- worker lifecycle ----------------------------------------------------------------

    def _start(self) -> str | None:
        """Start a worker and load the model; None when loaded, else the reason it did not."""
        self.worker = self._spawn(self.job.backend_kind)
        request = Load(
            backend=self.job.backend_kind,
            path=self.job.path,
            device=self.job.device,
            trust_remote_code=self.job.trust_remote_code,
        )
        try:
            answer = self.worker.request(request, max(self.timeout_s, LOAD_TIMEOUT_FLOOR_S))
        except WorkerTimeout as exc:
            return f"load timed out: {exc}"
        except WorkerDied as exc:
            if self._interrupted() is None:
                self.crashed.append(f"load: {exc.signal_name}")
            return (
                f"worker died while loading ({exc.signal_name}): {exc.stderr_tail[-500:].strip()}"
            )
        reply = answer.reply
        if not isinstance(reply, Loaded):
            return reply.error if isinstance(reply, Failed) else "load failed"
        self.garbage_oracle = oracles.create("garbage", _garbage_options(reply.vocab))
        self._load_s = reply.load_s
        return None

    def _stop(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    # -- the cell ------------------------------------------------------------------------

    def run(self) -> None:
        """Run the whole cell; never raises for model behaviour."""
        job = self.job
        scenarios = list(job.scenarios)
        if job.skip_reason:
            self.skip_rest(scenarios, job.skip_reason)
            return
        try:
            error = self._start()
            if error is not None and (stop := self._interrupted()) is not None:
                self._skip_stopped(scenarios, stop)
                return
            if error is not None:
                self.record("G1-LOAD-001", Outcome.FALSIFIED, f"{job.id} did not load: {error}")
                self.skip_rest(scenarios, "not run: the model did not load in this cell")
                self._record_g3()
                return
            self.record(
                "G1-LOAD-001",
                Outcome.CORROBORATED,
                f"{job.id} loaded",
                metrics={"load_s": self._load_s},
            )
            for check in registered(Stage.CELL):
                check.run(self)
            for i, planned in enumerate(scenarios):
                stop = self._halt()
                if stop is not None:
                    self._skip_stopped(scenarios[i:], stop)
                    break
                if self.worker is None and not self._restart(scenarios[i:]):
                    break
                self._scenario(planned)
                self._progress(1)
            self._record_g3()
        finally:
            self._stop()

    def _restart(self, rest: Sequence[PlannedScenario]) -> bool:
        error = self._start()
        if error is None:
            return True
        stop = self._interrupted()
        if stop is not None:
            self._skip_stopped(rest, stop)
        else:
            self.skip_rest(rest, f"not run: the worker could not be restarted ({error})")
        return False

    def interrupted_run(self) -> bool:
        """Whether the run was interrupted (a server killed then says nothing)."""
        return self._interrupted() is not None

    def _interrupted(self) -> Stop | None:
        """The stop when the run was interrupted (its workers are killed on purpose)."""
        stop = self._halt()
        return stop if stop is not None and stop.kind is HaltKind.INTERRUPTED else None

    def _lost_worker(self, exc: Exception, what: str, *, basic: bool) -> tuple[Outcome, str]:
        """Book-keeping after a timeout or a crash; the worker is restarted lazily."""
        if self.worker is not None:
            self.worker.kill()
            self.worker = None
        if (stop := self._interrupted()) is not None:
            return Outcome.SKIPPED, f"not run: {stop.reason}"
        if isinstance(exc, WorkerTimeout):
            if basic:
                self.hung.append(what)
            return Outcome.TIMEOUT, f"{what}: {exc}"
        assert isinstance(exc, WorkerDied)
        self.crashed.append(f"{what}: {exc.signal_name}")
        tail = exc.stderr_tail.strip()[-800:]
        return Outcome.CRASHED, f"{what}: worker {exc.signal_name}; stderr tail: {tail}"

    def _scenario(self, planned: PlannedScenario) -> None:
        from apr_qa.scenarios import instantiate

        job = self.job
        modality = job.cell.modality or "run"
        instance = instantiate(planned, job.playbook, modality)
        gate = instance.gate or scenario_gate(modality, job.cell.backend or "cpu")
        info = scenario_info(planned, instance)
        scenario = planned.scenario
        max_tokens = instance.max_tokens
        if max_tokens is None:
            max_tokens = job.playbook.matrix.max_tokens
        timeout_s = (
            (scenario.timeout_ms / 1000) if scenario and scenario.timeout_ms else self.timeout_s
        )
        ask = functools.partial(
            self.ask,
            instance,
            seed=planned.seed,
            max_tokens=max_tokens,
            timeout_s=timeout_s,
            what=f"scenario {planned.name}",
            basic=planned.kind == "explicit",
        )
        first = ask()
        second = ask() if instance.repeat > 1 and isinstance(first, Generation) else None
        lost = first if isinstance(first, Lost) else second if isinstance(second, Lost) else None
        if lost is not None:
            metrics = {"waited_s": lost.waited_s, "timeout_s": timeout_s}
            self.record(
                gate,
                lost.outcome,
                lost.reason,
                scenario=info,
                expected=instance.expected,
                metrics=metrics,
                halted=HaltKind.INTERRUPTED if lost.outcome is Outcome.SKIPPED else None,
            )
            return
        if isinstance(first, Refused) and first.unasked:
            # A prompt the model cannot take in asks it nothing: skipped, never falsified
            # (docs/scenarios.md, "Prompts longer than the context").
            self.record(
                gate,
                Outcome.SKIPPED,
                f"not run: {first.error}",
                scenario=info,
                expected=instance.expected,
            )
            return
        if isinstance(first, Refused):
            self.record(
                gate,
                Outcome.FALSIFIED,
                f"the backend refused the scenario: {first.error}",
                scenario=info,
                expected=instance.expected,
            )
            return
        assert isinstance(first, Generation)
        text = first.text
        verdict = self._judge(instance, first, second)
        metrics = generation_metrics(first)
        garbage = self._garbage(instance, text)
        reason = verdict.reason
        if garbage is not None:
            # Counted towards G4 (an evidence-stage check reads this metric back).
            metrics["garbage"] = 0.0 if garbage.passed or garbage.skipped else 1.0
            if metrics["garbage"] and instance.oracle.name != "garbage":
                reason = f"{reason}; {garbage.reason}"
        counterexample = None
        if verdict.outcome is Outcome.FALSIFIED and planned.kind == "generated":
            counterexample = self._shrink(instance, planned.seed, max_tokens, timeout_s)
        self.record(
            gate,
            verdict.outcome,
            reason,
            scenario=info,
            output=text,
            expected=instance.expected,
            metrics=metrics,
            counterexample=counterexample,
        )

    def _garbage(self, instance: Instance, text: str) -> Verdict | None:
        """The garbage verdict on an output, or None when it does not count for G4
        (an empty answer to an empty prompt is the right answer, not an output)."""
        if self.garbage_oracle is None or not ((instance.text or "").strip() or text.strip()):
            return None
        return self.garbage_oracle(text, prompt=instance.text)

    def _oracle(self, instance: Instance) -> oracles.Oracle:
        spec = instance.oracle
        key = f"{spec.name}:{sorted(spec.options.items())!r}"
        oracle = self._oracles.get(key)
        if oracle is None:
            oracle = self._oracles[key] = oracles.create(spec.name, dict(spec.options))
        return oracle

    def _judge(self, instance: Instance, gen: Generation, second: Asked | None) -> Verdict:
        """The instance's oracle on the output; a repeated scenario gives it the second
        generation as ``expected`` (so the determinism oracle decides, empty or not)."""
        if instance.repeat > 1:
            if isinstance(second, Refused):
                return Verdict.fail(f"the repeated generation was refused: {second.error}")
            again = second.text if isinstance(second, Generation) else None
            return self._oracle(instance)(gen.text, prompt=instance.text, expected=again)
        return self._oracle(instance)(gen.text, prompt=instance.text, expected=instance.expected)

    def _shrink(
        self, instance: Instance, seed: int, max_tokens: int, timeout_s: float
    ) -> str | None:
        """Search for the minimal failing input of this family (hypothesis), within a budget."""
        from apr_qa.scenarios import shrink

        def fails(candidate: Instance) -> bool:
            asked = self.ask(
                candidate,
                seed=seed,
                max_tokens=max_tokens,
                timeout_s=timeout_s,
                what="shrinking",
                basic=False,
            )
            if isinstance(asked, Lost):
                return False
            if isinstance(asked, Refused):
                return not asked.unasked  # a candidate too long to ask shows nothing
            return self._judge(candidate, asked, None).outcome is Outcome.FALSIFIED

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


def _garbage_options(vocab: Vocab) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if vocab.pad_token:
        options["pad_token"] = vocab.pad_token
    specials = [t for t in vocab.special_tokens if t]
    if specials:
        options["special_tokens"] = specials
    return options
