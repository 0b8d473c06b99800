"""Hand-made fixtures in each source's exact layout: tiny generated images, invented ids and texts (no real data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_fixtures import (
    CHEXPERT_LABELS,
    build_mimic_jpg,
    build_mimic_reports,
    build_open_i,
    ext_vqa_record,
    write_csv,
)


@pytest.fixture
def mimic_root(tmp_path: Path) -> Path:
    """MIMIC-CXR-JPG and the reports in one folder (plain CSVs): 4 patients, 6 studies, PA + lateral images."""
    root = build_mimic_jpg(tmp_path / "mimic-cxr", gz=False, with_ms_cxr_images=False)
    return build_mimic_reports(root)


@pytest.fixture
def mimic_jpg(tmp_path: Path) -> Path:
    """MIMIC-CXR-JPG 2.0.0 as downloaded from PhysioNet (gzipped CSVs); the images of every MIMIC-derived fixture."""
    return build_mimic_jpg(tmp_path / "physionet.org" / "files" / "mimic-cxr-jpg" / "2.0.0")


@pytest.fixture
def mimic_reports(tmp_path: Path) -> Path:
    """The MIMIC-CXR project's reports, a separate PhysioNet download: files/pXX/pN/sN.txt."""
    return build_mimic_reports(tmp_path / "physionet.org" / "files" / "mimic-cxr" / "2.0.0")


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


MS_CXR_ROWS = [  # dicom, category, phrase, path, x, y, w, h, original width, height
    [
        "img-one",
        "Pneumonia",
        "Bibasilar opacities",
        "files/p10/p10000001/s50000001/img-one.jpg",
        10,
        150,
        60,
        50,
        200,
        240,
    ],
    [
        "img-one",
        "Pneumonia",
        "Bibasilar opacities",
        "files/p10/p10000001/s50000001/img-one.jpg",
        120,
        150,
        70,
        60,
        200,
        240,
    ],
    [
        "img-one",
        "Cardiomegaly",
        "Enlarged heart",
        "files/p10/p10000001/s50000001/img-one.jpg",
        60,
        90,
        90,
        80,
        200,
        240,
    ],
    [
        "img-two",
        "Pneumothorax",
        "Large right pneumothorax",
        "files/p12/p12000003/s50000004/img-two.jpg",
        20,
        10,
        100,
        120,
        300,
        200,
    ],
]


@pytest.fixture
def ms_cxr_root(tmp_path: Path, mimic_jpg: Path) -> Path:
    """MS-CXR 1.1.0: MS_CXR_Local_Alignment_v1.1.0.csv with its split column (img-two's "train" is, per the official
    MIMIC-CXR split, a test patient's); the images live in MIMIC-CXR-JPG (``mimic_jpg``)."""
    root = tmp_path / "physionet.org" / "files" / "ms-cxr" / "1.1.0"
    write_csv(
        root / "MS_CXR_Local_Alignment_v1.1.0.csv",
        MS_CXR_HEADER,
        [[*r, "train"] for r in MS_CXR_ROWS],
    )
    return root


@pytest.fixture
def ms_cxr_v1_root(tmp_path: Path, mimic_jpg: Path) -> Path:
    """MS-CXR 0.1 (file v1.0.0): the same columns without a split."""
    root = tmp_path / "physionet.org" / "files" / "ms-cxr" / "0.1"
    write_csv(root / "MS_CXR_Local_Alignment_v1.0.0.csv", MS_CXR_HEADER[:-1], MS_CXR_ROWS)
    return root


