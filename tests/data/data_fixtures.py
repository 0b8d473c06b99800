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
        "image_path": f"files/p{subject[:2]}/p{subject}/s{study}/{image_id}.jpg",
    }
