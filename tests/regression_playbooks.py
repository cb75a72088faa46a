"""Scenario YAML for the regression tests' playbooks, from a fixture's own prompts."""

from __future__ import annotations

import json

from apr_qa.fixtures import FixturePrompt, load_prompts

__all__ = ["fixture_scenarios"]


def fixture_scenarios(fixture: str, per_modality: int = 6) -> str:
    """The fixture's own prompts, spread over their kinds (sums, capitals, code, greeting)
    in each modality, each held to the whole answer the fixture was trained to give."""
    lines: list[str] = []
    for modality in ("run", "chat"):
        kinds: dict[str, list[FixturePrompt]] = {}
        for p in load_prompts(fixture):
            if p.modality == modality:
                kinds.setdefault(p.id.split("-")[0], []).append(p)
        per_kind = -(-per_modality // len(kinds))
        for members in kinds.values():
            for p in members[:: max(1, len(members) // per_kind)][:per_kind]:
                spec: dict[str, object] = {"name": p.id, "modalities": [modality]}
                if modality == "run":
                    spec["prompt"] = p.prompt
                else:
                    spec["messages"] = p.chat_messages()
                spec.update(oracle="exact", value=p.expected)
                lines.append("  - " + json.dumps(spec))
    return "\n".join(lines) + "\n"
