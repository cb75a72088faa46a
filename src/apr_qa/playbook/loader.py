"""Load a playbook file into a typed `Playbook`, normalizing both dialects once."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from apr_qa.errors import PlaybookError, Problem, UsageError
from apr_qa.playbook.model import (
    DEFAULT_FORMATS,
    DEFAULT_GGUF_QUANT,
    EMPTY,
    Device,
    FailurePolicy,
    Format,
    Gates,
    Matrix,
    Modality,
    ModelSpec,
    OracleSpec,
    Playbook,
    Scenario,
    SourceRef,
    frozen_map,
)
from apr_qa.playbook.source import Path_, Source, read_source
from apr_qa.playbook.validate import check

__all__ = ["DEFAULTS", "load_playbook"]

DEFAULTS: Mapping[str, Any] = {
    "modalities": ("run", "chat"),
    "backends": ("cpu",),
    "scenario_count_without_scenarios": 10,
    "seed": 42,
    "timeout_ms": 60_000,
    "max_tokens": 64,
    "temperature": 0.0,
}

_POLICIES = {
    "stop-on-p0": "stop-on-p0",
    "stop_on_p0": "stop-on-p0",
    "fail-fast": "fail-fast",
    "fail_fast": "fail-fast",
    "stop-on-first": "fail-fast",
    "stop_on_first": "fail-fast",
    "collect-all": "collect-all",
    "collect_all": "collect-all",
}
# Options a scenario may give at its top level that belong to its oracle.
_ORACLE_OPTIONS = (
    "language", "languages", "pattern", "flags", "value", "values", "schema", "tolerance",
    "case_sensitive", "strip", "pad_token", "special_tokens", "max_repetition_ratio",
    "min_unique_chars", "min_relevance", "oracles",
)  # fmt: skip
# G1-G3 hold by construction of a run (it loads, answers, does not crash); only
# G0 (integrity) and G4 (garbage) are checks a playbook may turn off.
_ALWAYS_ON = ("g1_model_loads", "g2_basic_inference", "g3_no_crashes")
# Format versions: this format is 1.x ("1", "1.0", 1.0, "1.x"); the original dialect
# writes its own playbook revision as three numbers, 1.0.0 to 2.0.0 in its published playbooks.
_VERSION = re.compile(r"(?P<major>[0-9]{1,4})(?:\.(?:x|[0-9]{1,4}(?:\.(?P<patch>[0-9]{1,4}))?))?")
_SECTIONS = (
    "differential_tests",
    "profile_ci",
    "trace_payload",
    "serve",
    "runtimes",
    "certification",
    "regression",
    "golden",
)


def _name_from(model_id: str) -> str:
    tail = model_id.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^a-z0-9._-]+", "-", tail.lower()).strip("-") or "model"


class _Builder:
    def __init__(self, source: Source, data: dict[str, Any], model_path: Path | None) -> None:
        self.source = source
        self.data = data
        self.model_path = model_path
        self.problems: list[Problem] = []
        self.warnings: list[str] = []

    def ref(self, at: Path_) -> SourceRef:
        where = self.source.where(at)
        return SourceRef(str(self.source.path), where.line, where.col)

    def model(self) -> ModelSpec:
        raw = self.data.get("model")
        if isinstance(raw, str):
            raw = {"hf_repo": raw}
        raw = dict(raw or {})
        repo = raw.get("hf_repo") or raw.get("id")
        path: Path | None = None
        if self.model_path is not None:
            path = self.model_path
        elif raw.get("path"):
            path = Path(raw["path"])
            if not path.is_absolute():
                path = (self.source.path.parent / path).resolve()
        stands_in_for = None
        if self.model_path is not None:
            # Label results with the model actually tested, never the one it replaces.
            stands_in_for, repo = repo, None
            given = self.model_path
            model_id: str | None = (given.stem if given.is_file() else given.name) or str(given)
        else:
            model_id = repo or (path.name if path else None)
        if model_id is None:
            self.problems.append(
                self.source.problem(("model",), "model: give 'id', 'hf_repo' or 'path'")
            )
            model_id = "unknown"
        expected = {k: v for k, v in raw.items() if k.startswith("expected_")}
        return ModelSpec(
            id=model_id,
            stands_in_for=stands_in_for,
            hf_repo=repo,
            revision=raw.get("revision"),
            path=path,
            files=frozen_map(raw.get("files")),
            family=raw.get("family"),
            size_category=raw.get("size_category"),
            trust_remote_code=bool(raw.get("trust_remote_code", False)),
            expected_shape=frozen_map(expected),
        )

    def matrix(self, has_scenarios: bool) -> Matrix:
        tm: dict[str, Any] = self.data.get("test_matrix") or {}
        raw_model = self.data.get("model")
        model: dict[str, Any] = raw_model if isinstance(raw_model, dict) else {}
        formats = tm.get("formats") or model.get("formats") or DEFAULT_FORMATS
        quants = tm.get("quantizations") or model.get("quantizations") or (DEFAULT_GGUF_QUANT,)
        default_count = 0 if has_scenarios else DEFAULTS["scenario_count_without_scenarios"]
        return Matrix(
            modalities=tuple(Modality(m) for m in tm.get("modalities") or DEFAULTS["modalities"]),
            backends=tuple(Device(b) for b in tm.get("backends") or DEFAULTS["backends"]),
            formats=tuple(Format(f) for f in formats),
            quantizations=tuple(quants),
            scenario_count=int(tm.get("scenario_count", default_count)),
            seed=int(tm.get("seed", DEFAULTS["seed"])),
            timeout_ms=int(tm.get("timeout_ms", DEFAULTS["timeout_ms"])),
            max_tokens=int(tm.get("max_tokens", DEFAULTS["max_tokens"])),
            temperature=float(tm.get("temperature", DEFAULTS["temperature"])),
        )

    def oracle(
        self, raw: Any, extra: Mapping[str, Any], at: Path_, expected: Any = None
    ) -> OracleSpec | None:
        """The oracle spec at ``at``; a scenario's ``expected`` (at ``at``'s sibling) may be its answer."""
        if raw is None:
            return None
        if isinstance(raw, str):
            name, options = raw, dict(extra)
        else:
            options = {k: v for k, v in raw.items() if k not in ("type", "name", "config")}
            options.update(raw.get("config") or {})
            options.update(extra)
            name = raw.get("type") or raw.get("name") or ""
            if not name:
                self.problems.append(
                    self.source.problem(at, "oracle: give 'type' (the oracle name)")
                )
                return None
        if expected is not None:
            try:
                options = _with_expected(name, options, expected)
            except UsageError as exc:
                self.problems.append(self.source.problem((*at[:-1], "expected"), str(exc)))
                return None
        spec = OracleSpec(name, frozen_map(options))
        for message in _oracle_problems(spec, expected):
            text = message if message.startswith("oracle") else f"oracle '{name}': {message}"
            # An objection to the expected value points at it, when the scenario gives one.
            about = expected is not None and "expected value" in text
            where = (*at[:-1], "expected") if about else at
            self.problems.append(self.source.problem(where, text))
        return spec

    def scenarios(self) -> tuple[Scenario, ...]:
        out: list[Scenario] = []
        seen: dict[str, int] = {}
        for i, raw in enumerate(self.data.get("scenarios") or []):
            at: Path_ = ("scenarios", i)
            name = raw["name"]
            if name in seen:
                self.problems.append(
                    self.source.problem(
                        (*at, "name"),
                        f"duplicate scenario name '{name}' (first at line {seen[name]})",
                    )
                )
                continue
            seen[name] = self.ref(at).line
            prompt, messages = raw.get("prompt"), raw.get("messages")
            if prompt is None and messages is None:
                if "command" in raw:
                    continue  # the original's shell-command scenarios: warned as unsupported
                self.problems.append(
                    self.source.problem(
                        at, f"scenario '{name}' has no prompt (give 'prompt' or 'messages')"
                    )
                )
                continue
            if prompt is not None and messages is not None:
                self.problems.append(
                    self.source.problem(
                        at, f"scenario '{name}': give 'prompt' or 'messages', not both"
                    )
                )
                continue
            extra = {k: raw[k] for k in _ORACLE_OPTIONS if k in raw}
            out.append(
                Scenario(
                    name=name,
                    source=self.ref(at),
                    prompt=prompt,
                    messages=tuple(frozen_map(m) for m in messages) if messages else None,
                    system=raw.get("system"),
                    oracle=self.oracle(
                        raw.get("oracle"), extra, (*at, "oracle"), raw.get("expected")
                    ),
                    expected=raw.get("expected"),
                    max_tokens=raw.get("max_tokens"),
                    temperature=raw.get("temperature"),
                    timeout_ms=raw.get("timeout_ms"),
                    modalities=tuple(Modality(m) for m in raw["modalities"])
                    if raw.get("modalities")
                    else None,
                    tags=tuple(raw.get("tags") or ()),
                )
            )
        prompts = (self.data.get("test_matrix") or {}).get("prompts") or []
        for i, prompt in enumerate(prompts):
            name = f"prompt-{i + 1}"
            out.append(
                Scenario(name=name, source=self.ref(("test_matrix", "prompts", i)), prompt=prompt)
            )
        return tuple(out)

    def gates(self) -> Gates:
        raw: dict[str, Any] = self.data.get("gates") or {}
        rate = raw.get("g4_max_garbage_rate", Gates.g4_max_garbage_rate)
        probe = raw.get("g2_probe") or ()
        probes = (probe,) if isinstance(probe, str) else tuple(probe)
        valued = ("g4_max_garbage_rate", "g2_probe")
        flags = {k: bool(v) for k, v in raw.items() if k not in valued}
        for key in _ALWAYS_ON:
            if flags.get(key) is False:
                gate = key[:2].upper()
                self.warnings.append(
                    f"gates.{key}: false is ignored: {gate} cannot be switched off; "
                    "the gateway still runs"
                )
                flags[key] = True
        return Gates(**flags, g4_max_garbage_rate=float(rate), g2_probe=probes)

    def version(self) -> str:
        text = str(self.data.get("version", "1.0")).strip()
        match = _VERSION.fullmatch(text)
        readable = match is not None and (
            match["major"] == "1" or (match["patch"] is not None and match["major"] in ("1", "2"))
        )
        if not readable:
            self.problems.append(
                self.source.problem(
                    ("version",),
                    f"version: {text[:40]!r} is not a version this apr-qa reads: this format "
                    "is 1.x (write 1.0); the original dialect's revisions 1.x.y and 2.x.y load too",
                )
            )
        return text

    def runtimes(self) -> None:
        """Command templates are checked now: a typo is a located error, not a failed run."""
        from apr_qa.runtimes import runtime_problems

        for at, message in runtime_problems(self.data.get("runtimes") or {}):
            self.problems.append(self.source.problem(("runtimes", *at), message))

    def build(self) -> Playbook:
        self.runtimes()
        model = self.model()
        scenarios = self.scenarios()
        oracles = tuple(
            spec
            for i, item in enumerate(self.data.get("oracles") or [])
            if (spec := self.oracle(item, EMPTY, ("oracles", i))) is not None
        )
        policy = _POLICIES[self.data.get("failure_policy", "stop-on-p0")]
        metadata = dict(self.data.get("metadata") or {})
        if "tier" in self.data:
            metadata.setdefault("tier", self.data["tier"])
        falsification = tuple(g["id"] for g in self.data.get("falsification_gates") or [])
        version = self.version()
        return Playbook(
            path=self.source.path,
            sha256=self.source.sha256,
            name=self.data.get("name") or _name_from(model.id),
            version=version,
            description=self.data.get("description", ""),
            model=model,
            matrix=self.matrix(bool(scenarios)),
            scenarios=scenarios,
            gates=self.gates(),
            oracles=oracles,
            failure_policy=FailurePolicy(policy),
            falsification_gates=falsification,
            metadata=frozen_map(metadata),
            sections=frozen_map({k: self.data[k] for k in _SECTIONS if k in self.data}),
            source=SourceRef(str(self.source.path), 1, 1),
        )


def _with_expected(name: str, options: dict[str, Any], expected: Any) -> dict[str, Any]:
    from apr_qa import oracles

    return oracles.with_expected(name, options, expected)


def _oracle_problems(spec: OracleSpec, expected: Any = None) -> list[str]:
    from apr_qa import oracles
    from apr_qa import scenarios as _scenarios  # noqa: F401  (registers same_tokens)

    return list(oracles.validate_spec(spec.name, dict(spec.options), expected=expected))


def load_playbook(path: Path, *, model_path: Path | None = None) -> Playbook:
    """Read, validate and normalize one playbook.

    ``model_path`` stands in for (or overrides) the playbook's model, as
    ``--model-path`` does on the command line. Raises PlaybookError carrying
    every located problem; warnings (accepted but unsupported keys) ride on
    the returned playbook.
    """
    source = read_source(path)
    data = source.data
    if model_path is not None and "model" not in data:
        data = {**data, "model": {"path": str(model_path)}}
        source = Source(source.path, source.text, source.sha256, data, source.values, source.keys)
    checked = check(source)
    if checked.problems:
        raise PlaybookError(checked.problems)
    builder = _Builder(source, checked.data, model_path)
    playbook = builder.build()
    if builder.problems:
        raise PlaybookError(builder.problems)
    return _with_warnings(playbook, (*checked.warnings, *builder.warnings))


def _with_warnings(playbook: Playbook, warnings: tuple[str, ...]) -> Playbook:
    from dataclasses import replace

    return replace(playbook, warnings=warnings)
