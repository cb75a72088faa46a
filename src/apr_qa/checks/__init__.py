"""Gate families that are not scenario oracles.

Each module checks one family against a model artifact and returns
:class:`apr_qa.checks.finding.Finding` values, one per gate id:
``integrity`` is gateway G0 (config vs shapes, NaN/Inf, all-zero tensors,
tokenizer, GGUF header). Import the module you need; nothing heavy loads here.
"""

__all__: list[str] = []
