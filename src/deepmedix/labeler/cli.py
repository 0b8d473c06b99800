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


def read_reports(path: Path, text_field: str = "text", id_field: str = "id") -> Iterator[tuple[str | int, str]]:
    """(id, text) per non-blank line; a bad line raises a DataError naming the file, line and field."""
    from deepmedix.errors import InputFileError
    from deepmedix.io import iter_jsonl_objects, json_kind

    for number, record in iter_jsonl_objects(path):
        if id_field not in record:
            raise InputFileError(path, "missing", line=number, field=id_field)
        report_id = record[id_field]
        if isinstance(report_id, bool) or not isinstance(report_id, str | int):
            raise InputFileError(
                path, f"must be a string or an integer, got {json_kind(report_id)}", line=number, field=id_field
            )
        if text_field not in record:
            raise InputFileError(path, f"missing (id {report_id!r})", line=number, field=text_field)
        text = record[text_field]
        if not isinstance(text, str):
            raise InputFileError(
                path, f"must be a string, got {json_kind(text)} (id {report_id!r})", line=number, field=text_field
            )
        yield report_id, text


def run_label(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from deepmedix.io import atomic_open, check_output
    from deepmedix.labeler import label_report

    check_output(args.out)
    reports = list(read_reports(args.input, args.text_field, args.id_field))
    if not reports:
        raise DataError(f"{args.input}: no reports to label (the file is empty)")
    progress = tqdm(
        reports, desc="labeling", unit="report", disable=len(reports) < _PROGRESS_MIN_LINES, file=sys.stderr
    )
    with atomic_open(args.out, "w") as out:
        for report_id, text in progress:
            out.write(json.dumps({"id": report_id, "labels": label_report(text)}, ensure_ascii=False) + "\n")
    print(f"labeled {len(reports)} report(s) -> {args.out}", file=sys.stderr)
    return 0
