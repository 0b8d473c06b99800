"""The five dataset converters (layouts in docs/data.md). Each turns a source folder into :class:`Sample` records.

MIMIC-derived sources (MIMIC-CXR, MS-CXR, Ext-VQA, CXR-VQA) refer to MIMIC-CXR-JPG images
``files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg``; those are looked up under ``--images`` (the MIMIC-CXR-JPG folder, or
its ``files/``) when given, else ``--root``. Their split is MIMIC-CXR's official one (``Conversion.resolve_split``).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deepmedix.data.convert import (
    MIMIC_SPLIT_FILES,
    Conversion,
    Converter,
    MimicSplit,
    as_float,
    checked_box,
    checked_image,
    find_file,
    hash_split,
    official_split,
    read_csv,
    require,
)
from deepmedix.data.enums import AnswerType, Task
from deepmedix.data.reports import extract_sections
from deepmedix.data.schema import ImageRef, Provenance, Sample
from deepmedix.errors import RowError
from deepmedix.io import read_json
from deepmedix.protocol import task_prompt

MIMIC_CXR_CITATION = (
    "Johnson AEW et al. MIMIC-CXR-JPG, a large publicly available database of labeled chest "
    "radiographs. arXiv:1901.07042 (2019); PhysioNet."
)
PHYSIONET_LICENSE = "PhysioNet Credentialed Health Data License 1.5.0"
FRONTAL_VIEWS = ("PA", "AP", "AP AXIAL", "PA LLD", "AP LLD", "AP RLD", "PA RLD")
_YES_NO = {"yes", "no"}


def _images_root(root: Path, conversion: Conversion) -> Path:
    return conversion.images_root or root


def mimic_image_path(images_root: Path, subject_id: str, study_id: str, dicom_id: str) -> Path:
    return images_root / "files" / mimic_image_rel(subject_id, study_id, dicom_id)


def mimic_image_rel(subject_id: str, study_id: str, dicom_id: str) -> str:
    """``pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg``: an image's path under MIMIC-CXR-JPG's ``files/``."""
    subject = subject_id.lstrip("p")
    study = study_id.lstrip("s")
    return f"p{subject[:2]}/p{subject}/s{study}/{dicom_id}.jpg"


def locate_mimic_image(
    rel: str, bases: tuple[Path, ...], file: Path, rowno: int | str | None, column: str
) -> tuple[Path, int, int]:
    """Find a MIMIC-CXR-JPG image given relative to ``files/`` (``p10/…``) or to the JPG folder (``files/p10/…``).

    Each base may be the MIMIC-CXR-JPG folder or its ``files/`` folder; a miss is a RowError listing every path tried.
    """
    inner = rel[len("files/") :] if rel.startswith("files/") else rel
    tried: list[Path] = []
    for base in bases:
        for candidate in (base / "files" / inner, base / inner):
            if candidate not in tried:
                tried.append(candidate)
            if candidate.is_file():
                width, height = checked_image(candidate, file, rowno, column)
                return candidate, width, height
    raise RowError(
        file,
        rowno,
        column,
        f"image file not found: {inner} (tried {', '.join(str(t) for t in tried)})",
        reason="image not found",
    )


def _image_bases(root: Path, conversion: Conversion) -> tuple[Path, ...]:
    return (conversion.images_root, root) if conversion.images_root else (root,)


def _frontal_rank(view: str | None) -> int:
    """Order in which a study's images are preferred as its one image: PA, then AP, then other frontal views."""
    v = (view or "").strip().upper()
    if v in FRONTAL_VIEWS:
        return FRONTAL_VIEWS.index(v)
    return len(FRONTAL_VIEWS) if v == "" else len(FRONTAL_VIEWS) + 1


# --- MIMIC-CXR ----------------------------------------------------------------------------------------------------


def _report_bases(folder: Path) -> tuple[Path, ...]:
    """Where a reports folder may hold ``pXX/pN/sN.txt``: the mimic-cxr download, its files/, or an unzip target."""
    return (
        folder / "files",
        folder / "mimic-cxr-reports" / "files",
        folder / "mimic-cxr-reports",
        folder / "reports" / "files",
        folder,
    )


