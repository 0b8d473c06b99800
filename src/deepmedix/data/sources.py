"""The five dataset converters (layouts in docs/data.md). Each turns a source folder into :class:`Sample` records.

MIMIC-derived sources (MIMIC-CXR, MS-CXR, Ext-VQA, CXR-VQA) refer to MIMIC-CXR-JPG images
``files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg``; those are looked up under ``--images`` when given, else ``--root``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deepmedix.data.convert import (
    Conversion,
    Converter,
    as_float,
    checked_box,
    checked_image,
    find_file,
    hash_split,
    official_split,
    read_csv,
    require,
)
from deepmedix.data.enums import AnswerType, Split, Task
from deepmedix.data.reports import extract_sections
from deepmedix.data.schema import ImageRef, Provenance, Sample
from deepmedix.errors import RowError
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
    subject = subject_id.lstrip("p")
    study = study_id.lstrip("s")
    return images_root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom_id}.jpg"


def _frontal_rank(view: str | None) -> int:
    """Order in which a study's images are preferred as its one image: PA, then AP, then other frontal views."""
    v = (view or "").strip().upper()
    if v in FRONTAL_VIEWS:
        return FRONTAL_VIEWS.index(v)
    return len(FRONTAL_VIEWS) if v == "" else len(FRONTAL_VIEWS) + 1


# --- MIMIC-CXR ----------------------------------------------------------------------------------------------------


def _find_report(root: Path, subject: str, study: str) -> Path | None:
    rel = Path(f"p{subject[:2]}") / f"p{subject}" / f"s{study}.txt"
    for base in (
        root / "files",
        root / "mimic-cxr-reports" / "files",
        root / "mimic-cxr-reports",
        root / "reports" / "files",
        root,
    ):
        if (base / rel).is_file():
            return base / rel
    return None


