"""XrayBench as released (``Qika/xraybench`` on the hub) → samples, every benchmark group and task kept.

The release's columns could not be confirmed (docs/data.md says what is known), so nothing here assumes them: each
field is found among candidate column names, ``--column-map field=column`` names it outright, and a field that cannot
be found fails once, listing the configs, splits and columns the dataset has. The paper's six groups map to our
``source``/``task`` (``PAPER_GROUPS``), so evaluation's ``benchmark_name(source, task)`` gives one group per block of
the paper's tables. The group of a row comes from a group column, the config name or the split name (whichever names
it), else from the image path and the prompt (report groups only; counted as inferred).

Loading is ``datasets``' own: ``load_dataset`` on a snapshot folder (README.md ``configs:`` or file names),
``load_from_disk`` on a ``save_to_disk`` folder, and ``huggingface_hub.snapshot_download`` for a hub id (a cached
snapshot is used offline).
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from huggingface_hub import snapshot_download
from PIL import Image as PILImage

from deepmedix.data.convert import (
    MIMIC_SOURCES,
    Conversion,
    ConversionSummary,
    OnError,
    checked_image,
    finish_conversion,
)
from deepmedix.data.enums import AnswerType, Split, Task, guess_answer_type
from deepmedix.data.schema import ImageRef, Provenance, Sample
from deepmedix.errors import DataError, OptionError, RowError
from deepmedix.io import atomic_write_bytes, check_output, iter_jsonl, make_parents, read_json, remove_created

HUB_ID = "Qika/xraybench"
XRAYBENCH_CITATION = (
    "DeepMedix-R1: chest X-ray foundation model with grounded reasoning (arXiv:2509.03906, 2025); XrayBench, "
    "https://huggingface.co/datasets/Qika/xraybench."
)

# The paper's group names (Table 1 blocks, the VQA text) → our (source, task).
PAPER_GROUPS: dict[str, tuple[str, Task]] = {
    "MIMIC-CXR Findings": ("mimic-cxr", Task.REPORT_FINDINGS),
    "MIMIC-CXR Impression": ("mimic-cxr", Task.REPORT_IMPRESSION),
    "OPEN-I Findings": ("open-i", Task.REPORT_FINDINGS),
    "OPEN-I Impression": ("open-i", Task.REPORT_IMPRESSION),
    "Ext-VQA": ("ext-vqa", Task.VQA),
    "CXR-VQA": ("cxr-vqa", Task.VQA),
}

# Candidate column names per field, in order of preference (EasyR1's prompt/answer/images first).
FIELD_CANDIDATES: dict[str, tuple[str, ...]] = {
    "prompt": ("prompt", "problem", "question", "query", "instruction", "input"),
    "answer": ("answer", "solution", "label", "ground_truth", "gt", "response", "output", "target"),
    "image": ("images", "image", "image_path", "img_path", "image_paths", "path", "file_name"),
    "group": ("dataset", "source", "subset", "benchmark", "group", "data_source", "category", "task", "type"),
    "id": ("id", "idx", "index", "sample_id", "question_id", "uid"),
    "question_type": ("question_type", "content_type", "qtype"),
    "answer_type": ("answer_type",),
    "patient": ("subject_id", "patient_id"),
    "study": ("study_id",),
}
REQUIRED_FIELDS = ("prompt", "answer", "image")
# A ShareGPT-style column stands in for prompt (first user turn) and answer (last assistant turn).
CONVERSATION_COLUMNS = ("conversations", "messages")
_USER_ROLES = ("human", "user")
_ASSISTANT_ROLES = ("gpt", "assistant")
_TASK_NAMES = {
    "findings": Task.REPORT_FINDINGS,
    "report_findings": Task.REPORT_FINDINGS,
    "impression": Task.REPORT_IMPRESSION,
    "report_impression": Task.REPORT_IMPRESSION,
    "vqa": Task.VQA,
    "grounding": Task.GROUNDING,
}
_PLACEHOLDER = re.compile(r"[ \t]*<image>[ \t]*")
_MIMIC_PATH = re.compile(r"p\d{2}/p(\d+)/s(\d+)/([^/]+)\.(?:jpg|jpeg|png|dcm)$", re.IGNORECASE)
# Open-I file names: Kaggle "1_IM-0001-4001.dcm.png", NLM "CXR1_1_IM-0001-3001.png" (the uid is the first number).
_OPEN_I_NAME = re.compile(r"^(?:CXR)?(\d+)_(?:\d+_)?IM-\d+-\d+", re.IGNORECASE)


# --- options --------------------------------------------------------------------------------------------------------


def parse_column_map(text: str | None) -> dict[str, str]:
    """``prompt=question,answer=label`` → ``{"prompt": "question", "answer": "label"}`` (fields checked)."""
    mapping: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, column = item.partition("=")
        key, column = key.strip(), column.strip()
        if not sep or not column:
            raise OptionError(f"--column-map: {item.strip()!r} is not FIELD=COLUMN")
        if key not in FIELD_CANDIDATES:
            raise OptionError(f"--column-map: unknown field {key!r}; fields are {', '.join(FIELD_CANDIDATES)}")
        mapping[key] = column
    return mapping


def parse_group_map(text: str | None) -> dict[str, tuple[str, Task]]:
    """``"MIMIC findings=mimic-cxr/findings,vqa1=ext-vqa/vqa"`` → group value → (source, task)."""
    mapping: dict[str, tuple[str, Task]] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        value, sep, target = item.rpartition("=")
        source, slash, task = target.strip().partition("/")
        if not sep or not slash or task.strip() not in _TASK_NAMES or not source.strip():
            raise OptionError(
                f"--group-map: {item.strip()!r} is not VALUE=SOURCE/TASK (TASK one of findings, impression, vqa)"
            )
        mapping[value.strip()] = (source.strip(), _TASK_NAMES[task.strip()])
    return mapping


# --- finding and loading the release --------------------------------------------------------------------------------


def resolve_snapshot(
    root: str, revision: str | None = None, offline: bool = False, hub_cache: Path | None = None
) -> Path:
    """A local folder (or data file) as is; a hub id through ``snapshot_download`` (a cached snapshot offline)."""
    path = Path(root).expanduser()
    if path.exists():
        return path
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", root):
        raise FileNotFoundError(f"{root}: no such folder (and not a hub id such as {HUB_ID})")
    try:
        folder = snapshot_download(
            root, repo_type="dataset", revision=revision, cache_dir=hub_cache, local_files_only=offline
        )
    except Exception as e:  # the hub library's many network/cache errors: one message, with the way out
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OptionError(
            f"{root}: not a local folder, and no snapshot of the hub dataset could be had ({type(e).__name__}: "
            f"{reason}); on a machine that reaches the hub run `hf download {root} --repo-type dataset --local-dir "
            "DIR`, then give --root DIR"
        ) from None
    return Path(folder)


_DATA_FILE_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv", ".arrow": "arrow"}


def load_release(path: Path, cache_dir: Path | None = None) -> dict[str, dict[str, datasets.Dataset]]:
    """config → split → Dataset, for a snapshot folder, a ``save_to_disk`` folder or one data file."""
    cache = str(cache_dir) if cache_dir else None
    if path.is_file():
        builder = _DATA_FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise DataError(f"{path}: not a data file datasets reads ({', '.join(_DATA_FILE_BUILDERS)})")
        if builder == "json":  # datasets' JSON reader takes NaN and the like: the project's reader checks first
            for _ in iter_jsonl(path) if path.suffix.lower() == ".jsonl" else [read_json(path)]:
                pass
        try:
            loaded = datasets.load_dataset(builder, data_files={"test": str(path)}, cache_dir=cache)
        except Exception as e:  # datasets' and pyarrow's own errors for a file they cannot read
            raise DataError(f"{path}: datasets cannot read this file ({_first_cause(e)})") from None
        return {path.stem: dict(loaded)}
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        on_disk = datasets.load_from_disk(str(path))
        splits = dict(on_disk) if isinstance(on_disk, datasets.DatasetDict) else {"test": on_disk}
        return {"default": splits}
    try:
        configs = datasets.get_dataset_config_names(str(path))
    except Exception as e:  # datasets' own errors for a folder it cannot read
        raise DataError(f"{path}: datasets cannot read this folder as a dataset ({type(e).__name__}: {e})") from None
    out: dict[str, dict[str, datasets.Dataset]] = {}
    for config in configs:
        try:
            loaded = datasets.load_dataset(str(path), name=config, cache_dir=cache)
        except Exception as e:
            raise DataError(f"{path}: config {config!r} cannot be loaded ({type(e).__name__}: {e})") from None
        out[config] = dict(loaded)
    return out


def _first_cause(error: BaseException) -> str:
    """The root cause of a library's wrapped error, as one short line (its type and first line)."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def describe_release(release: dict[str, dict[str, datasets.Dataset]]) -> list[str]:
    """One line per config/split: rows and columns with their feature types."""
    lines = []
    for config, splits in release.items():
        for split, ds in splits.items():
            columns = ", ".join(f"{name} ({_feature_name(feat)})" for name, feat in ds.features.items())
            lines.append(f"config {config!r} split {split!r} ({ds.num_rows} rows): {columns}")
    return lines