def _find_report(roots: tuple[Path, ...], subject: str, study: str) -> Path | None:
    rel = Path(f"p{subject[:2]}") / f"p{subject}" / f"s{study}.txt"
    for root in roots:
        for base in _report_bases(root):
            if (base / rel).is_file():
                return base / rel
    return None


def convert_mimic_cxr(root: Path, conversion: Conversion) -> Iterator[Sample]:
    """MIMIC-CXR-JPG (``--root``) + the MIMIC-CXR reports (``--reports-root``, default ``--root``) → report samples.

    One frontal image per study. FINDINGS → report_findings, IMPRESSION → report_impression; a report with neither
    gives its last paragraph (the official parser's fallback) as its impression, marked ``section: last_paragraph``.
    """
    meta_file = find_file(root, "mimic-cxr-2.0.0-metadata.csv", "mimic-cxr-2.1.0-metadata.csv")
    assert meta_file is not None
    official = conversion.mimic_split(root, conversion.images_root)
    if official is None:
        raise FileNotFoundError(f"{root}: none of {', '.join(MIMIC_SPLIT_FILES)} found (is --root MIMIC-CXR-JPG?)")
    report_roots = (conversion.reports_root, root) if conversion.reports_root else (root,)
    image_bases = _image_bases(root, conversion)

    # study → candidate images (rank, dicom_id, view, row number)
    studies: dict[tuple[str, str], list[tuple[int, str, str | None, int]]] = defaultdict(list)
    for rowno, row in read_csv(meta_file, ("dicom_id", "subject_id", "study_id", "ViewPosition"), conversion):
        with conversion.row():
            dicom_id = require(row, "dicom_id", meta_file, rowno)
            subject = require(row, "subject_id", meta_file, rowno)
            study = require(row, "study_id", meta_file, rowno)
            view = (row.get("ViewPosition") or "").strip() or None
            studies[(subject, study)].append((_frontal_rank(view), dicom_id, view, rowno))

    for (subject, study), candidates in studies.items():
        with conversion.row():
            frontal = sorted(c for c in candidates if c[0] < len(FRONTAL_VIEWS))
            if not frontal:
                conversion.note_skip("no frontal image", f"{meta_file}: study s{study} has no PA/AP image")
                continue
            _, dicom_id, view, rowno = frontal[0]
            split = official.lookup(dicom=dicom_id)
            if split is None:
                raise RowError(
                    official.file,
                    None,
                    "dicom_id",
                    f"image {dicom_id} (study s{study}) has no split",
                    reason="no split",
                )
            report_path = _find_report(report_roots, subject, study)
            if report_path is None:
                raise RowError(
                    meta_file,
                    rowno,
                    "study_id",
                    f"no report file s{study}.txt for patient p{subject} (under "
                    + " or ".join(str(r) for r in report_roots)
                    + "; --reports-root names the MIMIC-CXR reports folder)",
                    reason="report not found",
                )
            try:
                text = report_path.read_text(encoding="utf-8", errors="replace")
            except OSError as e:
                raise RowError(
                    report_path, None, None, f"unreadable report ({e})", reason="unreadable report"
                ) from None
            sections = extract_sections(text)
            image_path, width, height = locate_mimic_image(
                mimic_image_rel(subject, study, dicom_id), image_bases, meta_file, rowno, "dicom_id"
            )
            image = ImageRef(path=str(image_path), view=view, width=width, height=height)
            impression, impression_section = sections.impression, "impression"
            if not sections.findings and not impression and sections.last_paragraph:
                impression, impression_section = sections.last_paragraph, "last_paragraph"
                conversion.note("impression taken from the last paragraph (no FINDINGS or IMPRESSION section)")
            for task, answer, section in (
                (Task.REPORT_FINDINGS, sections.findings, "findings"),
                (Task.REPORT_IMPRESSION, impression, impression_section),
            ):
                if not answer:
                    conversion.note_skip(f"no {task.value.split('_')[1]} section")
                    continue
                try:
                    report_file = str(report_path.relative_to(conversion.reports_root or root))
                except ValueError:
                    report_file = str(report_path)
                conversion.summary.split_from[f"the official MIMIC-CXR split ({official.file.name})"] += 1
                yield Sample(
                    id=f"mimic-cxr/s{study}/{task.value.split('_')[1]}",
                    source="mimic-cxr",
                    split=split,
                    task=task,
                    images=[image],
                    prompt=task_prompt(task.value),
                    answer=answer,
                    answer_type=AnswerType.OPEN,
                    patient_id=subject,
                    study_id=study,
                    provenance=Provenance(
                        dataset="MIMIC-CXR-JPG 2.0.0 + MIMIC-CXR reports",
                        file=report_file,
                        record=f"s{study}",
                        license=PHYSIONET_LICENSE,
                        citation=MIMIC_CXR_CITATION,
                        section=section,
                    ),
                )


