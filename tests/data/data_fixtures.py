"""Builders for hand-made fixtures in each source's layout: tiny generated images, invented ids and texts."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, width: int, height: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(height, width), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def mimic_jpg(root: Path, subject: str, study: str, dicom: str, width: int, height: int, seed: int = 0) -> Path:
    return write_image(
        root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg", width, height, seed
    )


REPORT_BOTH = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___ year old woman with cough.

 COMPARISON:  None.

 FINDINGS:

 The lungs are clear without focal consolidation.  No pleural effusion
 or pneumothorax.  Heart size is normal.

 IMPRESSION:

 No acute cardiopulmonary process.
"""

REPORT_IMPRESSION_ONLY = """                                 FINAL REPORT
 HISTORY:  Shortness of breath.

 CONCLUSION:  Mild pulmonary edema,
 improved since prior.
"""

REPORT_TYPO = """                                 FINAL REPORT
 PA AND LATERAL VIEWS OF THE CHEST:  Small left pleural effusion.

 IMPRESSON:  Small left effusion.
"""

REPORT_NONE = """                                 FINAL REPORT
 INDICATION:  Fever.

 COMPARISON:  Prior study.
"""


def ext_vqa_record(
    idx: int,
    subject: str,
    study: str,
    image_id: str,
    question: str,
    answer: list[str],
    content_type: str,
    semantic_type: str,
    split: str,
) -> dict[str, object]:
    return {
        "split": split,
        "idx": idx,
        "image_id": image_id,
        "question": question,
        "content_type": content_type,
        "semantic_type": semantic_type,
        "template": "Is there ${attribute} in the ${object}?",
        "template_program": "program_1",
        "template_arguments": {"object": {}, "attribute": {}, "category": {}, "viewpos": {}, "gender": {}},
        "answer": answer,
        "subject_id": subject,
        "study_id": study,
        # relative to MIMIC-CXR-JPG's files/, as the dataset's builder (generate_answer.py) writes it
        "image_path": f"p{subject[:2]}/p{subject}/s{study}/{image_id}.jpg",
    }


# A report with neither FINDINGS nor IMPRESSION: MIMIC-CXR's parser keeps its last paragraph (blank lines hold a space).
REPORT_LAST_PARAGRAPH = (
    "                                 FINAL REPORT\n"
    " CHEST RADIOGRAPH PERFORMED ON ___\n"
    " \n"
    " COMPARISON:  Prior exam from ___.\n"
    " \n"
    " CLINICAL HISTORY:  Cough, question pneumonia.\n"
    " \n"
    " Heart size is normal.  The lungs are clear.  No pleural effusion.\n"
)

CHEXPERT_LABELS = [
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
]
MIMIC_METADATA_HEADER = [
    "dicom_id",
    "subject_id",
    "study_id",
    "PerformedProcedureStepDescription",
    "ViewPosition",
    "Rows",
    "Columns",
    "StudyDate",
    "StudyTime",
    "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
]
_VIEW_MEANINGS = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral", "LL": "left lateral"}

# The invented MIMIC-CXR patients every MIMIC-derived fixture shares, with their official split:
# subject, study, [(dicom, ViewPosition, width, height)], report, split (mimic-cxr-2.0.0-split.csv's words).
MIMIC_STUDIES = [
    ("10000001", "50000001", [("aaaa-lat", "LATERAL", 40, 48), ("aaaa-pa", "PA", 64, 80)], REPORT_BOTH, "train"),
    ("10000001", "50000002", [("bbbb-ap", "AP", 72, 60)], REPORT_IMPRESSION_ONLY, "train"),
    ("11000002", "50000003", [("cccc-pa", "PA", 50, 50), ("cccc-ap", "AP", 50, 50)], REPORT_TYPO, "validate"),
    ("12000003", "50000004", [("dddd-pa", "PA", 66, 70)], REPORT_NONE, "test"),
    ("12000003", "50000005", [("eeee-ll", "LL", 30, 30)], REPORT_BOTH, "test"),  # no frontal image
    ("13000004", "50000006", [("ffff-pa", "PA", 60, 60)], REPORT_LAST_PARAGRAPH, "train"),
]
# MS-CXR's images: extra (AP) images in two of those studies, large enough for boxes; img-two is stored at half
# its original 300×200 size.
MS_CXR_IMAGES = [
    ("10000001", "50000001", "img-one", "AP", 200, 240),
    ("12000003", "50000004", "img-two", "AP", 150, 100),
]


def write_csv_gz(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    """A CSV gzipped, as PhysioNet serves MIMIC-CXR-JPG's tables."""
    import gzip
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(buf.getvalue().encode()))
    return path


def build_mimic_jpg(root: Path, gz: bool = True, with_ms_cxr_images: bool = True) -> Path:
    """MIMIC-CXR-JPG 2.0.0: files/pXX/pN/sN/<dicom>.jpg, the metadata and split CSVs (gzipped, as released)."""
    meta_rows, split_rows = [], []
    images = [(s, st, d, v, w, h, sp) for s, st, imgs, _, sp in MIMIC_STUDIES for d, v, w, h in imgs]
    if with_ms_cxr_images:
        splits = {st: sp for _, st, _, _, sp in MIMIC_STUDIES}
        images += [(s, st, d, v, w, h, splits[st]) for s, st, d, v, w, h in MS_CXR_IMAGES]
    for i, (subject, study, dicom, view, w, h, split) in enumerate(images):
        mimic_jpg(root, subject, study, dicom, w, h, seed=i)
        meaning = _VIEW_MEANINGS.get(view, view.lower())
        meta_rows.append(
            [dicom, subject, study, "CHEST (PA AND LAT)", view, h, w, "21800101", "120000", "", meaning, ""]
        )
        split_rows.append([dicom, study, subject, split])
    writer = write_csv_gz if gz else write_csv
    suffix = ".gz" if gz else ""
    writer(root / f"mimic-cxr-2.0.0-metadata.csv{suffix}", MIMIC_METADATA_HEADER, meta_rows)
    writer(root / f"mimic-cxr-2.0.0-split.csv{suffix}", ["dicom_id", "study_id", "subject_id", "split"], split_rows)
    return root


def build_mimic_reports(root: Path) -> Path:
    """The MIMIC-CXR (DICOM project) reports: files/pXX/pN/sN.txt, as mimic-cxr-reports.zip unzips."""
    for subject, study, _, report, _ in MIMIC_STUDIES:
        path = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report)
    return root


def build_open_i(root: Path, uids: tuple[str, ...] = ("1", "2", "3", "4", "5", "6")) -> Path:
    """Open-I, Kaggle layout: indiana_reports.csv, indiana_projections.csv, images/images_normalized/*.png."""
    reports, projections = [], []
    for i, uid in enumerate(uids):
        frontal, lateral = f"{uid}_IM-000{i}-1001.dcm.png", f"{uid}_IM-000{i}-2001.dcm.png"
        write_image(root / "images" / "images_normalized" / frontal, 48, 56, seed=i)
        projections += [[uid, frontal, "Frontal"], [uid, lateral, "Lateral"]]
        reports.append(
            [uid, "normal", "normal", "Xray Chest PA and Lateral", "Cough.", "None.", f"Lungs clear {uid}.", "Normal."]
        )
    write_csv(
        root / "indiana_reports.csv",
        ["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression"],
        reports,
    )
    write_csv(root / "indiana_projections.csv", ["uid", "filename", "projection"], projections)
    return root