def _feature_name(feature: Any) -> str:
    if isinstance(feature, datasets.Image):
        return "Image"
    if isinstance(feature, datasets.Value):
        return feature.dtype
    if isinstance(feature, datasets.List | datasets.Sequence):
        return f"list of {_feature_name(feature.feature)}"
    if isinstance(feature, dict):
        return "struct"
    return type(feature).__name__


# --- columns --------------------------------------------------------------------------------------------------------


@dataclass
class Columns:
    """Which column holds each field in one config/split (``None``: absent)."""

    by_field: dict[str, str | None]
    conversation: str | None = None

    def __getitem__(self, name: str) -> str | None:
        return self.by_field.get(name)


def detect_columns(names: list[str], column_map: dict[str, str]) -> tuple[Columns, list[str]]:
    """Columns for each field (the map first, then the candidates); also the required fields still missing."""
    lower = {n.lower(): n for n in names}
    by_field: dict[str, str | None] = {}
    for name, candidates in FIELD_CANDIDATES.items():
        if name in column_map:
            by_field[name] = column_map[name] if column_map[name] in names else None
            continue
        by_field[name] = next((lower[c] for c in candidates if c in lower), None)
    conversation = next((lower[c] for c in CONVERSATION_COLUMNS if c in lower), None)
    missing = []
    for name in REQUIRED_FIELDS:
        if name in column_map:
            continue
        if by_field[name] is None and not (conversation and name in ("prompt", "answer")):
            missing.append(f"the {name} column")
    # A mapped column that does not exist is an error, for optional fields (group, id, …) too.
    for name, column in column_map.items():
        if by_field.get(name) is None:
            missing.append(f"the column {column!r} given for {name}")
    return Columns(by_field, conversation), missing


