"""Hand-made fixtures in each source's exact layout: tiny generated images, invented ids and texts (no real data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_fixtures import (
    REPORT_BOTH,
    REPORT_IMPRESSION_ONLY,
    REPORT_NONE,
    REPORT_TYPO,
    ext_vqa_record,
    mimic_jpg,
    write_csv,
)


@pytest.fixture
def mimic_root(tmp_path: Path) -> Path:
    """MIMIC-CXR-JPG layout: 3 patients, 4 studies, PA + lateral images, reports under files/."""
    root = tmp_path / "mimic-cxr"
    studies = [  # subject, study, [(dicom, view, w, h)], report, split
        ("10000001", "50000001", [("aaaa-lat", "LATERAL", 40, 48), ("aaaa-pa", "PA", 64, 80)], REPORT_BOTH, "train"),
        ("10000001", "50000002", [("bbbb-ap", "AP", 72, 60)], REPORT_IMPRESSION_ONLY, "train"),
        ("11000002", "50000003", [("cccc-pa", "PA", 50, 50), ("cccc-ap", "AP", 50, 50)], REPORT_TYPO, "validate"),
        ("12000003", "50000004", [("dddd-pa", "PA", 66, 70)], REPORT_NONE, "test"),
        ("12000003", "50000005", [("eeee-ll", "LL", 30, 30)], REPORT_BOTH, "test"),  # no frontal image
    ]
    meta_rows, split_rows = [], []
    for i, (subject, study, images, report, split) in enumerate(studies):
        for dicom, view, w, h in images:
            mimic_jpg(root, subject, study, dicom, w, h, seed=i)
            meta_rows.append([dicom, subject, study, "CHEST", view, h, w, "21800101", "120000", "", view, ""])
            split_rows.append([dicom, study, subject, split])
        report_path = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
        report_path.write_text(report)
    write_csv(
        root / "mimic-cxr-2.0.0-metadata.csv",
        [
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
        ],
        meta_rows,
    )
    write_csv(root / "mimic-cxr-2.0.0-split.csv", ["dicom_id", "study_id", "subject_id", "split"], split_rows)
    return root


MS_CXR_HEADER = [
    "dicom_id",
    "category_name",
    "label_text",
    "path",
    "x",
    "y",
    "w",
    "h",
    "image_width",
    "image_height",
    "split",
]


@pytest.fixture
def ms_cxr_root(tmp_path: Path) -> Path:
    """MS-CXR local alignment CSV (v1.1.0 columns) over MIMIC-CXR-JPG paths; one image stored downscaled ×0.5."""
    root = tmp_path / "ms-cxr"
    mimic_jpg(root, "10000001", "50000001", "img-one", 200, 240, seed=1)
    mimic_jpg(root, "11000002", "50000002", "img-two", 150, 100, seed=2)  # original 300×200: resized on disk
    path_one = "files/p10/p10000001/s50000001/img-one.jpg"
    path_two = "files/p11/p11000002/s50000002/img-two.jpg"
    write_csv(
        root / "MS_CXR_Local_Alignment_v1.1.0.csv",
        MS_CXR_HEADER,
        [
            ["img-one", "Pneumonia", "Bibasilar opacities", path_one, 10, 150, 60, 50, 200, 240, "train"],
            ["img-one", "Pneumonia", "Bibasilar opacities", path_one, 120, 150, 70, 60, 200, 240, "train"],
            ["img-one", "Cardiomegaly", "Enlarged heart", path_one, 60, 90, 90, 80, 200, 240, "train"],
            ["img-two", "Pneumothorax", "Large right pneumothorax", path_two, 20, 10, 100, 120, 300, 200, "test"],
        ],
    )
    return root


@pytest.fixture
def ext_vqa_root(tmp_path: Path) -> Path:
    """MIMIC-Ext-MIMIC-CXR-VQA: dataset/{train,valid,test}.json, images in MIMIC-CXR-JPG layout beside it."""
    root = tmp_path / "ext-vqa"
    mimic_jpg(root, "10000001", "50000001", "img-a", 64, 64)
    mimic_jpg(root, "11000002", "50000002", "img-b", 80, 64)
    mimic_jpg(root, "12000003", "50000003", "img-c", 64, 80)
    (root / "dataset").mkdir(parents=True)
    train = [
        ext_vqa_record(
            0,
            "10000001",
            "50000001",
            "img-a",
            "Is there pleural effusion in the left lung?",
            ["yes"],
            "presence",
            "verify",
            "train",
        ),
        ext_vqa_record(
            1,
            "10000001",
            "50000001",
            "img-a",
            "List all abnormalities in the right lung.",
            ["atelectasis", "lung opacity"],
            "abnormality",
            "query",
            "train",
        ),
        ext_vqa_record(
            2,
            "10000001",
            "50000001",
            "img-a",
            "Which anatomical locations show effusion?",
            [],
            "anatomy",
            "query",
            "train",
        ),
    ]
    valid = [
        ext_vqa_record(
            0, "11000002", "50000002", "img-b", "What is the view of this image?", ["PA"], "plane", "query", "valid"
        )
    ]
    test = [
        ext_vqa_record(
            0,
            "12000003",
            "50000003",
            "img-c",
            "What is the gender of this patient?",
            ["female"],
            "gender",
            "query",
            "test",
        )
    ]
    for name, records in (("train", train), ("valid", valid), ("test", test)):
        (root / "dataset" / f"{name}.json").write_text(json.dumps(records, indent=1))
    return root


@pytest.fixture
def cxr_vqa_root(tmp_path: Path) -> Path:
    """Medical-CXR-VQA: medical_cxr_vqa_questions.csv + mimic_all.csv (study → image and view)."""
    root = tmp_path / "cxr-vqa"
    mimic_jpg(root, "10000001", "50000001", "img-pa", 64, 72)
    mimic_jpg(root, "10000001", "50000001", "img-lat", 40, 72)
    mimic_jpg(root, "11000002", "50000002", "img-ap", 72, 64)
    write_csv(
        root / "mimic_all.csv",
        ["subject_id", "study_id", "dicom_id", "view"],
        [
            ["10000001", "50000001", "img-lat", "lateral"],
            ["10000001", "50000001", "img-pa", "postero-anterior"],
            ["11000002", "50000002", "img-ap", "antero-posterior"],
        ],
    )
    write_csv(
        root / "medical_cxr_vqa_questions.csv",
        ["study_id", "subject_id", "question_type", "question", "answer"],
        [
            [
                "50000001",
                "10000001",
                "abnormality",
                "what abnormalities are seen in this image?",
                "pleural effusion, atelectasis",
            ],
            ["50000001", "10000001", "presence", "is there evidence of pneumothorax in this image?", "no"],
            ["50000001", "10000001", "location", "where is the pleural effusion located?", "left lower lobe area"],
            ["50000002", "11000002", "view", "which view is this image taken?", "AP view"],
            ["50000002", "11000002", "level", "what level is the cardiomegaly?", "mild"],
            ["50000002", "11000002", "type", "what type is the opacity?", "patchy"],
        ],
    )
    return root
