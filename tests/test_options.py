"""Flags from options dataclasses: one source of defaults, types and choices."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

import pytest

from deepmedix.options import add_dataclass_arguments, dataclass_from_args


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Options:
    data: Path
    batch_size: int = field(default=8, metadata={"help": "samples per batch"})
    ratio: float | None = None
    meteor: bool = True
    mode: Literal["paper", "release"] = "paper"
    colour: Colour = Colour.RED
    names: list[str] = field(default_factory=list)
    hidden: str = field(default="x", metadata={"skip": True})


def _parse(argv: list[str], **defaults) -> Options:
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Options, defaults=defaults)
    return dataclass_from_args(Options, parser.parse_args(argv))


def test_defaults_come_from_the_dataclass() -> None:
    opts = _parse(["--data", "d.jsonl"])
    assert opts == Options(data=Path("d.jsonl"))


def test_types_choices_and_booleans() -> None:
    opts = _parse(
        ["--data", "d", "--batch-size", "3", "--ratio", "0.5", "--no-meteor", "--mode", "release", "--colour", "blue"]
        + ["--names", "a", "b"]
    )
    assert (opts.batch_size, opts.ratio, opts.meteor, opts.mode) == (3, 0.5, False, "release")
    assert opts.colour is Colour.BLUE and opts.names == ["a", "b"]


@pytest.mark.parametrize(
    "argv", [["--batch-size", "3"], ["--data", "d", "--mode", "other"], ["--data", "d", "--hidden", "y"]]
)
def test_missing_required_bad_choice_and_skipped_fields_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(argv)


def test_caller_defaults_override_the_dataclass() -> None:
    assert _parse(["--data", "d"], batch_size=2).batch_size == 2