def _column_error(where: str, problems: list[str], layout: list[str], column_map: dict[str, str]) -> DataError:
    looked = "; ".join(f"{f}: {', '.join(FIELD_CANDIDATES[f])}" for f in REQUIRED_FIELDS)
    mapped = f" (--column-map given: {', '.join(f'{k}={v}' for k, v in column_map.items())})" if column_map else ""
    return DataError(
        f"{where}: cannot find "
        + "; ".join(problems)
        + f"{mapped}. Looked for {looked}. The dataset has: "
        + " | ".join(layout)
        + ". Name the columns with --column-map prompt=COLUMN,answer=COLUMN,image=COLUMN (also group, id, "
        "question_type, answer_type, patient, study)"
    )


# --- groups ---------------------------------------------------------------------------------------------------------


def match_group(*parts: str) -> tuple[str, Task] | None:
    """The (source, task) a group name means: "MIMIC-CXR Findings", "openi_impression", "Ext-VQA", "cxr_vqa", …"""
    text = re.sub(r"[^a-z0-9]", "", " ".join(parts).lower())
    for name, target in PAPER_GROUPS.items():
        if re.sub(r"[^a-z0-9]", "", name.lower()) == text:
            return target
    if "vqa" in text:
        if "ext" in text or "mimiccxrvqa" in text:  # MIMIC-Ext-MIMIC-CXR-VQA (its repository: mimic-cxr-vqa)
            return ("ext-vqa", Task.VQA)
        if "medical" in text or "cxrvqa" in text:  # Medical-CXR-VQA
            return ("cxr-vqa", Task.VQA)
        return None
    if "mimic" in text:
        source = "mimic-cxr"
    elif any(k in text for k in ("openi", "iuxray", "indiana")):
        source = "open-i"
    else:
        return None
    findings, impression = "finding" in text, "impression" in text
    if findings == impression:
        return None
    return (source, Task.REPORT_FINDINGS if findings else Task.REPORT_IMPRESSION)


