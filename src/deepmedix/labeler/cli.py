"""``deepmedix label``: CheXpert-style labels (rule-based) for a JSONL file of reports."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from deepmedix.errors import DataError

# Files at least this long show a progress bar.
_PROGRESS_MIN_LINES = 2000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "label",
        help="label reports with the 14 CheXpert observations (offline, rule-based)",
        description=(
            "Label free-text chest X-ray reports with the 14 CheXpert observations (1 positive, 0 negative, "
            "-1 uncertain, null not mentioned) using the offline rule-based labeler. Input lines: "
            '{"id": ..., "text": ...}; output lines: {"id": ..., "labels": {observation: value, ...}}.'
        ),
    )
    parser.add_argument("input", type=Path, help="JSONL file of reports, one {id, text} object per line")
    parser.add_argument("--out", type=Path, required=True, help="output JSONL file (written atomically)")
    parser.add_argument("--text-field", default="text", help="the field holding the report text (default: text)")
    parser.add_argument("--id-field", default="id", help="the field holding the report id (default: id)")
    parser.set_defaults(func=run_label)


def read_reports(path: Path, text_field: str = "text", id_field: str = "id") -> Iterator[tuple[object, str]]:
    """(id, text) per non-blank line; a bad line raises ValueError naming the file, line and field."""
    from deepmedix.io import iter_jsonl_objects

    for number, record in iter_jsonl_objects(path):
        if id_field not in record:
            raise DataError(f"{path}, line {number}: missing field '{id_field}'")
        text = record.get(text_field)
        if text is None and text_field not in record:
            raise DataError(f"{path}, line {number} (id {record[id_field]!r}): missing field '{text_field}'")
        if not isinstance(text, str):
            raise DataError(
                f"{path}, line {number} (id {record[id_field]!r}): field '{text_field}' must be a string, "
                f"got {type(text).__name__}"
            )
        yield record[id_field], text


def run_label(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from deepmedix.io import atomic_open
    from deepmedix.labeler import label_report

    reports = list(read_reports(args.input, args.text_field, args.id_field))
    progress = tqdm(
        reports, desc="labeling", unit="report", disable=len(reports) < _PROGRESS_MIN_LINES, file=sys.stderr
    )
    with atomic_open(args.out, "w") as out:
        for report_id, text in progress:
            out.write(json.dumps({"id": report_id, "labels": label_report(text)}, ensure_ascii=False) + "\n")
    print(f"labeled {len(reports)} report(s) -> {args.out}", file=sys.stderr)
    return 0