@pytest.fixture
def ext_vqa_root(tmp_path: Path, mimic_jpg: Path) -> Path:
    """MIMIC-Ext-MIMIC-CXR-VQA 1.0.0 as downloaded: MIMIC-Ext-MIMIC-CXR-VQA/dataset/{train,valid,test}.json, image
    paths relative to MIMIC-CXR-JPG's files/ (as its builder writes them; one with the README's "files/" prefix)."""
    root = tmp_path / "physionet.org" / "files" / "mimic-ext-mimic-cxr-vqa" / "1.0.0"
    dataset = root / "MIMIC-Ext-MIMIC-CXR-VQA" / "dataset"
    dataset.mkdir(parents=True)
    a = ("10000001", "50000001", "aaaa-pa")
    train = [
        ext_vqa_record(0, *a, "Is there pleural effusion in the left lung?", ["yes"], "presence", "verify", "train"),
        ext_vqa_record(
            1,
            *a,
            "List all abnormalities in the right lung.",
            ["atelectasis", "lung opacity"],
            "abnormality",
            "query",
            "train",
        ),
        ext_vqa_record(2, *a, "Which anatomical locations show effusion?", [], "anatomy", "query", "train"),
        ext_vqa_record(
            3,
            *a,
            "Which is more apparent in the left lung, atelectasis or lung opacity?",
            ["lung opacity"],
            "attribute",
            "choose",
            "train",
        ),
    ]
    valid = [
        ext_vqa_record(
            0, "11000002", "50000003", "cccc-pa", "What is the view of this image?", ["pa"], "plane", "query", "valid"
        )
    ]
    valid[0]["image_path"] = "files/" + str(valid[0]["image_path"])  # the README example's form
    test = [
        ext_vqa_record(
            0,
            "12000003",
            "50000004",
            "dddd-pa",
            "What is the gender of this patient?",
            ["female"],
            "gender",
            "query",
            "test",
        ),
        # the file says test; the official MIMIC-CXR split says this patient is train
        ext_vqa_record(1, *a, "Is there pneumothorax in the right lung?", ["no"], "presence", "verify", "test"),
    ]
    for name, records in (("train", train), ("valid", valid), ("test", test)):
        (dataset / f"{name}.json").write_text(json.dumps(records, indent=1))
    return root


MIMIC_ALL_HEADER = [
    "subject_id",
    "study_id",
    *CHEXPERT_LABELS,
    "dicom_id",
    "view",
    "split",
    "study_date",
    "study_order",
]


@pytest.fixture
def cxr_vqa_root(tmp_path: Path, mimic_jpg: Path) -> Path:
    """Medical-CXR-VQA 1.0.0: medical-cxr-vqa-questions.csv with the generator's five columns (no split, no dicom_id)
    and mimic_all.csv (one PA/AP image per study, its view and its official split)."""
    root = tmp_path / "physionet.org" / "files" / "medical-cxr-vqa-dataset" / "1.0.0"
    labels = [""] * len(CHEXPERT_LABELS)
    write_csv(
        root / "mimic_all.csv",
        MIMIC_ALL_HEADER,
        [
            ["10000001", "50000001", *labels, "aaaa-pa", "postero-anterior", "train", "21800101", 0],
            ["10000001", "50000002", *labels, "bbbb-ap", "antero-posterior", "train", "21800301", 1],
            ["11000002", "50000003", *labels, "cccc-pa", "postero-anterior", "validate", "21810101", 0],
            ["12000003", "50000004", *labels, "dddd-pa", "postero-anterior", "test", "21820101", 0],
        ],
    )
    write_csv(
        root / "medical-cxr-vqa-questions.csv",
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
            [
                "50000001",
                "10000001",
                "location",
                "where is the pleural effusion located?",
                "left lower lobe area and right lower lobe area",
            ],
            ["50000003", "11000002", "view", "which view is this image taken?", "PA view"],
            ["50000003", "11000002", "level", "what level is the cardiomegaly?", "mild"],
            ["50000004", "12000003", "type", "what type is the opacity?", "patchy"],
        ],
    )
    return root


@pytest.fixture
def open_i_small(tmp_path: Path) -> Path:
    """Open-I, Kaggle layout, six invented reports with their frontal images."""
    return build_open_i(tmp_path / "open-i-small")