def infer_group(prompt: str, image_names: list[str]) -> tuple[str, Task] | None:
    """A report group from the image path (MIMIC-CXR or Open-I) and the section the prompt asks for."""
    source = None
    for name in image_names:
        if _MIMIC_PATH.search(name.replace("\\", "/")):
            source = "mimic-cxr"
        elif _OPEN_I_NAME.match(Path(name).name):
            source = "open-i"
    words = prompt.upper()
    findings, impression = "FINDINGS" in words, "IMPRESSION" in words
    if source is None or findings == impression:
        return None
    return (source, Task.REPORT_FINDINGS if findings else Task.REPORT_IMPRESSION)


# --- rows -----------------------------------------------------------------------------------------------------------


def strip_image_placeholders(text: str) -> tuple[str, int]:
    """The prompt without ``<image>`` placeholders (the chat message carries the image itself), and their count."""
    n = text.count("<image>")
    if not n:
        return text.strip(), 0
    cleaned = _PLACEHOLDER.sub(" ", text)
    cleaned = "\n".join(line.strip(" ") for line in cleaned.split("\n"))
    return cleaned.strip(), n


def _turns(value: Any) -> list[tuple[str, str]]:
    turns = []
    for turn in value or []:
        if isinstance(turn, dict):
            role = str(turn.get("from") or turn.get("role") or "").lower()
            content = turn.get("value", turn.get("content"))
            if isinstance(content, list):  # OpenAI-style content parts
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            turns.append((role, "" if content is None else str(content)))
    return turns


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):  # a table's missing value
        return ""
    if isinstance(value, list | tuple):
        return " | ".join(str(v).strip() for v in value if str(v).strip())
    return str(value).strip()


def ids_from_image_name(name: str) -> tuple[str | None, str | None]:
    """(patient, study) from a MIMIC-CXR-JPG path (subject, study) or an Open-I file name (uid, uid)."""
    m = _MIMIC_PATH.search(name.replace("\\", "/"))
    if m:
        return m.group(1), m.group(2)
    m = _OPEN_I_NAME.match(Path(name).name)
    if m:
        return m.group(1), m.group(1)
    return None, None


@dataclass
class XrayBenchOptions:
    column_map: dict[str, str] = field(default_factory=dict)
    group_map: dict[str, tuple[str, Task]] = field(default_factory=dict)
    image_roots: tuple[Path, ...] = ()  # where relative image paths are looked up (MIMIC-CXR-JPG, Open-I, …)
    image_dir: Path | None = None  # where embedded images are written (beside the output)


