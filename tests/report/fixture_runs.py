"""A clean run and a mutant run, as evidence, for the report tests."""

from __future__ import annotations

from scoring_records import category_records, gateways_passed, rec

from apr_qa.evidence import HaltKind, Outcome, Record

XSS = "<script>alert(1)</script>"


def clean_run() -> list[Record]:
    """Every gateway held, every category assessed and passing: Certified."""
    records = gateways_passed("org/clean")
    for category, n in (
        ("QUAL", 6),
        ("PERF", 2),
        ("STAB", 3),
        ("COMP", 2),
        ("EDGE", 3),
        ("REGR", 2),
    ):
        records += category_records(category, n, n, model="org/clean")
    return records


def mutant_run(*, surrogate: bool = True) -> list[Record]:
    """A transposed-embedding mutant: G2 falsified, later work halted, hostile output.

    Its output carries a lone surrogate, which evidence must keep (as a JSON escape);
    ``surrogate=False`` leaves it out.
    """
    m = "org/mutant"
    tail = " \ud800" if surrogate else ""
    records = [
        rec("G0-INTEGRITY-001", model=m, scenario=None),
        rec("G1-LOAD-001", model=m, scenario=None),
        rec(
            "G2-INFER-001",
            Outcome.FALSIFIED,
            model=m,
            reason="empty output",
            output="",
            scenario="trivial",
            line=12,
        ),
        rec(
            "F-A1-001",
            Outcome.FALSIFIED,
            model=m,
            scenario="arith-2+2",
            line=21,
            reason="expected 4",
            output=XSS + "\x00\x1b[31m & ]]>" + tail,
            counterexample="2+2",
        ),
        rec(
            "F-A1-001",
            Outcome.TIMEOUT,
            model=m,
            scenario="long",
            reason="timed out after 30 s",
            fmt="safetensors",
            quant="f32",
            backend="cpu",
        ),
        rec(
            "F-A2-001",
            Outcome.CRASHED,
            model=m,
            scenario="chat-hi",
            modality="chat",
            reason="worker died by SIGSEGV",
        ),
        rec(
            "F-A1-001",
            Outcome.CORROBORATED,
            model=m,
            scenario="arith-2+2",
            fmt="safetensors",
            quant="f32",
        ),
        rec("F-A1-001", Outcome.CORROBORATED, model=m, scenario="arith-2+2"),  # duplicate name
        rec(
            "F-PROFILE-CI-001",
            Outcome.SKIPPED,
            model=m,
            backend="gpu",
            reason="not run: "
            "stop-on-p0 after G2-INFER-001 falsified in org/mutant.gguf.q4_k_m.cpu.run",
            halted=HaltKind.STOP_ON_P0,
        ),
        rec("Z-UNKNOWN-001", Outcome.FALSIFIED, model=m, reason="not in the catalogue"),
    ]
    return records