def convert_mimic_cxr(root: Path, conversion: Conversion) -> Iterator[Sample]:
    """MIMIC-CXR-JPG + reports → report_findings / report_impression samples, one frontal image per study."""
    images_root = _images_root(root, conversion)
    meta_file = find_file(root, "mimic-cxr-2.0.0-metadata.csv", "mimic-cxr-2.1.0-metadata.csv")
    split_file = find_file(root, "mimic-cxr-2.0.0-split.csv", "mimic-cxr-2.1.0-split.csv")
    assert meta_file is not None and split_file is not None

    splits: dict[str, Split] = {}
    for rowno, row in read_csv(split_file, ("dicom_id", "split"), conversion):
        with conversion.row():
            splits[require(row, "dicom_id", split_file, rowno)] = official_split(
                require(row, "split", split_file, rowno), split_file, rowno
            )

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
            if dicom_id not in splits:
                raise RowError(
                    split_file, None, "dicom_id", f"image {dicom_id} (study s{study}) has no split", reason="no split"
                )
            report_path = _find_report(root, subject, study)
            if report_path is None:
                raise RowError(
                    meta_file,
                    rowno,
                    "study_id",
                    f"no report file s{study}.txt for patient p{subject}",
                    reason="report not found",
                )
            try:
                text = report_path.read_text(encoding="utf-8", errors="replace")
            except OSError as e:
                raise RowError(
                    report_path, None, None, f"unreadable report ({e})", reason="unreadable report"
                ) from None
            sections = extract_sections(text)
            image_path = mimic_image_path(images_root, subject, study, dicom_id)
            width, height = checked_image(image_path, meta_file, rowno, "dicom_id")
            image = ImageRef(path=str(image_path), view=view, width=width, height=height)
            for task, answer in (
                (Task.REPORT_FINDINGS, sections.findings),
                (Task.REPORT_IMPRESSION, sections.impression),
            ):
                if not answer:
                    conversion.note_skip(f"no {task.value.split('_')[1]} section")
                    continue
                yield Sample(
                    id=f"mimic-cxr/s{study}/{task.value.split('_')[1]}",
                    source="mimic-cxr",
                    split=splits[dicom_id],
                    task=task,
                    images=[image],
                    prompt=task_prompt(task.value),
                    answer=answer,
                    answer_type=AnswerType.OPEN,
                    patient_id=subject,
                    study_id=study,
                    provenance=Provenance(
                        dataset="MIMIC-CXR-JPG 2.0.0 + MIMIC-CXR reports",
                        file=str(report_path.relative_to(root)),
                        record=f"s{study}",
                        license=PHYSIONET_LICENSE,
                        citation=MIMIC_CXR_CITATION,
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
    """MS_CXR_Local_Alignment_v1.*.csv → grounding samples: one per (image, phrase), with all its boxes."""
    candidates = sorted(root.glob("MS_CXR_Local_Alignment_v*.csv"), reverse=True)
    ann_file = candidates[0] if candidates else find_file(root, "MS_CXR_Local_Alignment_v1.1.0.csv")
    assert ann_file is not None
    images_root = _images_root(root, conversion)
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
            image_path = images_root / rel
            width, height = checked_image(image_path, ann_file, rowno, "path")
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
            split = official_split(split_value, ann_file, rowno) if split_value else hash_split(f"mimic:{subject}")
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


def convert_ext_vqa(root: Path, conversion: Conversion) -> Iterator[Sample]:
    """dataset/{train,valid,test}.json → VQA samples; list answers joined "a | b" (multi), verify questions closed."""
    base = root / "dataset" if (root / "dataset").is_dir() else root
    files = [(base / f"{name}.json", name) for name in ("train", "valid", "test") if (base / f"{name}.json").is_file()]
    if not files:
        raise FileNotFoundError(f"{root}: no dataset/train.json, valid.json or test.json (MIMIC-Ext-MIMIC-CXR-VQA)")
    images_root = _images_root(root, conversion)
    for path, split_name in files:
        try:
            records: Any = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise RowError(path, None, None, f"not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(records, list):
            raise RowError(path, None, None, "expected a JSON list of question records")
        for index, rec in enumerate(records):
            with conversion.row():
                yield _ext_vqa_sample(rec, path, index, split_name, root, images_root)


def _ext_vqa_sample(rec: Any, path: Path, index: int, split_name: str, root: Path, images_root: Path) -> Sample:
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
    image_rel = rec.get("image_path")
    image_path = (images_root / image_rel) if image_rel else mimic_image_path(images_root, subject, study, image_id)
    if image_rel and not image_path.is_file() and (root / image_rel).is_file():
        image_path = root / image_rel
    width, height = checked_image(image_path, path, where, "image_path" if image_rel else "image_id")
    closed = semantic_type == "verify" or (len(answers) == 1 and answers[0].lower() in _YES_NO)
    answer = answers[0].strip() if closed else (join_answers(answers) or "none")
    split = official_split(str(rec.get("split") or split_name), path, where)
    return Sample(
        id=f"ext-vqa/{split.value}/{rec.get('idx', index)}",
        source="ext-vqa",
        split=split,
        task=Task.VQA,
        images=[ImageRef(path=str(image_path), width=width, height=height)],
        prompt=task_prompt("vqa", question),
        answer=answer,
        answer_type=AnswerType.CLOSED if closed else AnswerType.MULTI,
        question_type=content_type,
        patient_id=subject,
        study_id=study,
        provenance=Provenance(
            dataset="MIMIC-Ext-MIMIC-CXR-VQA",
            file=f"dataset/{path.name}",
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


def convert_cxr_vqa(root: Path, conversion: Conversion) -> Iterator[Sample]:
    """medical_cxr_vqa_questions.csv (+ mimic_all.csv for the study's image) → VQA samples."""
    qa_file = find_file(
        root, "medical_cxr_vqa_questions.csv", "medical-cxr-vqa-questions.csv", "mimic_llm_questions.csv"
    )
    assert qa_file is not None
    images_root = _images_root(root, conversion)
    # study → [(rank, dicom_id, view)] from mimic_all.csv or MIMIC-CXR-JPG's metadata, when present
    study_images: dict[str, list[tuple[int, str, str | None]]] = defaultdict(list)
    meta = find_file(root, "mimic_all.csv", "mimic-cxr-2.0.0-metadata.csv", required=False) or find_file(
        images_root, "mimic-cxr-2.0.0-metadata.csv", required=False
    )
    if meta is not None:
        for rowno, row in read_csv(meta, ("dicom_id", "study_id"), conversion):
            with conversion.row():
                view = (row.get("ViewPosition") or row.get("view") or "").strip()
                view = {"postero-anterior": "PA", "antero-posterior": "AP"}.get(view.lower(), view) or None
                study_images[require(row, "study_id", meta, rowno).lstrip("s")].append(
                    (_frontal_rank(view), require(row, "dicom_id", meta, rowno), view)
                )
    for rowno, row in read_csv(qa_file, ("subject_id", "study_id", "question_type", "question", "answer"), conversion):
        with conversion.row():
            subject = require(row, "subject_id", qa_file, rowno).lstrip("p")
            study = require(row, "study_id", qa_file, rowno).lstrip("s")
            qtype = require(row, "question_type", qa_file, rowno).lower()
            question = require(row, "question", qa_file, rowno)
            answer = require(row, "answer", qa_file, rowno)
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
            image_path = mimic_image_path(images_root, subject, study, dicom_id)
            width, height = checked_image(image_path, qa_file, rowno, "dicom_id" if row.get("dicom_id") else "study_id")
            parts = [p.strip() for p in re.split(r",\s*|\s+and\s+", answer) if p.strip()]
            multi = qtype == "abnormality" and answer.lower() not in _YES_NO and len(parts) > 1
            split_value = (row.get("split") or "").strip()
            split = official_split(split_value, qa_file, rowno) if split_value else hash_split(f"mimic:{subject}")
            yield Sample(
                id=f"cxr-vqa/{row.get('idx') or rowno}",
                source="cxr-vqa",
                split=split,
                task=Task.VQA,
                images=[ImageRef(path=str(image_path), view=view, width=width, height=height)],
                prompt=task_prompt("vqa", question),
                answer=join_answers(parts) if multi else answer,
                answer_type=AnswerType.MULTI if multi else AnswerType.CLOSED,
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