# --- Open-I (Indiana University, Kaggle layout) ---------------------------------------------------------------------

OPEN_I_CITATION = (
    "Demner-Fushman D et al. Preparing a collection of radiology examinations for distribution and "
    "retrieval. J Am Med Inform Assoc 23(2):304-310 (2016)."
)


def _clean_open_i(text: str | None) -> str | None:
    if text is None:
        return None
    cleaned = " ".join(text.split())
    return cleaned or None


def convert_open_i(root: Path, conversion: Conversion) -> Iterator[Sample]:
    """indiana_reports.csv + indiana_projections.csv + images/images_normalized → report samples (frontal image)."""
    reports_file = find_file(root, "indiana_reports.csv")
    projections_file = find_file(root, "indiana_projections.csv")
    assert reports_file is not None and projections_file is not None
    image_dir = next(
        (d for d in (root / "images" / "images_normalized", root / "images_normalized", root / "images") if d.is_dir()),
        root / "images" / "images_normalized",
    )

    frontal: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for rowno, row in read_csv(projections_file, ("uid", "filename", "projection"), conversion):
        with conversion.row():
            uid = require(row, "uid", projections_file, rowno)
            filename = require(row, "filename", projections_file, rowno)
            if require(row, "projection", projections_file, rowno).lower() == "frontal":
                frontal[uid].append((rowno, filename))

    for rowno, row in read_csv(reports_file, ("uid", "findings", "impression"), conversion):
        with conversion.row():
            uid = require(row, "uid", reports_file, rowno)
            findings, impression = _clean_open_i(row.get("findings")), _clean_open_i(row.get("impression"))
            if not findings and not impression:
                conversion.note_skip("no findings or impression")
                continue
            if not frontal.get(uid):
                conversion.note_skip(
                    "no frontal image",
                    f"{reports_file}, row {rowno}: uid {uid} has no frontal image in indiana_projections.csv",
                )
                continue
            proj_row, filename = sorted(frontal[uid], key=lambda t: t[1])[0]
            image_path = image_dir / filename
            width, height = checked_image(image_path, projections_file, proj_row, "filename")
            image = ImageRef(path=str(image_path), view="Frontal", width=width, height=height)
            split = hash_split(f"open-i:{uid}")
            for task, answer in ((Task.REPORT_FINDINGS, findings), (Task.REPORT_IMPRESSION, impression)):
                if not answer:
                    continue
                conversion.summary.split_from["a hash of the uid (Open-I has no official split)"] += 1
                yield Sample(
                    id=f"open-i/{uid}/{task.value.split('_')[1]}",
                    source="open-i",
                    split=split,
                    task=task,
                    images=[image],
                    prompt=task_prompt(task.value),
                    answer=answer,
                    answer_type=AnswerType.OPEN,
                    patient_id=uid,
                    study_id=uid,
                    provenance=Provenance(
                        dataset="Open-I Indiana University chest X-ray collection (Kaggle layout)",
                        file=reports_file.name,
                        record=f"row {rowno} (uid {uid})",
                        license="Open-I / NLM terms of use",
                        citation=OPEN_I_CITATION,
                    ),
                )


# --- MS-CXR -------------------------------------------------------------------------------------------------------

MS_CXR_CITATION = (
    "Boecking B et al. Making the most of text semantics to improve biomedical vision-language "
    "processing. ECCV 2022; MS-CXR, PhysioNet (2022)."
)
_MIMIC_PATH = re.compile(r"p(\d{2})/p(\d+)/s(\d+)/")


def grounding_prompt(phrase: str) -> str:
    return (
        f'Find the region of this chest X-ray described as "{phrase}". Locate it with bounding boxes and name '
        "the finding."
    )


