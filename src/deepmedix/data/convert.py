"""What every dataset converter shares: row errors that name file/row/field, skip-or-fail, splits, atomic output.

A converter is a generator ``convert(root, conversion) -> Iterator[Sample]`` registered in ``SOURCES``. It raises
:class:`RowError` for a bad row inside a ``with conversion.row(file, row):`` block; the conversion then either stops
(``on_error="fail"``) or counts the row as skipped and goes on (``on_error="skip"``).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from deepmedix.data.enums import Split
from deepmedix.data.images import image_size
from deepmedix.data.schema import Box, Sample, sample_to_json
from deepmedix.errors import DataError, ImageError, InputFileError, OptionError, RowError, SplitLeakError
from deepmedix.io import atomic_write_jsonl, check_output, decode_utf8

log = logging.getLogger(__name__)

OnError = Literal["skip", "fail"]

# Patient-level split by hash where a source has no official split (80/10/10).
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_SALT = "deepmedix-split-v1"

# Sources whose patients are MIMIC-CXR subjects: one patient, one key, whichever of them a sample comes from.
MIMIC_SOURCES = frozenset({"mimic-cxr", "ms-cxr", "ext-vqa", "cxr-vqa"})
# MIMIC-CXR-JPG's official split (patient-level; the CSV keeps "2.0.0" in its name in version 2.1.0 too).
MIMIC_SPLIT_FILES = ("mimic-cxr-2.0.0-split.csv", "mimic-cxr-2.1.0-split.csv")
# How many patients an error or a summary names before it says "and N more".
FIRST_PATIENTS = 10


@dataclass
class ConversionSummary:
    source: str
    out: Path | None = None
    written: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)  # the first skipped rows' messages, for the user
    by_task: Counter[str] = field(default_factory=Counter)
    by_split: Counter[str] = field(default_factory=Counter)
    split_from: Counter[str] = field(default_factory=Counter)  # which authority gave each sample its split
    split_warnings: set[str] = field(default_factory=set)  # authorities that leave test patients exposed
    split_disagreements: Counter[str] = field(default_factory=Counter)  # "own → official" for overridden rows
    disagreeing_patients: list[str] = field(default_factory=list)  # the first few
    notes: Counter[str] = field(default_factory=Counter)  # decisions taken on rows, counted (not errors)
    header: list[str] = field(default_factory=list)  # what was read, shown before the counts

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def lines(self) -> list[str]:
        out = [*self.header, f"{self.source}: wrote {self.written} samples" + (f" to {self.out}" if self.out else "")]
        if self.by_task:
            out.append("  tasks: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_task.items())))
        if self.by_split:
            out.append("  splits: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_split.items())))
        for authority, n in self.split_from.most_common():
            warn = "WARNING: " if authority in self.split_warnings else ""
            out.append(f"  {warn}split from {authority}: {n} samples")
        if self.split_disagreements:
            n = sum(self.split_disagreements.values())
            out.append(
                f"  the official MIMIC-CXR split overrode the source's own split of {n} samples ("
                + ", ".join(f"{k} {v}" for k, v in self.split_disagreements.most_common())
                + "); patients "
                + ", ".join(self.disagreeing_patients)
                + (" …" if n > len(self.disagreeing_patients) else "")
            )
        for note, n in sorted(self.notes.items()):
            out.append(f"  {note}: {n}")
        if self.skipped:
            out.append(
                f"  skipped {self.n_skipped} rows: " + "; ".join(f"{k} ({v})" for k, v in self.skipped.most_common())
            )
            out.extend(f"    {m}" for m in self.messages)
        return out


class Conversion:
    """State of one conversion run: error policy, skip counts, and the first few skip messages."""

    MAX_MESSAGES = 10

    def __init__(
        self,
        source: str,
        on_error: OnError = "fail",
        images_root: Path | None = None,
        reports_root: Path | None = None,
        mimic_split_file: Path | None = None,
    ):
        if on_error not in ("skip", "fail"):
            raise OptionError(f"on_error must be 'skip' or 'fail', not {on_error!r}")
        self.source = source
        self.on_error: OnError = on_error
        self.images_root = images_root
        self.reports_root = reports_root
        self.mimic_split_file = mimic_split_file
        self.summary = ConversionSummary(source)
        self._mimic_split: MimicSplit | None = None
        self._mimic_split_searched = False

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

    def note(self, what: str) -> None:
        """Count a decision taken on a row (e.g. an empty answer list written "none"), shown in the summary."""
        self.summary.notes[what] += 1

    def mimic_split(self, *roots: Path | None) -> MimicSplit | None:
        """The official MIMIC-CXR split: ``--mimic-split`` if given, else the first split CSV found under ``roots``.

        Read once per conversion; ``None`` when there is none (the caller then falls back, loudly).
        """
        if not self._mimic_split_searched:
            self._mimic_split_searched = True
            path = find_mimic_split_file(self.mimic_split_file, *roots)
            self._mimic_split = MimicSplit.read(path, self) if path is not None else None
        return self._mimic_split

    def resolve_split(
        self,
        official: MimicSplit | None,
        *,
        subject: str,
        study: str | None = None,
        dicom: str | None = None,
        own: Split | None = None,
        own_name: str = "the source's own split",
    ) -> Split:
        """A MIMIC-derived sample's split, with the official MIMIC-CXR split as the authority.

        Order: the official split (by image, else study, else patient); the source's own split (``own``); a patient
        hash. The source's own split is checked against the official one, and each override is counted, naming the
        first patients. Falling back is counted as a warning: official test patients may then reach training.
        """
        if official is not None:
            split = official.lookup(dicom=dicom, study=study, subject=subject)
            if split is not None:
                self.summary.split_from[f"the official MIMIC-CXR split ({official.file.name})"] += 1
                if own is not None and own != split:
                    self.summary.split_disagreements[f"{own.value} → {split.value}"] += 1
                    if subject not in self.summary.disagreeing_patients and (
                        len(self.summary.disagreeing_patients) < FIRST_PATIENTS
                    ):
                        self.summary.disagreeing_patients.append(subject)
                return split
            missing = f"patients missing from {official.file.name}"
        else:
            missing = "no official MIMIC-CXR split found (give --mimic-split FILE)"
        if own is not None:
            authority = f"{own_name} ({missing})"
            result = own
        else:
            authority = f"a patient hash ({missing})"
            result = hash_split(f"mimic:{subject}")
        self.summary.split_from[authority] += 1
        self.summary.split_warnings.add(authority)
        return result

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


# A CSV field longer than this is refused, naming its row and column: no field of these releases comes near it (a
# report is a few KB), and a field this long is most often an unclosed quote that swallowed the rest of the file.
MAX_CSV_FIELD = 1 << 20  # characters
# The csv module's own limit (128 KB by default) is raised above ours, so ours names the column; beyond this one
# the row is refused without reading further (what memory an unclosed quote may take).
CSV_READ_LIMIT = 16 << 20


def _csv_lines(path: Path) -> Iterator[str]:
    """The file's lines as text, each decoded alone, so invalid UTF-8 is named by its line (a BOM is dropped)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        try:
            for lineno, raw in enumerate(fh, start=1):
                yield decode_utf8(raw, path, line=lineno)
        except EOFError:  # a .gz cut short
            raise InputFileError(path, "the compressed file ends early (a truncated download?)") from None