class _Images:
    """Turns a row's image value into files: embedded bytes are written out once, paths are found under the roots."""

    def __init__(self, snapshot: Path, options: XrayBenchOptions, conversion: Conversion):
        self.bases = (*options.image_roots, snapshot if snapshot.is_dir() else snapshot.parent)
        self.image_dir = options.image_dir
        self.conversion = conversion

    def items(self, value: Any) -> list[Any]:
        if value is None:
            return []
        return list(value) if isinstance(value, list | tuple) else [value]

    def name(self, item: Any) -> str:
        if isinstance(item, dict):
            return str(item.get("path") or "")
        return item if isinstance(item, str) else ""

    def materialise(self, item: Any, where: tuple[str, str | int, str]) -> Path:
        file, row, column = where
        if isinstance(item, dict) and item.get("bytes"):
            return self._write(item["bytes"], where)
        if isinstance(item, PILImage.Image):
            buf = io.BytesIO()
            item.save(buf, format="PNG")
            return self._write(buf.getvalue(), where)
        rel = self.name(item)
        if not rel:
            raise RowError(file, row, column, "no image (neither bytes nor a path)", reason="image not found")
        return self._find(rel, where)

    def _write(self, data: bytes, where: tuple[str, str | int, str]) -> Path:
        """Embedded bytes → ``<image dir>/<content hash>.<format>``, written once however many rows share them."""
        if self.image_dir is None:
            raise OptionError("embedded images need a folder to be written to")
        try:
            with PILImage.open(io.BytesIO(data)) as img:  # the suffix from the bytes, not from a stored file name
                suffix = "." + (img.format or "png").lower().replace("jpeg", "jpg")
        except Exception:
            raise RowError(*where, "embedded image bytes are not an image", reason="unreadable image") from None
        target = self.image_dir / f"{hashlib.sha256(data).hexdigest()[:20]}{suffix}"
        if not target.is_file():
            atomic_write_bytes(target, data)
            self.conversion.note("embedded images written out")
        return target

    def _find(self, rel: str, where: tuple[str, str | int, str]) -> Path:
        path = Path(rel)
        if path.is_absolute():
            if path.is_file():
                return path
            raise RowError(*where, f"image file not found: {path}", reason="image not found")
        inner = rel[len("files/") :] if rel.startswith("files/") else rel
        tried: list[Path] = []
        for base in self.bases:
            for candidate in (
                base / rel,
                base / "files" / inner,
                base / inner,
                base / "images" / "images_normalized" / rel,
                base / "images_normalized" / rel,
                base / "images" / rel,
            ):
                if candidate in tried:
                    continue
                tried.append(candidate)
                if candidate.is_file():
                    return candidate
        shown = ", ".join(str(t) for t in tried[:6]) + (" …" if len(tried) > 6 else "")
        raise RowError(
            *where,
            f"image file not found: {rel} (tried {shown}; --images names the folders images are under)",
            reason="image not found",
        )


def convert_xraybench(
    snapshot: Path, release: dict[str, dict[str, datasets.Dataset]], options: XrayBenchOptions, conversion: Conversion
) -> Iterator[Sample]:
    layout = describe_release(release)
    plans: list[tuple[str, str, datasets.Dataset, Columns]] = []
    problems: list[str] = []
    for config, splits in release.items():
        for split, ds in splits.items():
            columns, missing = detect_columns(list(ds.features), options.column_map)
            if missing:
                problems.append(f"{' and '.join(missing)} in config {config!r} split {split!r}")
            plans.append((config, split, ds, columns))
    if not plans:
        raise DataError(f"{snapshot}: the dataset has no splits")
    if problems:
        raise _column_error(str(snapshot), problems, layout, options.column_map)
    unresolved: dict[str, int] = {}
    images = _Images(snapshot, options, conversion)
    for config, split, ds, columns in plans:
        image_column = columns["image"]
        assert image_column is not None
        ds = _undecoded(ds, image_column)
        where_file = f"{snapshot.name or snapshot} [{config}/{split}]"
        for index, row in enumerate(ds):
            with conversion.row():
                sample = _row_sample(row, index, config, split, columns, images, options, where_file, conversion)
                if isinstance(sample, str):  # the row's group could not be told
                    unresolved[sample] = unresolved.get(sample, 0) + 1
                    continue
                yield sample
    if unresolved:
        shown = "; ".join(f"{k!r} ({n} rows)" for k, n in list(unresolved.items())[:10])
        raise DataError(
            f"{snapshot}: cannot tell the benchmark group (MIMIC-CXR/Open-I findings/impression, Ext-VQA, CXR-VQA) "
            f"of {sum(unresolved.values())} rows, by group value/config/split: {shown}. Name them with --group-map "
            "'VALUE=SOURCE/TASK,…' (e.g. 'mimic_f=mimic-cxr/findings,vqa_a=ext-vqa/vqa') or the group column with "
            "--column-map group=COLUMN. The dataset has: " + " | ".join(layout)
        )


