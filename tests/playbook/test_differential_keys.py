"""The differential_tests entries that act now load without 'accepted, not
supported'; the ones nothing runs yet still say so; thresholds written the
original's way (1e-5, which YAML 1.1 reads as a string) arrive as numbers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from apr_qa.playbook import load_playbook

HEAD = """name: t
model: {id: org/t}
test_matrix: {modalities: [run], backends: [cpu], formats: [safetensors, gguf]}
"""


def test_acting_entries_load_quietly_with_numbers(write: Callable[..., Path]) -> None:
    playbook = load_playbook(
        write(
            HEAD
            + """differential_tests:
  compare_with: [other.gguf]
  tensor_diff: {enabled: "true", filter: "embed,lm_head", tolerance: 1e-5, gates: [F-ROSETTA-DIFF-001]}
  inference_compare: {prompt: "What is 2+2?", max_tokens: 5, tolerance: {q4_0: 1e-2}, min_top1_agreement: 0.9}
  tokenizer_parity: {texts: ["12345"], enabled: false}
  fingerprint: {enabled: "true", tensors: all, stats: [mean, std, checksum], gates: [F-ROSETTA-FP-001]}
  validate_stats: {reference: ref.json, tolerance: {layernorm: 1e-3, embedding: 0.1}}
"""
        )
    )
    assert playbook.warnings == ()
    diff = playbook.sections["differential_tests"]
    assert diff["tensor_diff"]["tolerance"] == 1e-5 and diff["tensor_diff"]["enabled"] is True
    assert diff["inference_compare"]["tolerance"]["q4_0"] == 0.01
    assert diff["tokenizer_parity"]["enabled"] is False
    assert diff["validate_stats"]["tolerance"]["layernorm"] == 0.001


def test_entries_nothing_runs_still_warn(write: Callable[..., Path]) -> None:
    playbook = load_playbook(
        write(HEAD + "differential_tests:\n  format_validation: {enabled: true}\n")
    )
    assert playbook.warnings == ("accepted, not supported: differential_tests.format_validation",)
