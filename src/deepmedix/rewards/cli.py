"""``deepmedix reward score IN.jsonl``: the reward of every completion in a file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal, NotRequired, cast, get_args

from tqdm import tqdm

from deepmedix.errors import DataError, InputFileError
from deepmedix.io import atomic_open, check_output, iter_jsonl_lines, json_kind, jsonl_value
from deepmedix.rewards.core import score_completion
from deepmedix.rewards.score import DEFAULT_LAMBDA, RewardInput, RewardMode, RewardRecord, parse_reward_mode

INPUT_FIELDS = tuple(RewardInput.__annotations__)  # completion, reference, answer_type, image_size, reference_boxes
OnError = Literal["fail", "skip"]


class InputLine(RewardInput):
    """One input line: a sample to score, and an id that is copied to its output line."""

    id: NotRequired[Any]


class ScoredLine(RewardRecord):
    """One output line: where it came from, then the score."""

    line: int
    id: NotRequired[Any]  # the input line's id, when it has one


def register(subparsers: Any) -> None:
    reward = subparsers.add_parser("reward", help="score completions with the DeepMedix-R1 reward")
    reward_sub = reward.add_subparsers(dest="reward_command", metavar="SUBCOMMAND")
    score = reward_sub.add_parser(
        "score",
        help="score a JSONL of completions",
        description="Each input line: {completion, reference, answer_type? (closed|multi|open), image_size? [W, H] "
        "(model input; 512x512 when absent), reference_boxes? [[x0, y0, x1, y1], ...] (model frame)}. "
        "Each output line, in input order: {line, answer, format, coordinate, total, ...}; means go to stderr.",
    )
    score.add_argument("input", type=Path, help="JSONL of completions")
    score.add_argument(
        "--mode",
        choices=[mode.value for mode in RewardMode],
        default=RewardMode.PAPER.value,
        help="paper (default), release (the authors' released code, quirks included) or grounded",
    )
    score.add_argument("--out", type=Path, default=None, help="output JSONL (default: stdout)")
    score.add_argument(
        "--on-error",
        choices=get_args(OnError),
        default="fail",
        help="a malformed line stops the run (fail, default) or is reported and left out (skip)",
    )
    score.add_argument(
        "--lam", type=float, default=DEFAULT_LAMBDA, help=f"format weight lambda (default {DEFAULT_LAMBDA})"
    )
    score.set_defaults(func=_score_command)

    def _reward_help(args: argparse.Namespace) -> int:
        reward.print_help()
        return 2

    reward.set_defaults(func=_reward_help)


def _read_record(path: Path, line_no: int, raw: bytes) -> InputLine:
    record = jsonl_value(raw, path, line_no)
    if not isinstance(record, dict):
        raise InputFileError(path, f"expected a JSON object, got {json_kind(record)}", line=line_no)
    for key in ("completion", "reference"):
        if key not in record:
            raise InputFileError(path, "missing", line=line_no, field=key)
    if not isinstance(record["reference"], str):
        raise InputFileError(
            path, f"must be a string, got {json_kind(record['reference'])}", line=line_no, field="reference"
        )
    if not isinstance(record["completion"], str | list | dict):
        raise InputFileError(path, "must be a string or a list of chat messages", line=line_no, field="completion")
    answer_type = record.get("answer_type")
    if answer_type is not None and not isinstance(answer_type, str):
        raise InputFileError(path, f"must be a string, got {json_kind(answer_type)}", line=line_no, field="answer_type")
    return cast(InputLine, record)  # the required fields checked here, the others by score_completion


def score_file(
    path: Path, mode: RewardMode | str = RewardMode.PAPER, lam: float = DEFAULT_LAMBDA, on_error: OnError = "fail"
) -> tuple[list[ScoredLine], list[str]]:
    """Score every line of ``path``; returns (output rows in input order, error messages of skipped lines).

    An empty file, or one whose every line was skipped, is a :class:`DataError`: nothing could be scored."""
    mode = parse_reward_mode(mode)
    rows: list[ScoredLine] = []
    errors: list[str] = []
    lines = list(iter_jsonl_lines(path))
    if not lines:
        raise DataError(f"{path}: no lines to score (the file is empty)")
    for line_no, raw in tqdm(lines, desc="reward", unit="line", disable=None, file=sys.stderr):
        try:
            record = _read_record(path, line_no, raw)
            try:
                s = score_completion(
                    record["completion"],
                    record["reference"],
                    record.get("answer_type"),
                    record.get("image_size"),
                    record.get("reference_boxes"),
                    mode=mode,
                    lam=lam,
                )
            except ValueError as e:
                field = _field_named(str(e))
                raise InputFileError(path, str(e), line=line_no, field=field) from None
        except ValueError as e:
            if on_error == "fail":
                raise
            errors.append(str(e))
            continue
        where: dict[str, Any] = {"line": line_no, "id": record["id"]} if "id" in record else {"line": line_no}
        rows.append(cast(ScoredLine, where | s.to_dict()))
    if not rows:
        raise DataError(f"{path}: nothing scored: every one of its {len(lines)} lines was skipped ({errors[0]})")
    return rows, errors


def _field_named(message: str) -> str | None:
    for key in sorted(INPUT_FIELDS, key=len, reverse=True):  # "reference_boxes" before "reference"
        if message.startswith(key):
            return key
    return None


def _score_command(args: argparse.Namespace) -> int:
    if args.out is not None:
        check_output(args.out)
    rows, errors = score_file(args.input, mode=args.mode, lam=args.lam, on_error=args.on_error)
    if args.out is not None:
        with atomic_open(args.out) as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    for message in errors:
        print(f"skipped: {message}", file=sys.stderr)
    n = len(rows)
    means = "  ".join(f"{k}={sum(r[k] for r in rows) / n:.4f}" for k in ("answer", "format", "coordinate", "total"))
    print(f"reward ({args.mode}): {n} scored, {len(errors)} skipped; means {means}", file=sys.stderr)
    return 0