def _undecoded(ds: datasets.Dataset, column: str) -> datasets.Dataset:
    """The image column as ``{bytes, path}`` dicts, not decoded pictures (we only write or locate the files)."""
    feature = ds.features[column]
    if isinstance(feature, datasets.Image):
        return ds.cast_column(column, datasets.Image(decode=False))
    if isinstance(feature, datasets.List | datasets.Sequence) and isinstance(feature.feature, datasets.Image):
        return ds.cast_column(column, datasets.List(datasets.Image(decode=False)))
    return ds


def _row_sample(
    row: dict[str, Any],
    index: int,
    config: str,
    split: str,
    columns: Columns,
    images: _Images,
    options: XrayBenchOptions,
    file: str,
    conversion: Conversion,
) -> Sample | str:
    where = index  # the dataset's own row index (0-based), as its viewer shows it; messages read "row N"
    turns = _turns(row.get(columns.conversation)) if columns.conversation else []
    if columns["prompt"]:
        raw_prompt = _text(row.get(columns["prompt"]))
    else:
        raw_prompt = next((t for r, t in turns if r in _USER_ROLES), "")
    if columns["answer"]:
        answer = _text(row.get(columns["answer"]))
    else:
        answer = next((t for r, t in reversed(turns) if r in _ASSISTANT_ROLES), "").strip()
    prompt, placeholders = strip_image_placeholders(raw_prompt)
    prompt_field = columns["prompt"] or columns.conversation
    if not prompt:
        raise RowError(file, where, prompt_field, "empty prompt", reason="empty field")
    if not answer:
        raise RowError(file, where, columns["answer"] or columns.conversation, "empty answer", reason="empty field")

    group_value = _text(row.get(columns["group"])) if columns["group"] else ""
    image_items = images.items(row.get(columns["image"]))
    names = [images.name(item) for item in image_items]
    target, group_from = None, ""
    for key in (group_value, config, split):
        if key and key in options.group_map:
            target, group_from = options.group_map[key], f"--group-map {key!r}"
            break
    if target is None:
        attempts: list[tuple[str, tuple[str, ...]]] = []
        if group_value:
            attempts += [(f"column {columns['group']}", (group_value,))]
            attempts += [(f"column {columns['group']} and the config name", (config, group_value))]
        attempts += [("config name", (config,)), ("split name", (split,)), ("config and split names", (config, split))]
        for label, parts in attempts:
            if (target := match_group(*parts)) is not None:
                group_from = label
                break
    if target is None and (target := infer_group(prompt, names)) is not None:
        group_from = "inferred from the image path and the prompt"
    if target is None:
        return " / ".join(p for p in (group_value, config, split) if p)
    # counted once the row is known good (a bad image below skips it)
    notes = [f"group from the {group_from}" if not group_from.startswith(("inferred", "--")) else group_from]
    source, task = target

    if not image_items:
        raise RowError(file, where, columns["image"], "no image", reason="image not found")
    refs = []
    for item in image_items:
        path = images.materialise(item, (file, where, columns["image"] or "image"))
        width, height = checked_image(path, Path(file), where, columns["image"] or "image")
        refs.append(ImageRef(path=str(path), width=width, height=height))

    answer_type = None
    if columns["answer_type"]:
        value = _text(row.get(columns["answer_type"])).lower()
        answer_type = AnswerType(value) if value in AnswerType._value2member_map_ else None
    if answer_type is None:
        if task in (Task.REPORT_FINDINGS, Task.REPORT_IMPRESSION):
            answer_type = AnswerType.OPEN
        else:
            answer_type = guess_answer_type(answer)
            notes.append("answer type by the released rule (| and ≤ 20 words multi, ≤ 2 words closed)")
    if "<think>" in prompt or "\\boxed" in prompt:
        notes.append("prompts that already ask for <think>/\\boxed{} (do not add a reasoning suffix twice)")

    patient = _text(row.get(columns["patient"])) if columns["patient"] else ""
    study = _text(row.get(columns["study"])) if columns["study"] else ""
    if not patient:
        for name in names:
            found_patient, found_study = ids_from_image_name(name)
            if found_patient:
                patient, study = found_patient, study or (found_study or "")
                break
    if not patient:
        notes.append("rows without a patient id (not checkable for leakage)")
    record = _text(row.get(columns["id"])) if columns["id"] else ""
    question_type = _text(row.get(columns["question_type"])).lower() if columns["question_type"] else ""
    for note in notes:
        conversion.note(note)
    conversion.summary.split_from["XrayBench (a test benchmark: every row is a test sample)"] += 1
    return Sample(
        id=f"xraybench/{config}/{split}/{record or index}",
        source=source,
        split=Split.TEST,
        task=task,
        images=refs,
        prompt=prompt,
        answer=answer,
        answer_type=answer_type,
        question_type=question_type or None,
        patient_id=(patient.lstrip("p") if source in MIMIC_SOURCES else patient) or None,
        study_id=study.lstrip("s") or None,
        provenance=Provenance(
            dataset=f"XrayBench ({HUB_ID})",
            file=f"{config}/{split}",
            record=f"row {where}" + (f" (id {record})" if record else ""),
            citation=XRAYBENCH_CITATION,
            group=group_value or None,
            group_from=group_from,
            image_placeholders=placeholders or None,
            image_names=[n for n in names if n] or None,
        ),
    )


