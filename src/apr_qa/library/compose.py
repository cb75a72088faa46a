"""Compose a playbook from a template and a surveyed model (what ``apr-qa init`` writes).

The template gives the shape (matrix, sections, policy); the model gives the
rest: its ``model`` block (a local path relative to the written file, or the
repo id; the GGUF files found beside a local checkpoint, per quantization),
its explicit scenarios in its prompt form (:mod:`apr_qa.library.prompts`), and
the thresholds of its size (:mod:`apr_qa.library.thresholds`). A base model,
which has no chat template to frame a conversation, is asked in ``run`` only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from apr_qa.facts import format_parameters
from apr_qa.library.catalogue import Template, get_template
from apr_qa.library.prompts import PromptForm, prompts_for, scenario_yaml
from apr_qa.library.survey import Survey
from apr_qa.library.thresholds import SizeThresholds, thresholds_for

__all__ = ["Composed", "compose", "default_template", "render"]

_DEFAULT_TEMPLATE = {"tiny": "full", "small": "ci", "medium": "ci", "large": "ci"}
_NEEDS_CHAT_TEMPLATE = ("chat", "serve")
# Widest first, as the templates list them.
_QUANT_ORDER = ("f32", "bf16", "f16", "q8_0", "q6_k", "q5_k_m", "q5_0", "q4_k_m", "q4_0")


def default_template(size_category: str) -> str:
    """The template ``init`` picks by size: what a CPU runner affords.

    Under 1B parameters everything is cheap: ``full``. Up to 14B, ``ci`` (two
    artifacts, a few dozen scenarios). Larger models get ``quick`` on a CPU; run
    ``mvp`` or ``full`` on GPU runners, sharded.
    """
    return _DEFAULT_TEMPLATE.get(size_category, "quick")


@dataclass(frozen=True)
class Composed:
    """A composed playbook: its data (in template key order) and the header comment."""

    data: Mapping[str, Any]
    header: tuple[str, ...]
    template: str


def _slug(model_id: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", model_id.rsplit("/", 1)[-1].lower()).strip("-") or "model"


def _model_block(survey: Survey, output_dir: Path, quants: list[str]) -> dict[str, Any]:
    block: dict[str, Any] = {"id": survey.model_id}
    if survey.path is not None:
        block["path"] = Path(os.path.relpath(survey.path, output_dir.resolve())).as_posix()
    else:
        block["hf_repo"] = survey.hf_repo
    files = {q: survey.ggufs[q] for q in quants if q in survey.ggufs}
    if files:
        block["files"] = files
    block["family"] = survey.family
    block["size_category"] = survey.size_category
    return block


def _scenarios(survey: Survey, modalities: list[str]) -> list[dict[str, Any]]:
    forms: list[PromptForm] = []
    if survey.chat_template and set(modalities) & set(_NEEDS_CHAT_TEMPLATE):
        forms.append("chat")
    if "run" in modalities:
        forms.append("completion")
    return [
        scenario_yaml(prompt, form, system_role=survey.system_role)
        for form in forms
        for prompt in prompts_for(form, code=survey.code)
    ]


def _per_quant(limits: Mapping[str, float], quants: list[str]) -> dict[str, float]:
    return {q: limits[q] for q in quants if q in limits}


def _apply_thresholds(data: dict[str, Any], limits: SizeThresholds, quants: list[str]) -> None:
    matrix = data["test_matrix"]
    matrix["timeout_ms"] = limits.timeout_ms
    matrix["max_tokens"] = limits.max_tokens
    assertions = data.get("profile_ci", {}).get("assertions")
    if isinstance(assertions, dict):
        assertions["min_throughput_cpu"] = limits.min_throughput_cpu
        if "min_throughput_gpu" in assertions:
            assertions["min_throughput_gpu"] = limits.min_throughput_gpu
        assertions["max_ttft_ms"] = limits.max_ttft_ms
    compare = data.get("differential_tests", {}).get("inference_compare")
    if isinstance(compare, dict):
        kl, top1 = _per_quant(limits.kl_ceiling, quants), _per_quant(limits.top1_floor, quants)
        if kl:
            compare["tolerance"] = kl
        if top1:
            compare["min_top1_agreement"] = top1


def _quantizations(survey: Survey, template: list[str]) -> list[str]:
    """The template's GGUF quantizations, or, for a local checkpoint with GGUF files
    beside it, those files' (testing what is shipped rather than converting more)."""
    if survey.path is None or not survey.ggufs:
        return template
    return sorted(
        survey.ggufs, key=lambda q: (_QUANT_ORDER.index(q) if q in _QUANT_ORDER else 99, q)
    )


def compose(survey: Survey, output: Path, template: str | None = None) -> Composed:
    """The playbook ``init`` writes to ``output`` for the surveyed model."""
    chosen: Template = get_template(template or default_template(survey.size_category))
    data: dict[str, Any] = yaml.safe_load(chosen.text)
    matrix = data["test_matrix"]
    if not survey.chat_template:
        matrix["modalities"] = [m for m in matrix["modalities"] if m not in _NEEDS_CHAT_TEMPLATE]
    quants: list[str] = []
    if "gguf" in matrix["formats"]:
        quants = _quantizations(survey, matrix["quantizations"])
        matrix["quantizations"] = quants
    data["name"] = f"{_slug(survey.model_id)}-{chosen.name}"
    data["model"] = _model_block(survey, output.parent, quants)
    keys = list(data)
    data["scenarios"] = _scenarios(survey, matrix["modalities"])
    # Scenarios read best right after the matrix they run in.
    order = [
        *keys[: keys.index("test_matrix") + 1],
        "scenarios",
        *keys[keys.index("test_matrix") + 1 :],
    ]
    data = {k: data[k] for k in order}
    limits = thresholds_for(survey.size_category)
    _apply_thresholds(data, limits, quants)
    return Composed(data, _header(survey, chosen, limits), chosen.name)


def _header(survey: Survey, template: Template, limits: SizeThresholds) -> tuple[str, ...]:
    how = "counted from its tensors" if survey.counted else "computed from config.json"
    form = (
        "it has a chat template: chat and serve scenarios are conversations, run scenarios completions"
        if survey.chat_template
        else "it has no chat template: completion prompts, run modality only"
    )
    return (
        *(line for line in template.header if not line.lstrip().startswith("apr-qa ")),
        f"Written by `apr-qa init` from the {template.name} template for {survey.model_id}:",
        f"  architecture {survey.architecture}, family {survey.family},"
        f" {format_parameters(survey.parameters)} parameters ({how}), size {survey.size_category};",
        f"  tokenizer {survey.tokenizer}; {form}"
        + (" (a code model: code prompts first)." if survey.code else "."),
        f"  Thresholds for size {survey.size_category}: timeout {limits.timeout_ms} ms,"
        f" max_tokens {limits.max_tokens}.",
        "Edit freely: `apr-qa validate` and `apr-qa plan` check it; `apr-qa templates` lists the others.",
    )


class _Dumper(yaml.SafeDumper):
    """Block mappings, short lists of scalars inline (``[run, chat]``), multi-line
    prompts as literal blocks: YAML a person edits."""


def _list(dumper: yaml.SafeDumper, items: list[Any]) -> yaml.Node:
    flow = all(isinstance(i, str | int | float) for i in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(list, _list)
_Dumper.add_representer(str, _str)


def render(composed: Composed) -> str:
    """The playbook as YAML text, its header as comments."""
    header = "".join(f"# {line}".rstrip() + "\n" for line in composed.header)
    body = yaml.dump(
        dict(composed.data),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return header + body
