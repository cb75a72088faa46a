"""The mutant corpus: every mutant builds from the committed fixtures, leaves them
untouched, and really has its defect.

Each defect is shown by the same check run twice: on the clean fixture it holds, on
the mutant it breaks (a check that cannot tell them apart proves nothing). The
corpus is built once per module into a temporary folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors import SafetensorError

import apr_qa.fixtures
from apr_qa.errors import UsageError
from apr_qa.fixtures.prompts import FixturePrompt, parse_prompts
from apr_qa.gates import lookup
from apr_qa.models.architectures import Dims, architecture
from apr_qa.models.readers import open_model
from apr_qa.testing.fixtures.specs import FIXTURE_SPECS
from apr_qa.testing.mutants import EFFECTS, MUTANTS, applies, build_mutant

FIXTURES = Path(apr_qa.fixtures.__file__).parent / "models"
DOC = Path(__file__).resolve().parents[2] / "docs" / "mutants.md"
# Text the two pre-tokenizers split differently (digit runs) or that needs merges.
PROBES = (
    "What is 12 + 30?",
    "12345 678 9",
    "The capital of France is Paris.",
    "def add(a, b):\n    return a + b",
    "  two  spaces,\t\ttabs\n\n\nand newlines  ",
)
# prompts.json prompts asked per modality: spread over the contract, enough for a
# broken model to miss some, few enough to keep the module fast.
PER_MODALITY = 8


def _fixture(name: str) -> Path:
    path = FIXTURES / name
    assert (path / "config.json").is_file(), f"fixture {name} is not committed at {path}"
    return path


def _cases() -> list[tuple[str, str]]:
    cases = []
    for fixture in FIXTURE_SPECS:
        for name in MUTANTS:
            config_path = FIXTURES / fixture / "config.json"
            # A missing fixture keeps every case, which then fails on the missing fixture.
            if not config_path.is_file() or applies(name, FIXTURES / fixture):
                cases.append((fixture, name))
    return cases


CASES = _cases()
IDS = [f"{f}:{m}" for f, m in CASES]


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Every applicable mutant, built once, with the fixtures' hashes around the build."""
    out = tmp_path_factory.mktemp("mutants")
    names = sorted({f for f, _ in CASES})
    present = [n for n in names if (FIXTURES / n / "config.json").is_file()]
    before = {n: _tree_hash(FIXTURES / n) for n in present}
    built: dict[tuple[str, str], Path] = {}
    errors: dict[tuple[str, str], str] = {}
    for fixture, name in CASES:
        if fixture in present:
            try:
                built[(fixture, name)] = build_mutant(name, FIXTURES / fixture, out / fixture)
            except Exception as exc:  # reported by the test of that mutant
                errors[(fixture, name)] = f"{type(exc).__name__}: {exc}"
    after = {n: _tree_hash(FIXTURES / n) for n in present}
    yield {"built": built, "errors": errors, "before": before, "after": after, "out": out}


def _artifact(corpus: dict[str, Any], fixture: str, name: str) -> Path:
    _fixture(fixture)
    assert (fixture, name) not in corpus["errors"], corpus["errors"].get((fixture, name))
    path: Path = corpus["built"][(fixture, name)]
    assert path.exists()
    return path


def _clean(fixture: str, name: str) -> Path:
    """The clean artifact a mutant is compared with: the checkpoint, or its GGUF."""
    root = _fixture(fixture)
    if MUTANTS[name].base_format == "safetensors":
        return root
    quant = "q8_0" if name == "gguf-quant-scales-corrupt" else "f32"
    return _gguf(root, quant)


def _gguf(root: Path, quant: str) -> Path:
    found = sorted(p for p in root.glob("*.gguf") if p.stem.lower().endswith(f"-{quant}"))
    assert found, f"{root} has no {quant} GGUF"
    return found[0]


# --- the table ---------------------------------------------------------------


def test_table_is_well_formed() -> None:
    assert len(MUTANTS) >= 20
    for name, mutant in MUTANTS.items():
        assert mutant.name == name
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name), name
        assert mutant.description and mutant.gates, name
        assert mutant.base_format in ("safetensors", "gguf"), name
        assert mutant.effect in EFFECTS, name
        unknown = [g for g in mutant.gates if lookup(g) is None]
        assert not unknown, f"{name}: gates not in the catalogue: {unknown}"
        assert len(set(mutant.gates)) == len(mutant.gates), name