def convert_ms_cxr(root: Path, conversion: Conversion) -> Iterator[Sample]:
    """MS_CXR_Local_Alignment_v1.*.csv → grounding samples: one per (image, phrase), with all its boxes.

    v1.0.0 has no split column, v1.1.0 has one; either way the official MIMIC-CXR split decides (``--mimic-split``,
    else the split CSV under ``--images`` or ``--root``), and overrides of v1.1.0's own split are counted.
    """
    candidates = sorted(root.glob("MS_CXR_Local_Alignment_v*.csv"), reverse=True)
    ann_file = candidates[0] if candidates else find_file(root, "MS_CXR_Local_Alignment_v1.1.0.csv")
    assert ann_file is not None
    image_bases = _image_bases(root, conversion)
    official = conversion.mimic_split(conversion.images_root, root)
    columns = ("dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width", "image_height")
    groups: dict[tuple[str, str], list[tuple[int, dict[str, str]]]] = defaultdict(list)
    for rowno, row in read_csv(ann_file, columns, conversion):
        with conversion.row():
            key = (require(row, "dicom_id", ann_file, rowno), require(row, "label_text", ann_file, rowno))
            groups[key].append((rowno, row))

    for (dicom_id, phrase), rows in groups.items():
        with conversion.row():
            rowno, first = rows[0]
            rel = require(first, "path", ann_file, rowno)
            m = _MIMIC_PATH.search(rel)
            if m is None:
                raise RowError(
                    ann_file,
                    rowno,
                    "path",
                    f"not a MIMIC-CXR-JPG path (files/pXX/pN/sN/…): {rel!r}",
                    reason="malformed path",
                )
            subject, study = m.group(2), m.group(3)
            image_path, width, height = locate_mimic_image(rel, image_bases, ann_file, rowno, "path")
            orig_w = as_float(first, "image_width", ann_file, rowno)
            orig_h = as_float(first, "image_height", ann_file, rowno)
            # Boxes are given for the original image size; scale them if the JPG on disk was resized.
            sx, sy = width / orig_w, height / orig_h
            boxes = []
            category = require(first, "category_name", ann_file, rowno)
            for r_no, r in rows:
                x, y = as_float(r, "x", ann_file, r_no), as_float(r, "y", ann_file, r_no)
                w, h = as_float(r, "w", ann_file, r_no), as_float(r, "h", ann_file, r_no)
                xyxy = (x, y, x + w, y + h)
                checked_box(xyxy, int(orig_w), int(orig_h), ann_file, r_no, "x,y,w,h", label=phrase)
                boxes.append(
                    checked_box(
                        (x * sx, y * sy, (x + w) * sx, (y + h) * sy),
                        width,
                        height,
                        ann_file,
                        r_no,
                        "x,y,w,h",
                        label=phrase,
                    )
                )
            split_value = (first.get("split") or "").strip()
            own = official_split(split_value, ann_file, rowno) if split_value else None
            split = conversion.resolve_split(
                official,
                subject=subject,
                study=study,
                dicom=dicom_id,
                own=own,
                own_name=f"the split column of {ann_file.name}",
            )
            yield Sample(
                id=f"ms-cxr/{dicom_id}/{hash_key(phrase):08x}",
                source="ms-cxr",
                split=split,
                task=Task.GROUNDING,
                images=[ImageRef(path=str(image_path), width=width, height=height)],
                prompt=grounding_prompt(phrase),
                answer=category.lower(),
                answer_type=AnswerType.CLOSED,
                question_type="grounding",
                boxes=boxes,
                patient_id=subject,
                study_id=study,
                provenance=Provenance(
                    dataset="MS-CXR",
                    file=ann_file.name,
                    record=f"rows {', '.join(str(r) for r, _ in rows)}",
                    license=PHYSIONET_LICENSE,
                    citation=MS_CXR_CITATION,
                    phrase=phrase,
                    original_size=[orig_w, orig_h],
                ),
            )