def prepare_xraybench(
    root: str,
    out: str | Path,
    *,
    column_map: dict[str, str] | None = None,
    group_map: dict[str, tuple[str, Task]] | None = None,
    image_roots: tuple[Path, ...] = (),
    on_error: OnError = "fail",
    limit: int | None = None,
    relative_paths: bool = False,
    revision: str | None = None,
    offline: bool = False,
    cache_dir: Path | None = None,
    hub_cache: Path | None = None,
) -> ConversionSummary:
    """XrayBench (a snapshot folder, a data file or a hub id) → a samples JSONL of its test samples.

    Embedded images are written to ``<out stem>-images/`` beside the output; path images are looked up under
    ``image_roots`` (e.g. MIMIC-CXR-JPG and the Open-I folder), then the snapshot.
    """
    for folder in image_roots:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder not found (--images)")
    out = Path(out)
    check_output(out)
    snapshot = resolve_snapshot(root, revision=revision, offline=offline, hub_cache=hub_cache)
    release = load_release(snapshot, cache_dir=cache_dir)
    options = XrayBenchOptions(
        column_map=column_map or {},
        group_map=group_map or {},
        image_roots=tuple(image_roots),
        image_dir=out.resolve().parent / f"{out.stem}-images",
    )
    conversion = Conversion("xraybench", on_error)
    conversion.summary.header = [f"{snapshot}:", *(f"  {line}" for line in describe_release(release))]
    # Embedded images are written as rows are read: a failure later removes the ones this run wrote (and the
    # folder, if it made it), so nothing is left without the samples file that names it.
    image_dir = options.image_dir
    assert image_dir is not None
    earlier = set(image_dir.iterdir()) if image_dir.is_dir() else set()
    created = make_parents(image_dir / "_")
    try:
        summary = finish_conversion(
            conversion, convert_xraybench(snapshot, release, options, conversion), out, limit, relative_paths
        )
    except BaseException:
        for written in set(image_dir.iterdir()) - earlier:
            written.unlink(missing_ok=True)
        remove_created(created)
        raise
    remove_created(created)  # made for images the release did not embed: not left empty
    return summary
