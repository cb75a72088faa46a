"""The original's cross-project bug patterns that have evidence in apr-qa: here the
path-traversal one (F-SEC-PATH-001 in the original), which G0 decides: a sharded
checkpoint whose index names a shard outside its folder reads another model's
weights. docs/gates.md maps every pattern to the gate that gives it evidence.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from apr_qa.checks.integrity import check_integrity
from apr_qa.fixtures import fixture_path
from apr_qa.models.readers_safetensors import INDEX_NAME


def _sharded(root: Path, shard: str) -> Path:
    """tiny-qa as a one-shard checkpoint whose index names ``shard``."""
    checkpoint = root / "model"
    shutil.copytree(fixture_path("tiny-qa"), checkpoint)
    from apr_qa.models.readers import open_model

    with open_model(checkpoint) as reader:
        names = [i.name for i in reader.tensor_infos()]
    (checkpoint / INDEX_NAME).write_text(
        json.dumps({"metadata": {}, "weight_map": dict.fromkeys(names, shard)})
    )
    return checkpoint


def _g0_001(checkpoint: Path) -> tuple[bool | None, str]:
    finding = next(f for f in check_integrity(checkpoint) if f.gate == "G0-INTEGRITY-001")
    return finding.passed, finding.reason


def test_a_shard_outside_the_checkpoint_falsifies_g0(tmp_path: Path) -> None:
    checkpoint = _sharded(tmp_path, "../elsewhere/model.safetensors")
    (tmp_path / "elsewhere").mkdir()
    shutil.move(checkpoint / "model.safetensors", tmp_path / "elsewhere" / "model.safetensors")
    passed, reason = _g0_001(checkpoint)
    assert passed is False and "outside the checkpoint folder" in reason


def test_a_shard_inside_the_checkpoint_holds(tmp_path: Path) -> None:
    passed, reason = _g0_001(_sharded(tmp_path, "model.safetensors"))
    assert passed is True, reason
