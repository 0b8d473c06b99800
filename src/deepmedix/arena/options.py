"""The options of ``deepmedix arena run`` and ``deepmedix arena fit``: each default, help text and check written once.

The command line builds its flags from these dataclasses (``deepmedix.options``); ``fit_arena`` and ``run_arena``
take their defaults from them and check their values through them, so the API and the command line refuse the same
things. Kept free of numpy and scipy so that building the command line stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from deepmedix.errors import OptionError

Sampling = Literal["active", "uniform"]
Scale = Literal["minmax", "maxabs"]


def check_sampling(sampling: str) -> None:
    if sampling not in get_args(Sampling):
        raise OptionError(f"unknown sampling {sampling!r}: use 'active' or 'uniform'")


def check_scale(scale: str) -> None:
    if scale not in get_args(Scale):
        raise OptionError(f"unknown scale {scale!r}: use 'minmax' or 'maxabs'")


@dataclass(frozen=True, kw_only=True)
class FitOptions:
    """How Bradley–Terry scores are fitted, their intervals drawn and their scale set."""

    bootstrap_rounds: int = field(
        default=200,
        metadata={"flag": "--bootstrap", "metavar": "N", "help": "bootstrap resamples for the intervals (default 200)"},
    )
    scale: Scale = field(
        default="minmax",
        metadata={
            "help": "score scaling to [0, 1]: minmax (best 1, worst 0) or maxabs (0.5 + 0.5·x/max|x| after centring)"
        },
    )
    seed: int = field(default=0, metadata={"help": "random seed of the bootstrap (and of the draws, for a run)"})
    weighted: bool = field(
        default=True,
        metadata={"flag": "--weights", "help": "weight each judgment by 1/prob (--no-weights: plain Bradley–Terry)"},
    )

    def __post_init__(self) -> None:
        check_scale(self.scale)


@dataclass(frozen=True, kw_only=True)
class ArenaOptions(FitOptions):
    """An arena run: how many comparisons, how pairs are drawn and judged, and how the scores are fitted."""

    budget: int = field(metadata={"help": "number of comparisons (each is asked in both orders)"})
    sampling: Sampling = "active"
    batch_size: int = 8  # comparisons drawn before judging; the command line's default follows the judge
    vision: bool = field(
        default=False, metadata={"flag": "--judge-vision", "help": "also show the judge the image (vision judges)"}
    )

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise OptionError(f"--budget must be at least 1, got {self.budget}")
        check_sampling(self.sampling)
        super().__post_init__()
