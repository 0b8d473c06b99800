"""Report Arena: pairwise LLM judging of reports with active sampling and inverse-probability-weighted
Bradley–Terry scores (``deepmedix arena run`` / ``deepmedix arena fit``).

Names are imported lazily so that registering the command line stays cheap (no numpy/scipy at start-up).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ArenaFit": "deepmedix.arena.bt",
    "Battle": "deepmedix.arena.bt",
    "battles_from_rows": "deepmedix.arena.bt",
    "fit_arena": "deepmedix.arena.bt",
    "fit_bt": "deepmedix.arena.bt",
    "PROMPT_VERSION": "deepmedix.arena.judges",
    "JudgeTask": "deepmedix.arena.judges",
    "LLMJudge": "deepmedix.arena.judges",
    "RulesLabelerJudge": "deepmedix.arena.judges",
    "parse_verdict": "deepmedix.arena.judges",
    "PairStats": "deepmedix.arena.sampling",
    "pair_probabilities": "deepmedix.arena.sampling",
    "run_arena": "deepmedix.arena.run",
    "write_outputs": "deepmedix.arena.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deepmedix.arena' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
