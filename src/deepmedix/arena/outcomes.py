"""What a judge answers and what a comparison comes to: the arena's verdicts and winners, each spelled once.

A judge answers about the two reports as shown (a :class:`Verdict`: Report A, Report B or a tie). Each comparison
is asked in both orders (:data:`SHOWN_ORDERS`); the two verdicts, mapped back to the pair, combine into the
comparison's :class:`Winner`. A question without a verdict is :class:`Unresolved`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class Verdict(StrEnum):
    """A judge's answer on two reports as shown: Report A is better, Report B is, or neither."""

    A = "A"
    B = "B"
    TIE = "tie"


class Unresolved(StrEnum):
    """A question, or a comparison, left without a verdict; the fit leaves it out."""

    UNPARSEABLE = "unparseable"  # the reply could not be read, even after a retry: stored (it was paid for)
    ERROR = "error"  # the call failed: not stored, so a rerun asks again


class Winner(StrEnum):
    """Who won a comparison of the pair (model_a, model_b), both orders combined; ties count half."""

    A = "a"
    B = "b"
    TIE = "tie"


ShownOrder = Literal["ab", "ba"]  # "ab": model_a shown as Report A; "ba": model_b shown as Report A
SHOWN_ORDERS: tuple[ShownOrder, ShownOrder] = ("ab", "ba")


def winner_of(verdict: Verdict, order: ShownOrder) -> Winner:
    """A verdict on the reports as shown, as the pair's winner."""
    if verdict == Verdict.TIE:
        return Winner.TIE
    shown_first_won = verdict == Verdict.A
    return Winner.A if shown_first_won == (order == "ab") else Winner.B
