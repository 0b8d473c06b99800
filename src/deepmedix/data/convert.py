"""What every dataset converter shares: row errors that name file/row/field, skip-or-fail, splits, atomic output.

A converter is a generator ``convert(root, conversion) -> Iterator[Sample]`` registered in ``SOURCES``. It raises
:class:`RowError` for a bad row inside a ``with conversion.row(file, row):`` block; the conversion then either stops
(``on_error="fail"``) or counts the row as skipped and goes on (``on_error="skip"``).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from deepmedix.data.enums import Split
from deepmedix.data.images import image_size
from deepmedix.data.schema import Box, Sample, sample_to_json
from deepmedix.errors import DataError, ImageError, OptionError, RowError, SplitLeakError
from deepmedix.io import atomic_write_jsonl

log = logging.getLogger(__name__)

OnError = Literal["skip", "fail"]

# Patient-level split by hash where a source has no official split (80/10/10).
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_SALT = "deepmedix-split-v1"


@dataclass
class ConversionSummary:
    source: str
    out: Path | None = None
    written: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)  # the first skipped rows' messages, for the user
    by_task: Counter[str] = field(default_factory=Counter)
    by_split: Counter[str] = field(default_factory=Counter)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def lines(self) -> list[str]:
        out = [f"{self.source}: wrote {self.written} samples" + (f" to {self.out}" if self.out else "")]
        if self.by_task:
            out.append("  tasks: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_task.items())))
        if self.by_split:
            out.append("  splits: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_split.items())))
        if self.skipped:
            out.append(
                f"  skipped {self.n_skipped} rows: " + "; ".join(f"{k} ({v})" for k, v in self.skipped.most_common())
            )
            out.extend(f"    {m}" for m in self.messages)
        return out


class Conversion:
    """State of one conversion run: error policy, skip counts, and the first few skip messages."""

    MAX_MESSAGES = 10

    def __init__(self, source: str, on_error: OnError = "fail", images_root: Path | None = None):
        if on_error not in ("skip", "fail"):
            raise OptionError(f"on_error must be 'skip' or 'fail', not {on_error!r}")
        self.source = source
        self.on_error: OnError = on_error
        self.images_root = images_root
        self.summary = ConversionSummary(source)

    def skip(self, err: RowError) -> None:
        if self.on_error == "fail":
            raise err
        self.summary.skipped[err.reason] += 1
        if len(self.summary.messages) < self.MAX_MESSAGES:
            self.summary.messages.append(str(err))
        log.debug("skipped: %s", err)

    def note_skip(self, reason: str, message: str | None = None) -> None:
        """A row left out on purpose (not an error: e.g. a study without a FINDINGS section)."""
        self.summary.skipped[reason] += 1
        if message and len(self.summary.messages) < self.MAX_MESSAGES:
            self.summary.messages.append(message)

    @contextmanager
    def row(self) -> Iterator[None]:
        """Wrap the handling of one row: a RowError inside is raised or counted by the policy."""
        try:
            yield
        except RowError as e:
            self.skip(e)


# --- reading inputs -----------------------------------------------------------------------------------------------


def find_file(root: Path, *names: str, required: bool = True) -> Path | None:
    """The first of ``names`` (also tried with ``.gz``) under ``root``; a clear error when none is there."""
    for name in names:
        for candidate in (root / name, root / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    if required:
        raise FileNotFoundError(f"{root}: none of {', '.join(names)} found (is --root the dataset folder?)")
    return None


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def read_csv(
    path: Path, required: tuple[str, ...] | list[str], conversion: Conversion | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV as ``(row number, dict)``; a missing required column fails at once, naming file and column.

    A row with more or fewer cells than the header is malformed: with a ``conversion`` it is skipped or fails by its
    policy, without one it fails.
    """
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in required if c not in columns]
        if missing:
            raise RowError(
                path,
                "header",
                missing[0],
                f"missing column(s) {', '.join(missing)}; the file has {', '.join(columns) or 'none'}",
            )
        reader.fieldnames = columns
        for rowno, raw in enumerate(reader, start=1):
            extra = raw.pop(None, None)  # type: ignore[call-overload]  # cells beyond the header
            absent = sum(v is None for v in raw.values())  # cells missing at the end of a short row
            if extra or absent:
                n_cells = len(columns) + len(extra or []) - absent
                err = RowError(
                    path,
                    rowno,
                    None,
                    f"malformed row: {n_cells} cells for {len(columns)} columns",
                    reason="malformed row",
                )
                if conversion is None:
                    raise err
                conversion.skip(err)
                continue
            yield rowno, {k: v.strip() for k, v in raw.items()}


def require(row: dict[str, str | None], column: str, file: Path, rowno: int) -> str:
    value = row.get(column)
    if value is None or str(value).strip() == "":
        raise RowError(file, rowno, column, "empty value", reason="empty field")
    return str(value).strip()