def hash_key(text: str) -> int:
    """A short stable number for a phrase (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "big")


# --- MIMIC-Ext-MIMIC-CXR-VQA ----------------------------------------------------------------------------------------

EXT_VQA_CITATION = (
    "Bae S et al. EHRXQA: A multi-modal question answering dataset for electronic health records "
    "with chest X-ray images. NeurIPS 2023 Datasets and Benchmarks; MIMIC-Ext-MIMIC-CXR-VQA, PhysioNet."
)


def join_answers(answers: list[str]) -> str:
    return " | ".join(a.strip() for a in answers if a.strip())


# Where the release keeps its JSON files: the built repository (mimiccxrvqa/dataset), the PhysioNet download's
# folder (MIMIC-Ext-MIMIC-CXR-VQA/…), or the dataset folder itself.
_EXT_VQA_DIRS = (
    "dataset",
    "MIMIC-Ext-MIMIC-CXR-VQA/dataset",
    "MIMIC-Ext-MIMIC-CXR-VQA",
    "mimiccxrvqa/dataset",
    ".",
)


def _ext_vqa_files(root: Path) -> list[tuple[Path, str]]:
    """``(file, split name)`` of the first folder holding train/valid/test JSON (``train_part*.json`` accepted)."""
    for sub in _EXT_VQA_DIRS:
        base = root / sub
        files: list[tuple[Path, str]] = []
        for name in ("train", "valid", "test"):
            if (base / f"{name}.json").is_file():
                files.append((base / f"{name}.json", name))
            else:
                files.extend((p, name) for p in sorted(base.glob(f"{name}_part*.json")))
        if files:
            return files
    raise FileNotFoundError(
        f"{root}: no train.json, valid.json or test.json (MIMIC-Ext-MIMIC-CXR-VQA) in "
        + ", ".join(str(root / d) for d in _EXT_VQA_DIRS)
    )


def convert_ext_vqa(root: Path, conversion: Conversion) -> Iterator[Sample]:
    """{train,valid,test}.json → VQA samples (answer lists joined "a | b"); image paths are under MIMIC-CXR-JPG files/.

    Split: the official MIMIC-CXR split of the record's image (the file's own split when no split CSV is found).
    """
    files = _ext_vqa_files(root)
    image_bases = _image_bases(root, conversion)
    official = conversion.mimic_split(conversion.images_root, root)
    for path, split_name in files:
        records: Any = read_json(path)  # strict: NaN, invalid UTF-8 and the like name their line and record
        if not isinstance(records, list):
            raise RowError(path, None, None, "expected a JSON list of question records")
        for index, rec in enumerate(records):
            with conversion.row():
                yield _ext_vqa_sample(rec, path, index, split_name, root, image_bases, official, conversion)


def _ext_vqa_answer(answers: list[str], semantic_type: str, conversion: Conversion) -> tuple[str, AnswerType]:
    """verify → closed yes/no; choose with one answer → closed (as the released reward types it); query → multi."""
    if semantic_type == "verify" or (not semantic_type and len(answers) == 1 and answers[0].lower() in _YES_NO):
        return answers[0].strip() if answers else "none", AnswerType.CLOSED
    if semantic_type == "choose" and len(answers) == 1:
        conversion.note("ext-vqa: 'choose' question with one answer typed closed")
        return answers[0].strip(), AnswerType.CLOSED
    joined = join_answers(answers)
    if not joined:
        conversion.note("ext-vqa: empty answer list written 'none' (multi)")
    return joined or "none", AnswerType.MULTI


def _ext_vqa_sample(
    rec: Any,
    path: Path,
    index: int,
    split_name: str,
    root: Path,
    image_bases: tuple[Path, ...],
    official: MimicSplit | None,
    conversion: Conversion,
) -> Sample:
    where = f"record {index}"
    if not isinstance(rec, dict):
        raise RowError(path, where, None, "not a JSON object", reason="malformed record")

    def field(name: str) -> Any:
        value = rec.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise RowError(path, where, name, "missing or empty", reason="empty field")
        return value

    question = str(field("question")).strip()
    raw_answer = field("answer")
    answers = raw_answer if isinstance(raw_answer, list) else [raw_answer]
    if not all(isinstance(a, str | int | float) for a in answers):
        raise RowError(path, where, "answer", f"answers must be strings, got {raw_answer!r}", reason="malformed record")
    answers = [str(a) for a in answers]
    content_type = str(field("content_type")).strip().lower()
    semantic_type = str(rec.get("semantic_type") or "").strip().lower()
    image_id = str(field("image_id")).strip()
    subject = str(field("subject_id")).strip()
    study = str(field("study_id")).strip()
    image_rel = str(rec.get("image_path") or "").strip() or mimic_image_rel(subject, study, image_id)
    image_path, width, height = locate_mimic_image(
        image_rel, image_bases, path, where, "image_path" if rec.get("image_path") else "image_id"
    )
    answer, answer_type = _ext_vqa_answer(answers, semantic_type, conversion)
    own = official_split(str(rec.get("split") or split_name), path, where)
    split = conversion.resolve_split(
        official, subject=subject, study=study, dicom=image_id, own=own, own_name="the file's own split"
    )
    return Sample(
        id=f"ext-vqa/{own.value}/{rec.get('idx', index)}",  # the file's split: ids stay stable whatever decides
        source="ext-vqa",
        split=split,
        task=Task.VQA,
        images=[ImageRef(path=str(image_path), width=width, height=height)],
        prompt=task_prompt("vqa", question),
        answer=answer,
        answer_type=answer_type,
        question_type=content_type,
        patient_id=subject,
        study_id=study,
        provenance=Provenance(
            dataset="MIMIC-Ext-MIMIC-CXR-VQA",
            file=str(path.relative_to(root)) if path.is_relative_to(root) else str(path),
            record=where,
            license=PHYSIONET_LICENSE,
            citation=EXT_VQA_CITATION,
            semantic_type=semantic_type or None,
            template=rec.get("template"),
        ),
    )


# --- Medical-CXR-VQA ------------------------------------------------------------------------------------------------

CXR_VQA_CITATION = (
    "Hu X et al. Interpretable medical image visual question answering via multi-modal relationship "
    "graph learning. Medical Image Analysis 97:103279 (2024); Medical-CXR-VQA, PhysioNet."
)
# The released question file's name, then the authors' generator's outputs (code/question_gen.py).
CXR_VQA_QUESTION_FILES = (
    "medical-cxr-vqa-questions.csv",
    "medical_cxr_vqa_questions.csv",
    "mimic_llm_questions_full.csv",
    "mimic_llm_questions.csv",
    "mimic_llm_questions_lessYesNo.csv",
    "mimic_llm_questions_filter_low_freq.csv",
    "mimic_llm_questions_small.csv",
)
_VIEW_CODES = {"postero-anterior": "PA", "antero-posterior": "AP"}


def _cxr_vqa_answer(qtype: str, answer: str, conversion: Conversion) -> tuple[str, AnswerType]:
    """Abnormality lists (the generator joins entity names with ", ") and two-location answers ("X area and Y area")
    are multi; every other answer is closed."""
    if answer.lower() in _YES_NO:
        return answer, AnswerType.CLOSED
    if qtype == "abnormality":
        parts = [p.strip() for p in answer.split(",") if p.strip()]
        if len(parts) > 1:
            return join_answers(parts), AnswerType.MULTI
    if qtype == "location":
        parts = [p.strip() for p in re.split(r"\s+and\s+", answer) if p.strip()]
        if len(parts) > 1 and all(p.endswith(" area") for p in parts):
            conversion.note("cxr-vqa: 'X area and Y area' location answers typed multi")
            return join_answers(parts), AnswerType.MULTI
    return answer, AnswerType.CLOSED


def convert_cxr_vqa(root: Path, conversion: Conversion) -> Iterator[Sample]:
    """The question CSV (+ mimic_all.csv: each study's image and its official split) → VQA samples.

    Split: the official MIMIC-CXR split CSV when found (``--mimic-split``, else under ``--images``/``--root``), else
    mimic_all.csv's ``split`` column (copied from it), else the question file's own ``split`` column, else a hash.
    """
    qa_file = find_file(root, *CXR_VQA_QUESTION_FILES, required=False) or find_file(
        root / "data", *CXR_VQA_QUESTION_FILES, required=False
    )
    if qa_file is None:
        raise FileNotFoundError(f"{root}: none of {', '.join(CXR_VQA_QUESTION_FILES)} found (Medical-CXR-VQA)")
    images_root = _images_root(root, conversion)
    image_bases = _image_bases(root, conversion)
    # study → [(rank, dicom_id, view)] from mimic_all.csv or MIMIC-CXR-JPG's metadata, when present
    study_images: dict[str, list[tuple[int, str, str | None]]] = defaultdict(list)
    mimic_all = find_file(root, "mimic_all.csv", required=False) or find_file(
        root / "data", "mimic_all.csv", required=False
    )
    mimic_all_split = MimicSplit(mimic_all) if mimic_all is not None else None
    meta = (
        mimic_all
        or find_file(root, "mimic-cxr-2.0.0-metadata.csv", required=False)
        or find_file(images_root, "mimic-cxr-2.0.0-metadata.csv", required=False)
    )
    if meta is not None:
        for rowno, row in read_csv(meta, ("dicom_id", "study_id"), conversion):
            with conversion.row():
                view = (row.get("ViewPosition") or row.get("view") or "").strip()
                view = _VIEW_CODES.get(view.lower(), view) or None
                study = require(row, "study_id", meta, rowno).lstrip("s")
                dicom = require(row, "dicom_id", meta, rowno)
                study_images[study].append((_frontal_rank(view), dicom, view))
                if mimic_all_split is not None and (row.get("split") or "").strip():
                    split = official_split(row["split"], meta, rowno)
                    mimic_all_split.by_dicom[dicom] = split
                    mimic_all_split.by_study.setdefault(study, split)
                    subject = (row.get("subject_id") or "").strip().lstrip("p")
                    if subject:
                        mimic_all_split.by_subject.setdefault(subject, split)
    official = conversion.mimic_split(conversion.images_root, root)
    if official is None and mimic_all_split is not None and mimic_all_split.by_study:
        official = mimic_all_split  # mimic_all.csv's split column is the official split, per study
    for rowno, row in read_csv(qa_file, ("subject_id", "study_id", "question_type", "question", "answer"), conversion):
        with conversion.row():
            subject = require(row, "subject_id", qa_file, rowno).lstrip("p")
            study = require(row, "study_id", qa_file, rowno).lstrip("s")
            qtype = require(row, "question_type", qa_file, rowno).lower()
            question = require(row, "question", qa_file, rowno)
            raw_answer = require(row, "answer", qa_file, rowno)
            dicom_id, view = (row.get("dicom_id") or "").strip(), None
            if not dicom_id:
                options = sorted(study_images.get(study, []))
                if not options:
                    raise RowError(
                        qa_file,
                        rowno,
                        "study_id",
                        f"no image known for study s{study} (no dicom_id "
                        "column, and the study is not in mimic_all.csv)",
                        reason="image not found",
                    )
                _, dicom_id, view = options[0]
            image_path, width, height = locate_mimic_image(
                mimic_image_rel(subject, study, dicom_id),
                image_bases,
                qa_file,
                rowno,
                "dicom_id" if row.get("dicom_id") else "study_id",
            )
            answer, answer_type = _cxr_vqa_answer(qtype, raw_answer, conversion)
            split_value = (row.get("split") or "").strip()
            own = official_split(split_value, qa_file, rowno) if split_value else None
            split = conversion.resolve_split(
                official,
                subject=subject,
                study=study,
                dicom=dicom_id,
                own=own,
                own_name=f"the split column of {qa_file.name}",
            )
            yield Sample(
                id=f"cxr-vqa/{row.get('idx') or rowno}",
                source="cxr-vqa",
                split=split,
                task=Task.VQA,
                images=[ImageRef(path=str(image_path), view=view, width=width, height=height)],
                prompt=task_prompt("vqa", question),
                answer=answer,
                answer_type=answer_type,
                question_type=qtype,
                patient_id=subject,
                study_id=study,
                provenance=Provenance(
                    dataset="Medical-CXR-VQA",
                    file=qa_file.name,
                    record=f"row {rowno}",
                    license=PHYSIONET_LICENSE,
                    citation=CXR_VQA_CITATION,
                ),
            )


SOURCES: dict[str, Converter] = {
    "mimic-cxr": convert_mimic_cxr,
    "open-i": convert_open_i,
    "ms-cxr": convert_ms_cxr,
    "ext-vqa": convert_ext_vqa,
    "cxr-vqa": convert_cxr_vqa,
}