def test_every_effect_is_exercised() -> None:
    assert {m.effect for m in MUTANTS.values()} == set(EFFECTS)


def test_every_mutant_applies_to_some_fixture() -> None:
    assert {m for _, m in CASES} == set(MUTANTS)


def _doc_rows() -> dict[str, tuple[str, str, str, str]]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`") and cells[0] != "`name`":
            name, description, base, gates, effect = cells
            rows[name.strip("`")] = (description, base, gates, effect.strip("`"))
    return rows


def _doc_gate(gate_id: str) -> str:
    """How the table names a gate: a planned one says what will record it."""
    gate = lookup(gate_id)
    assert gate is not None, gate_id
    return gate_id if gate.planned is None else f"{gate_id} (planned: {gate.planned})"


def test_doc_table_equals_mutants() -> None:
    expected = {
        m.name: (m.description, m.base_format, ", ".join(map(_doc_gate, m.gates)), m.effect)
        for m in MUTANTS.values()
    }
    assert _doc_rows() == expected


def test_unknown_or_inapplicable_mutant_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown mutant"):
        build_mutant("no-such-mutant", _fixture("tiny-qwen2"), tmp_path)
    assert not applies("layers-swapped", _fixture("tiny-qwen2"))  # one layer only
    with pytest.raises(UsageError, match="does not apply"):
        build_mutant("layers-swapped", _fixture("tiny-qwen2"), tmp_path)


def test_refuses_to_write_inside_the_fixture() -> None:
    root = _fixture("tiny-llama")
    with pytest.raises(UsageError, match="never written inside"):
        build_mutant("nan-weight", root, root / "mutants")
    assert not (root / "mutants").exists()


# --- build and source ----------------------------------------------------------


def test_sources_untouched(corpus: dict[str, Any]) -> None:
    assert corpus["before"], "no fixture was present to mutate"
    assert corpus["after"] == corpus["before"]


@pytest.mark.parametrize(("fixture", "name"), CASES, ids=IDS)
def test_builds(corpus: dict[str, Any], fixture: str, name: str) -> None:
    path = _artifact(corpus, fixture, name)
    assert path.parent == corpus["out"] / fixture
    if MUTANTS[name].base_format == "gguf":
        assert path.suffix == ".gguf" and path.is_file()
    else:
        assert path.is_dir() and (path / "config.json").is_file()
    # A scratch conversion never outlives the build.
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".scratch")]


# --- reality of each defect ----------------------------------------------------


def _cases_with(effect: str) -> list[Any]:
    return [pytest.param(f, m, id=f"{f}:{m}") for f, m in CASES if MUTANTS[m].effect == effect]


def _cases_naming(gate: str) -> list[Any]:
    return [pytest.param(f, m, id=f"{f}:{m}") for f, m in CASES if gate in MUTANTS[m].gates]


def _nonfinite(path: Path) -> list[str]:
    with open_model(path) as model:
        return [i.name for i, a in model.iter_tensors() if not np.isfinite(a).all()]


def _all_zero(path: Path) -> list[str]:
    """Tensors whose values are all zero; for a norm, whose scale is (Gemma stores
    scale - 1 in safetensors)."""
    config = json.loads((path / "config.json").read_text()) if path.is_dir() else {}
    arch = architecture(config.get("model_type"))
    offset = float(arch.scale_offset("safetensors") or 0.0)
    with open_model(path) as model:
        return [
            i.name
            for i, a in model.iter_tensors()
            if not np.any(a + offset if arch.is_norm("safetensors", i.name) else a)
        ]


@pytest.mark.parametrize(("fixture", "name"), _cases_with("nonfinite_tensor"))
def test_nonfinite_tensor(corpus: dict[str, Any], fixture: str, name: str) -> None:
    assert _nonfinite(_clean(fixture, name)) == []
    assert len(_nonfinite(_artifact(corpus, fixture, name))) == 1


@pytest.mark.parametrize(("fixture", "name"), _cases_with("zero_tensor"))
def test_zero_tensor(corpus: dict[str, Any], fixture: str, name: str) -> None:
    assert _all_zero(_clean(fixture, name)) == []
    assert _all_zero(_artifact(corpus, fixture, name))


def _implied_shapes(config: dict[str, Any]) -> dict[str, tuple[int | None, ...]]:
    """Every tensor the architecture table says a config implies, with its shape (HF names)."""
    arch = architecture(config["model_type"])
    heads = config["num_attention_heads"]
    h = config["hidden_size"]
    dims = Dims(
        vocab=config["vocab_size"],
        hidden=h,
        heads=heads,
        kv_heads=config.get("num_key_value_heads") or heads,
        head_dim=config.get("head_dim") or h // heads,
        ffn=config["intermediate_size"],
    )
    tied = config.get("tie_word_embeddings", arch.tied_by_default)
    shapes = {
        r.name("safetensors"): dims.shape(r)[0]
        for r in arch.roles(per_layer=False)
        if not (tied and r.role == "output")
    }
    for i in range(config["num_hidden_layers"]):
        shapes |= {r.name("safetensors", i): dims.shape(r)[0] for r in arch.roles(per_layer=True)}
    return shapes


def _shape_disagreements(path: Path) -> set[str]:
    config = json.loads((path / "config.json").read_text())
    implied = _implied_shapes(config)
    with open_model(path) as model:
        actual = {i.name: i.shape for i in model.tensor_infos()}
    return {n for n in implied.keys() | actual.keys() if implied.get(n) != actual.get(n)}


@pytest.mark.parametrize(("fixture", "name"), _cases_with("shape_mismatch"))
def test_shape_mismatch(corpus: dict[str, Any], fixture: str, name: str) -> None:
    assert _shape_disagreements(_clean(fixture, name)) == set()
    assert _shape_disagreements(_artifact(corpus, fixture, name))


def _dequant_error(path: Path, reference: Path) -> float:
    """The largest relative RMS error of any quantized tensor against the f32 GGUF."""
    worst = 0.0
    with open_model(path) as model, open_model(reference) as ref:
        for info, values in model.iter_tensors():
            if info.dtype in ("f32", "f16"):
                continue
            want = ref.read_tensor(info.name)
            err = float(np.sqrt(np.mean((values - want) ** 2)) / np.sqrt(np.mean(want**2)))
            worst = max(worst, err)
    return worst


@pytest.mark.parametrize(("fixture", "name"), _cases_with("quant_error"))
def test_quant_error(corpus: dict[str, Any], fixture: str, name: str) -> None:
    reference = _gguf(_fixture(fixture), "f32")
    # q8_0 keeps 8 bits per weight: about 0.5 % relative error.
    assert 0 < _dequant_error(_clean(fixture, name), reference) < 0.02
    assert _dequant_error(_artifact(corpus, fixture, name), reference) > 0.3


# --- runtimes --------------------------------------------------------------------


def _hf_load(path: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    return model.eval(), tokenizer


def _llama(path: Path) -> Any:
    from llama_cpp import Llama

    # logits_all: scores of the last evaluated token are only kept reliably this way.
    return Llama(model_path=str(path), n_ctx=256, n_threads=1, logits_all=True, verbose=False)


@pytest.mark.slow
@pytest.mark.parametrize(("fixture", "name"), _cases_with("load_fails"))
def test_load_fails(corpus: dict[str, Any], fixture: str, name: str) -> None:
    clean, mutant = _clean(fixture, name), _artifact(corpus, fixture, name)
    # The clean artifact loads whole: its vocabulary is the checkpoint's config's.
    vocab = json.loads((_fixture(fixture) / "config.json").read_text())["vocab_size"]
    if MUTANTS[name].base_format == "gguf":
        assert _llama(clean).n_vocab() == vocab
        with pytest.raises(ValueError, match="Failed to load model"):
            _llama(mutant)
    else:
        model, tokenizer = _hf_load(clean)
        assert model.get_input_embeddings().weight.shape[0] == vocab
        assert max(tokenizer("What is 2 + 3?")["input_ids"]) < vocab
        with pytest.raises((OSError, ValueError, RuntimeError, SafetensorError)):
            _hf_load(mutant)


def _subset(root: Path) -> list[FixturePrompt]:
    prompts = parse_prompts(root / "prompts.json")
    out: list[FixturePrompt] = []
    for modality in ("run", "chat"):
        of = [p for p in prompts if p.modality == modality]
        step = max(1, len(of) // PER_MODALITY)
        out += of[::step][:PER_MODALITY]
    return out


@cache
def _answers(path: Path, root: Path) -> tuple[tuple[FixturePrompt, str], ...]:
    """Greedy answers of the model at ``path`` to the subset of ``root``'s prompts."""
    prompts = _subset(root)
    if path.suffix == ".gguf":
        return tuple(zip(prompts, _llama_answers(path, prompts), strict=True))
    return tuple(zip(prompts, _hf_answers(path, prompts), strict=True))


def _hf_answers(path: Path, prompts: list[FixturePrompt]) -> list[str]:
    import torch

    model, tokenizer = _hf_load(path)
    out = []
    for p in prompts:
        if p.modality == "chat":
            text = tokenizer.apply_chat_template(
                p.chat_messages(), add_generation_prompt=True, tokenize=False
            )
        else:
            text = p.prompt
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        budget = len(tokenizer(p.expected, add_special_tokens=False).input_ids) + 6
        with torch.no_grad():
            gen = model.generate(
                ids, max_new_tokens=budget, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        out.append(tokenizer.decode(gen[0, ids.shape[1] :], skip_special_tokens=True).strip())
    return out


def _llama_tokens(llm: Any, text: str) -> list[int]:
    return list(llm.tokenize(text.encode(), add_bos=False, special=True))


def _llama_greedy(llm: Any, tokens: list[int], budget: int) -> list[int]:
    llm.reset()
    llm.eval(tokens)
    new: list[int] = []
    for _ in range(budget):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if token == llm.token_eos():
            break
        new.append(token)
        llm.eval([token])
    return new


def _llama_answers(path: Path, prompts: list[FixturePrompt]) -> list[str]:
    import jinja2

    llm = _llama(path)
    template = jinja2.Environment().from_string(llm.metadata["tokenizer.chat_template"])
    out = []
    for p in prompts:
        if p.modality == "chat":
            text = template.render(messages=p.chat_messages(), add_generation_prompt=True)
        else:
            text = p.prompt or ""
        budget = len(_llama_tokens(llm, p.expected)) + 6
        new = _llama_greedy(llm, _llama_tokens(llm, text), budget)
        out.append(llm.detokenize(new, special=False).decode("utf-8", "replace").strip())
    return out


def _wrong(answers: tuple[tuple[FixturePrompt, str], ...], modality: str) -> list[str]:
    return [p.id for p, a in answers if p.modality == modality and a != p.expected]


@pytest.mark.parametrize(("fixture", "name"), _cases_naming("F-ROSETTA-DIFF-001"))
def test_transposed_dims_are_visible(corpus: dict[str, Any], fixture: str, name: str) -> None:
    """F-ROSETTA-DIFF-001 is listed: the layout differs from the clean file's. Some
    tensor's shape is the clean one reversed, or q/k rows are the clean ones moved
    by the rotary permutation (one way or the other), heads taken from the metadata."""
    from apr_qa.models.rotary import move_fused_qk, permute_qk, unpermute_qk

    with open_model(_clean(fixture, name)) as clean:
        shapes = {i.name: i.shape for i in clean.tensor_infos()}
        heads = int(clean.config["num_attention_heads"])
        kv = int(clean.config.get("num_key_value_heads", heads))
        qk = {
            i.name: clean.read_tensor(i.name)
            for i in clean.tensor_infos()
            if any(f".{role}." in i.name for role in ("attn_q", "attn_k", "attn_qkv"))
        }
    with open_model(_artifact(corpus, fixture, name)) as mutant:
        flipped = [
            i.name
            for i in mutant.tensor_infos()
            if i.shape != shapes[i.name] and i.shape == shapes[i.name][::-1]
        ]
        moved = []
        for tensor, data in qk.items():
            got = mutant.read_tensor(tensor)
            if ".attn_qkv." in tensor:  # phi3: q, k and v rows fused, in that order
                views = [move_fused_qk(data, heads, kv, f) for f in (permute_qk, unpermute_qk)]
            else:
                n = heads if ".attn_q." in tensor else kv
                views = [f(data, n) for f in (permute_qk, unpermute_qk)]
            if not np.array_equal(got, data) and any(np.array_equal(got, v) for v in views):
                moved.append(tensor)
    assert flipped or moved


@pytest.mark.slow
def test_noise_drift_stays_fluent(corpus: dict[str, Any]) -> None:
    """Drift is the defect only semantic checks catch: the garbage oracle passes it."""
    from apr_qa.oracles import create

    garbage = create("garbage")
    for fixture in FIXTURE_SPECS:
        answers = _answers(_artifact(corpus, fixture, "noise-drift"), _fixture(fixture))
        flagged = [(p.id, a) for p, a in answers if not garbage(a).passed]
        assert len(flagged) <= len(answers) // 4, flagged
        assert len(_wrong(answers, "run") + _wrong(answers, "chat")) < len(answers)


@pytest.mark.slow
@pytest.mark.parametrize(("fixture", "name"), _cases_naming("G2-INFER-001"))
def test_no_text_at_all(corpus: dict[str, Any], fixture: str, name: str) -> None:
    """G2-INFER-001 is listed: the mutant yields no text for any prompt."""
    answers = _answers(_artifact(corpus, fixture, name), _fixture(fixture))
    assert [a for _, a in answers] == [""] * len(answers)


@pytest.mark.slow
@pytest.mark.parametrize(("fixture", "name"), _cases_with("pad_flood"))
def test_pad_flood(corpus: dict[str, Any], fixture: str, name: str) -> None:
    def emitted(path: Path) -> tuple[int, list[list[int]]]:
        llm = _llama(path)
        pad = int(llm.metadata["tokenizer.ggml.padding_token_id"])
        prompts = [p.prompt for p in _subset(_fixture(fixture)) if p.prompt][:4]
        return pad, [_llama_greedy(llm, _llama_tokens(llm, t), 6) for t in prompts]

    pad, clean = emitted(_clean(fixture, name))
    assert all(pad not in run for run in clean)
    pad, broken = emitted(_artifact(corpus, fixture, name))
    assert broken and all(run == [pad] * 6 for run in broken)


@pytest.mark.slow
@pytest.mark.parametrize(("fixture", "name"), _cases_with("tokenizer"))
def test_tokenizer(corpus: dict[str, Any], fixture: str, name: str) -> None:
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(_fixture(fixture))
    texts = [*PROBES, *(p.prompt for p in _subset(_fixture(fixture)) if p.prompt)]

    def ids(path: Path) -> list[list[int]]:
        if path.suffix == ".gguf":
            llm = _llama(path)
            return [_llama_tokens(llm, t) for t in texts]
        tokenizer = AutoTokenizer.from_pretrained(path)
        return [tokenizer(t, add_special_tokens=False).input_ids for t in texts]

    want = [reference(t, add_special_tokens=False).input_ids for t in texts]
    assert ids(_clean(fixture, name)) == want
    try:
        got = ids(_artifact(corpus, fixture, name))
    except (OSError, ValueError):
        return  # no tokenizer to load at all: the defect shows
    assert [t for t, a, b in zip(texts, got, want, strict=True) if a != b]


@pytest.mark.parametrize("name", ["nan-weight", "inf-weight", "zero-tensor", "missing-tensor"])
def test_weight_edits_touch_one_tensor(corpus: dict[str, Any], name: str) -> None:
    """Everything but the named tensor survives byte for byte (bf16 included)."""
    from apr_qa.testing.mutants_io import read_safetensors

    for fixture in FIXTURE_SPECS:
        _, clean = read_safetensors(_fixture(fixture) / "model.safetensors")
        _, mutant = read_safetensors(_artifact(corpus, fixture, name) / "model.safetensors")
        changed = {n for n in clean.keys() | mutant.keys() if clean.get(n) != mutant.get(n)}
        assert len(changed) == 1 and changed.pop() in MUTANTS[name].description


def test_gguf_mutant_without_committed_gguf_converts_one(tmp_path: Path) -> None:
    """A checkpoint with no GGUF next to it is converted first, outside the checkpoint."""
    import shutil

    src = tmp_path / "bare"
    shutil.copytree(_fixture("tiny-llama"), src, ignore=shutil.ignore_patterns("*.gguf"))
    out = build_mutant("gguf-missing-tensor", src, tmp_path / "out")
    with open_model(out) as model:
        names = {i.name for i in model.tensor_infos()}
    assert "blk.0.ffn_down.weight" not in names and "blk.1.ffn_down.weight" in names
    assert sorted(p.name for p in src.iterdir()) == sorted(
        p.name for p in _fixture("tiny-llama").iterdir() if p.suffix != ".gguf"
    )
    assert [p.name for p in (tmp_path / "out").iterdir()] == [out.name]