def as_float(row: dict[str, str | None], column: str, file: Path, rowno: int) -> float:
    value = require(row, column, file, rowno)
    try:
        return float(value)
    except ValueError:
        raise RowError(file, rowno, column, f"not a number: {value!r}", reason="malformed number") from None


def checked_image(path: Path, file: Path, rowno: int | str | None, column: str) -> tuple[int, int]:
    """(width, height) of an image a row points at; a missing or unreadable file is a RowError for that row."""
    if not path.is_file():
        raise RowError(file, rowno, column, f"image file not found: {path}", reason="image not found")
    try:
        return image_size(path)
    except ImageError as e:
        raise RowError(file, rowno, column, f"unreadable image: {e}", reason="unreadable image") from None


def checked_box(
    xyxy: tuple[float, float, float, float],
    width: int,
    height: int,
    file: Path,
    rowno: int,
    column: str,
    label: str | None = None,
) -> Box:
    x0, y0, x1, y1 = xyxy
    if not (x0 < x1 and y0 < y1):
        raise RowError(file, rowno, column, f"empty box {list(xyxy)}", reason="bad box")
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        raise RowError(
            file,
            rowno,
            column,
            f"box {[round(v, 2) for v in xyxy]} lies outside its {width}×{height} image",
            reason="box outside image",
        )
    return Box.from_list(xyxy, label=label)


# --- splits -------------------------------------------------------------------------------------------------------


def hash_split(key: str, fractions: tuple[float, float, float] = SPLIT_FRACTIONS, salt: str = SPLIT_SALT) -> Split:
    """A deterministic split for a patient key: the same key always lands in the same split."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < fractions[0]:
        return Split.TRAIN
    if u < fractions[0] + fractions[1]:
        return Split.VAL
    return Split.TEST


OFFICIAL_SPLITS = {
    "train": Split.TRAIN,
    "training": Split.TRAIN,
    "val": Split.VAL,
    "valid": Split.VAL,
    "validate": Split.VAL,
    "validation": Split.VAL,
    "dev": Split.VAL,
    "test": Split.TEST,
}


def official_split(value: str, file: Path, rowno: int | str, column: str = "split") -> Split:
    split = OFFICIAL_SPLITS.get(value.strip().lower())
    if split is None:
        raise RowError(
            file, rowno, column, f"unknown split {value!r} (expected train/validate/test)", reason="unknown split"
        )
    return split


def check_patient_splits(samples: list[Sample]) -> None:
    """Fail loudly, naming the patient, when one patient's samples fall in two splits."""
    seen: dict[tuple[str, str], tuple[Split, str]] = {}
    for s in samples:
        if not s.patient_id:
            continue
        key = (s.source, s.patient_id)
        if key in seen and seen[key][0] != s.split:
            first_split, first_id = seen[key]
            raise SplitLeakError(
                f"patient {s.patient_id} of {s.source} is in two splits: {first_split.value} (sample {first_id}) "
                f"and {s.split.value} (sample {s.id}); splits must be patient-level"
            )
        seen.setdefault(key, (s.split, s.id))


# --- running ------------------------------------------------------------------------------------------------------

Converter = Callable[[Path, Conversion], Iterator[Sample]]


def _progress(iterable: Iterator[Sample], desc: str) -> Iterator[Sample]:
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit=" samples", disable=None, leave=False)


def run_conversion(
    converter: Converter,
    source: str,
    root: str | Path,
    out: str | Path,
    on_error: OnError = "fail",
    limit: int | None = None,
    images_root: str | Path | None = None,
    relative_paths: bool = False,
) -> ConversionSummary:
    """Convert a dataset folder into a samples JSONL, written atomically (all or nothing).

    ``limit`` stops after that many samples; ``relative_paths`` writes image paths relative to the output folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    out = Path(out)
    conversion = Conversion(source, on_error, Path(images_root) if images_root else None)
    samples: list[Sample] = []
    ids: set[str] = set()
    for sample in _progress(converter(root, conversion), f"prepare {source}"):
        if sample.id in ids:
            raise DataError(f"{source}: two samples share the id {sample.id!r}")
        ids.add(sample.id)
        samples.append(sample)
        if limit is not None and len(samples) >= limit:
            break
    check_patient_splits(samples)
    out_dir = out.resolve().parent
    lines = []
    for s in samples:
        for img in s.images:
            p = Path(img.path).resolve()
            img.path = os.path.relpath(p, out_dir) if relative_paths else str(p)
        lines.append(sample_to_json(s))
    atomic_write_jsonl(out, lines)
    summary = conversion.summary
    summary.out = out
    summary.written = len(samples)
    summary.by_task = Counter(s.task.value for s in samples)
    summary.by_split = Counter(s.split.value for s in samples)
    return summary