def read_csv(
    path: Path, required: tuple[str, ...] | list[str], conversion: Conversion | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV as ``(row number, dict)``; a missing required column fails at once, naming file and column.

    A row with more or fewer cells than the header, or a field over :data:`MAX_CSV_FIELD` characters, is malformed:
    with a ``conversion`` it is skipped or fails by its policy, without one it fails. Text that is not CSV at all
    (e.g. a field beyond the csv module's limit) fails, naming the row.
    """
    csv.field_size_limit(max(csv.field_size_limit(), CSV_READ_LIMIT))
    reader = csv.DictReader(_csv_lines(path))
    rowno = 0
    try:
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
            long = next((k for k, v in raw.items() if v is not None and len(v) > MAX_CSV_FIELD), None)
            if extra or absent or long:
                if long:
                    message = (
                        f"a field of {len(raw[long]):,} characters, over the {MAX_CSV_FIELD:,} these files can hold "
                        "(an unclosed quote?)"
                    )
                else:
                    n_cells = len(columns) + len(extra or []) - absent
                    message = f"malformed row: {n_cells} cells for {len(columns)} columns"
                err = RowError(path, rowno, long, message, reason="malformed row")
                if conversion is None:
                    raise err
                conversion.skip(err)
                continue
            yield rowno, {k: v.strip() for k, v in raw.items()}
    except csv.Error as e:
        raise RowError(path, rowno + 1, None, f"not valid CSV ({e}; an unclosed quote?)") from None


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


class MimicSplit:
    """MIMIC-CXR-JPG's ``mimic-cxr-2.0.0-split.csv``: the split of every image, and so of its study and patient."""

    def __init__(self, file: Path):
        self.file = file
        self.by_dicom: dict[str, Split] = {}
        self.by_study: dict[str, Split] = {}
        self.by_subject: dict[str, Split] = {}

    @classmethod
    def read(cls, path: Path, conversion: Conversion | None = None) -> MimicSplit:
        table = cls(path)
        for rowno, row in read_csv(path, ("dicom_id", "study_id", "subject_id", "split"), conversion):
            try:
                split = official_split(require(row, "split", path, rowno), path, rowno)
                table.by_dicom[require(row, "dicom_id", path, rowno)] = split
                table.by_study.setdefault(require(row, "study_id", path, rowno).lstrip("s"), split)
                table.by_subject.setdefault(require(row, "subject_id", path, rowno).lstrip("p"), split)
            except RowError as e:
                if conversion is None:
                    raise
                conversion.skip(e)
        return table

    def lookup(self, dicom: str | None = None, study: str | None = None, subject: str | None = None) -> Split | None:
        """The split of an image, else of its study, else of its patient (the split is patient-level)."""
        if dicom and dicom in self.by_dicom:
            return self.by_dicom[dicom]
        if study and study.lstrip("s") in self.by_study:
            return self.by_study[study.lstrip("s")]
        if subject and subject.lstrip("p") in self.by_subject:
            return self.by_subject[subject.lstrip("p")]
        return None


def find_mimic_split_file(explicit: Path | None, *roots: Path | None) -> Path | None:
    """``explicit`` (a split CSV or a MIMIC-CXR-JPG folder holding one), else the first split CSV under ``roots``."""
    if explicit is not None:
        if explicit.is_dir():
            return find_file(explicit, *MIMIC_SPLIT_FILES)
        if not explicit.is_file():
            raise FileNotFoundError(f"{explicit}: MIMIC-CXR split file not found (--mimic-split)")
        return explicit
    for root in roots:
        if root is not None:
            found = find_file(root, *MIMIC_SPLIT_FILES, required=False)
            if found is not None:
                return found
    return None


def patient_key(source: str, patient_id: str | None) -> tuple[str, str] | None:
    """Who a sample's patient is across sources: every MIMIC-derived source shares MIMIC-CXR's subject ids."""
    if not patient_id or not patient_id.strip():
        return None
    if source in MIMIC_SOURCES:
        return ("mimic", patient_id.strip().lstrip("p"))
    return (source, patient_id.strip())


def describe_patient(key: tuple[str, str]) -> str:
    return f"{key[0]} patient {key[1]}"


def check_patient_splits(samples: list[Sample]) -> None:
    """Fail loudly, naming the patient, when one patient's samples fall in two splits."""
    seen: dict[tuple[str, str], tuple[Split, str]] = {}
    for s in samples:
        key = patient_key(s.source, s.patient_id)
        if key is None:
            continue
        if key in seen and seen[key][0] != s.split:
            first_split, first_id = seen[key]
            raise SplitLeakError(
                f"patient {s.patient_id} of {s.source} is in two splits: {first_split.value} (sample {first_id}) "
                f"and {s.split.value} (sample {s.id}); splits must be patient-level"
            )
        seen.setdefault(key, (s.split, s.id))


def find_split_leaks(
    training: Iterable[tuple[str, str | None, str]], test: Iterable[tuple[str, str | None, str]]
) -> dict[tuple[str, str], tuple[set[str], set[str]]]:
    """Patients with training samples and test samples, across all sources: key → (training files, test files).

    Each sample is given as ``(source, patient id, file it was read from)``; MIMIC-derived sources share one key.
    """
    test_files: dict[tuple[str, str], set[str]] = {}
    for source, patient, file in test:
        key = patient_key(source, patient)
        if key is not None:
            test_files.setdefault(key, set()).add(file)
    leaks: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
    for source, patient, file in training:
        key = patient_key(source, patient)
        if key is not None and key in test_files:
            leaks.setdefault(key, (set(), test_files[key]))[0].add(file)
    return leaks


def split_leak_error(leaks: dict[tuple[str, str], tuple[set[str], set[str]]], hint: str = "") -> SplitLeakError:
    """One message naming the first leaking patients and, for each, the files it is in as training and as test."""
    keys = sorted(leaks)
    shown = [
        f"{describe_patient(k)} (training in {', '.join(sorted(leaks[k][0]))}; test in {', '.join(sorted(leaks[k][1]))})"
        for k in keys[:FIRST_PATIENTS]
    ]
    more = f" and {len(keys) - FIRST_PATIENTS} more" if len(keys) > FIRST_PATIENTS else ""
    return SplitLeakError(
        f"{len(keys)} patient(s) are in the training data and in the test split: " + "; ".join(shown) + more + hint
    )


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
    reports_root: str | Path | None = None,
    mimic_split: str | Path | None = None,
) -> ConversionSummary:
    """Convert a dataset folder into a samples JSONL, written atomically (all or nothing).

    ``limit`` stops after that many samples; ``relative_paths`` writes image paths relative to the output folder.
    ``reports_root`` is the MIMIC-CXR reports download (mimic-cxr); ``mimic_split`` the official MIMIC-CXR split CSV
    (or the MIMIC-CXR-JPG folder holding it) for the MIMIC-derived sources.
    """
    root = Path(root)
    check_output(out)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found" if not root.exists() else f"{root}: not a folder")
    for name, folder in (("--images", images_root), ("--reports-root", reports_root)):
        if folder is not None and not Path(folder).is_dir():
            raise FileNotFoundError(f"{folder}: folder not found ({name})")
    conversion = Conversion(
        source,
        on_error,
        Path(images_root) if images_root else None,
        reports_root=Path(reports_root) if reports_root else None,
        mimic_split_file=Path(mimic_split) if mimic_split else None,
    )
    return finish_conversion(conversion, converter(root, conversion), out, limit, relative_paths)


def finish_conversion(
    conversion: Conversion,
    samples_in: Iterator[Sample],
    out: str | Path,
    limit: int | None = None,
    relative_paths: bool = False,
) -> ConversionSummary:
    """Collect a converter's samples (unique ids, patient-level splits) and write them atomically."""
    out = Path(out)
    source = conversion.source
    samples: list[Sample] = []
    ids: set[str] = set()
    for sample in _progress(samples_in, f"prepare {source}"):
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
