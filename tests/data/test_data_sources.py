"""The five converters on hand-made fixtures in their layouts, Open-I on the real CSVs, and the error policy."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from data_fixtures import REPORT_BOTH, REPORT_LAST_PARAGRAPH, REPORT_NONE, write_csv, write_image

from deepmedix.cli import main
from deepmedix.data.convert import hash_split, run_conversion
from deepmedix.data.enums import AnswerType, Split, Task
from deepmedix.data.frame import box_inside
from deepmedix.data.reports import extract_sections, normalize_section_name
from deepmedix.data.schema import load_samples
from deepmedix.data.sources import SOURCES
from deepmedix.errors import InputFileError, RowError, SplitLeakError


def convert(source: str, root: Path, tmp_path: Path, **kwargs: object) -> tuple[list, object]:
    out = tmp_path / f"{source}.jsonl"
    summary = run_conversion(SOURCES[source], source, root, out, **kwargs)  # type: ignore[arg-type]
    return load_samples(out), summary


# --- report sections --------------------------------------------------------------------------------------------


def test_sections_follow_mimic_rules() -> None:
    both = extract_sections(REPORT_BOTH)
    assert both.findings == (
        "The lungs are clear without focal consolidation. No pleural effusion or pneumothorax. Heart size is normal."
    )
    assert both.impression == "No acute cardiopulmonary process."
    assert normalize_section_name("CONCLUSION") == "impression"
    assert normalize_section_name("IMPRESSON") == "impression"
    assert normalize_section_name("FINDNGS") == "findings"
    assert normalize_section_name("PA AND LATERAL VIEWS OF THE CHEST") == "findings"
    assert normalize_section_name("REASON FOR EXAM") == "indication"
    # the last section of a name wins, and an empty duplicate is dropped
    text = " FINDINGS: Old text.\n IMPRESSION: \n FINDINGS: New text.\n IMPRESSION: Final words.\n"
    sections = extract_sections(text)
    assert (sections.findings, sections.impression) == ("New text.", "Final words.")
    assert extract_sections("No headers in this report at all.").findings is None
    # a lower-case word followed by a colon inside a sentence is not a header
    assert extract_sections(" FINDINGS: Heart: normal size.\n").findings == "Heart: normal size."


def test_report_without_findings_or_impression_keeps_its_last_paragraph() -> None:
    """MIMIC-CXR's parser: with neither section, the last section is cut at its first blank line."""
    sections = extract_sections(REPORT_LAST_PARAGRAPH)
    assert (sections.findings, sections.impression) == (None, None)
    assert sections.last_paragraph == "Heart size is normal. The lungs are clear. No pleural effusion."
    assert dict(sections.sections)["history"].strip() == "Cough, question pneumonia."
    # a report with an impression has no last_paragraph section, nor does one whose last section has no blank line
    assert extract_sections(REPORT_BOTH).last_paragraph is None
    assert extract_sections(REPORT_NONE).last_paragraph is None
    no_headers = "                                 FINAL REPORT\n Portable chest.\n \n No acute process.\n"
    assert extract_sections(no_headers).last_paragraph == "No acute process."


# --- MIMIC-CXR --------------------------------------------------------------------------------------------------


def test_mimic_cxr(mimic_root: Path, tmp_path: Path) -> None:
    samples, summary = convert("mimic-cxr", mimic_root, tmp_path)
    by_id = {s.id: s for s in samples}
    assert set(by_id) == {
        "mimic-cxr/s50000001/findings",
        "mimic-cxr/s50000001/impression",
        "mimic-cxr/s50000002/impression",
        "mimic-cxr/s50000003/findings",
        "mimic-cxr/s50000003/impression",
        "mimic-cxr/s50000006/impression",  # the last paragraph of a report with neither section
    }
    first = by_id["mimic-cxr/s50000001/findings"]
    assert first.task == Task.REPORT_FINDINGS and first.answer_type == AnswerType.OPEN
    assert first.images[0].path.endswith("s50000001/aaaa-pa.jpg")  # the PA image, not the lateral
    assert (first.images[0].width, first.images[0].height, first.images[0].view) == (64, 80, "PA")
    assert first.answer.startswith("The lungs are clear") and first.patient_id == "10000001"
    assert by_id["mimic-cxr/s50000002/impression"].answer == "Mild pulmonary edema, improved since prior."
    assert by_id["mimic-cxr/s50000003/findings"].answer == "Small left pleural effusion."
    assert by_id["mimic-cxr/s50000003/impression"].images[0].path.endswith("cccc-pa.jpg")  # PA before AP
    assert by_id["mimic-cxr/s50000003/impression"].split == Split.VAL  # "validate" in the official split
    last = by_id["mimic-cxr/s50000006/impression"]
    assert last.answer == "Heart size is normal. The lungs are clear. No pleural effusion."
    assert last.provenance.model_extra["section"] == "last_paragraph" and last.split == Split.TRAIN
    assert first.provenance.model_extra["section"] == "findings"
    assert summary.skipped["no frontal image"] == 1
    assert summary.skipped["no findings section"] == 3 and summary.skipped["no impression section"] == 1
    assert summary.by_task == {"report_findings": 2, "report_impression": 4}
    assert summary.notes["impression taken from the last paragraph (no FINDINGS or IMPRESSION section)"] == 1
    assert summary.split_from == {"the official MIMIC-CXR split (mimic-cxr-2.0.0-split.csv)": 6}


def test_mimic_cxr_reports_and_jpgs_as_two_downloads(
    mimic_jpg: Path, mimic_reports: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--root is MIMIC-CXR-JPG (gzipped CSVs, images), --reports-root the mimic-cxr project's reports."""
    out = tmp_path / "mimic.jsonl"
    args = ["prepare", "mimic-cxr", "--root", str(mimic_jpg), "--out", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "no report file s50000001.txt" in err and "--reports-root" in err
    assert main([*args, "--reports-root", str(mimic_reports)]) == 0
    samples = {s.id: s for s in load_samples(out)}
    assert len(samples) == 6
    assert samples["mimic-cxr/s50000001/findings"].provenance.file == "files/p10/p10000001/s50000001.txt"
    assert samples["mimic-cxr/s50000001/findings"].images[0].path == str(
        mimic_jpg / "files" / "p10" / "p10000001" / "s50000001" / "aaaa-pa.jpg"
    )
    # the reports folder may also be the unzipped files/ folder itself
    assert main([*args, "--reports-root", str(mimic_reports / "files")]) == 0


def test_mimic_cxr_missing_report_fails_or_skips(mimic_root: Path, tmp_path: Path) -> None:
    (mimic_root / "files" / "p10" / "p10000001" / "s50000002.txt").unlink()
    with pytest.raises(RowError, match=r"mimic-cxr-2\.0\.0-metadata\.csv, row 3, field 'study_id': no report"):
        convert("mimic-cxr", mimic_root, tmp_path)
    assert not (tmp_path / "mimic-cxr.jsonl").exists()  # nothing half-written
    samples, summary = convert("mimic-cxr", mimic_root, tmp_path, on_error="skip")
    assert summary.skipped["report not found"] == 1 and len(samples) == 5


def test_mimic_cxr_reports_tree_and_limit(mimic_root: Path, tmp_path: Path) -> None:
    reports = mimic_root / "mimic-cxr-reports"
    for txt in (mimic_root / "files").rglob("s*.txt"):
        target = reports / "files" / txt.relative_to(mimic_root / "files")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(txt, target)
    samples, _ = convert("mimic-cxr", mimic_root, tmp_path, limit=2)
    assert len(samples) == 2


def test_missing_column_names_file_and_column(mimic_root: Path, tmp_path: Path) -> None:
    meta = mimic_root / "mimic-cxr-2.0.0-metadata.csv"
    rows = list(csv.reader(meta.open()))
    write_csv(meta, [c if c != "ViewPosition" else "View" for c in rows[0]], rows[1:])
    with pytest.raises(RowError, match=r"metadata\.csv, row header, field 'ViewPosition': missing column"):
        convert("mimic-cxr", mimic_root, tmp_path, on_error="skip")  # a broken file is never skipped


# --- Open-I on the real CSVs ----------------------------------------------------------------------------------------


@pytest.fixture
def open_i_root(shared_data: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / "open-i"
    root.mkdir()
    for name in ("indiana_reports.csv", "indiana_projections.csv"):
        shutil.copy(shared_data / "open-i" / name, root / name)
    frontal = [
        row for row in csv.DictReader((root / "indiana_projections.csv").open()) if row["projection"] == "Frontal"
    ]
    chosen = frontal[:6]
    for i, row in enumerate(chosen):  # placeholder images for a handful of the real filenames
        write_image(root / "images" / "images_normalized" / row["filename"], 48 + i, 60, seed=i)
    return root, [row["uid"] for row in chosen]


def test_open_i_real_csvs_with_placeholder_images(open_i_root: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, uids = open_i_root
    reports = {row["uid"]: row for row in csv.DictReader((root / "indiana_reports.csv").open())}
    samples, summary = convert("open-i", root, tmp_path, on_error="skip")
    assert {s.patient_id for s in samples} <= set(uids)
    for s in samples:
        expected = reports[s.patient_id]["findings" if s.task == Task.REPORT_FINDINGS else "impression"]
        assert s.answer == " ".join(expected.split())
        assert s.split == hash_split(f"open-i:{s.patient_id}")
        assert s.images[0].view == "Frontal"
    expected_n = sum(bool(reports[u]["findings"].strip()) + bool(reports[u]["impression"].strip()) for u in uids)
    assert len(samples) == expected_n and expected_n >= 6
    assert summary.skipped["image not found"] > 3000  # every other report with a frontal image
    assert any("indiana_projections.csv, row" in m and "field 'filename'" in m for m in summary.messages)
    again, _ = convert("open-i", root, tmp_path / "again", on_error="skip")
    assert [s.model_dump() for s in again] == [s.model_dump() for s in samples]  # deterministic


def test_open_i_fail_names_row_and_field(open_i_root: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, _ = open_i_root
    with pytest.raises(RowError, match=r"indiana_projections\.csv, row \d+, field 'filename': image file not found"):
        convert("open-i", root, tmp_path)


def test_open_i_unreadable_image_is_named(open_i_root: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, uids = open_i_root
    broken = next((root / "images" / "images_normalized").iterdir())
    broken.write_text("not a png")
    _, summary = convert("open-i", root, tmp_path, on_error="skip")
    assert summary.skipped["unreadable image"] == 1
    assert any(broken.name in m and "unreadable image" in m for m in summary.messages)


# --- MS-CXR -----------------------------------------------------------------------------------------------------


def test_ms_cxr_grounding_boxes(ms_cxr_root: Path, mimic_jpg: Path, tmp_path: Path) -> None:
    samples, summary = convert("ms-cxr", ms_cxr_root, tmp_path, images_root=mimic_jpg)
    assert len(samples) == 3 and all(s.task == Task.GROUNDING for s in samples)
    by_phrase = {s.provenance.model_extra["phrase"]: s for s in samples}
    bibasilar = by_phrase["Bibasilar opacities"]
    assert [b.as_list() for b in bibasilar.boxes] == [[10, 150, 70, 200], [120, 150, 190, 210]]
    assert bibasilar.answer == "pneumonia" and "Bibasilar opacities" in bibasilar.prompt
    assert (bibasilar.patient_id, bibasilar.study_id, bibasilar.split) == ("10000001", "50000001", Split.TRAIN)
    # the second image is stored at half its original size: boxes are scaled into the stored image's pixels
    ptx = by_phrase["Large right pneumothorax"]
    assert (ptx.images[0].width, ptx.images[0].height) == (150, 100)
    assert ptx.boxes[0].as_list() == [10, 5, 60, 65]
    for s in samples:
        for b in s.boxes:
            assert box_inside(b.as_list(), s.images[0].width, s.images[0].height)
    # v1.1.0's split column says train; the official MIMIC-CXR split says patient 12000003 is a test patient
    assert ptx.split == Split.TEST
    assert summary.split_disagreements == {"train → test": 1} and summary.disagreeing_patients == ["12000003"]
    assert summary.split_from == {"the official MIMIC-CXR split (mimic-cxr-2.0.0-split.csv.gz)": 3}
    assert any("overrode the source's own split of 1 samples" in line for line in summary.lines())


def test_ms_cxr_v1_0_without_split_column_takes_the_official_split(
    ms_cxr_v1_root: Path, mimic_jpg: Path, tmp_path: Path
) -> None:
    split_csv = mimic_jpg / "mimic-cxr-2.0.0-split.csv.gz"
    samples, _ = convert("ms-cxr", ms_cxr_v1_root, tmp_path, images_root=mimic_jpg / "files", mimic_split=split_csv)
    assert {s.patient_id: s.split for s in samples} == {"10000001": Split.TRAIN, "12000003": Split.TEST}
    # with no official split to be found (--images at files/, no --mimic-split), a patient hash — loudly
    samples, summary = convert("ms-cxr", ms_cxr_v1_root, tmp_path, images_root=mimic_jpg / "files")
    assert all(s.split == hash_split(f"mimic:{s.patient_id}") for s in samples)
    warning = [line for line in summary.lines() if "WARNING" in line]
    assert len(warning) == 1 and "a patient hash (no official MIMIC-CXR split found" in warning[0]
    assert "--mimic-split" in warning[0]
    with pytest.raises(FileNotFoundError, match="MIMIC-CXR split file not found"):
        convert("ms-cxr", ms_cxr_v1_root, tmp_path, images_root=mimic_jpg, mimic_split=tmp_path / "nope.csv")


def test_ms_cxr_box_outside_image(ms_cxr_root: Path, mimic_jpg: Path, tmp_path: Path) -> None:
    ann = ms_cxr_root / "MS_CXR_Local_Alignment_v1.1.0.csv"
    rows = list(csv.reader(ann.open()))
    rows[3][4] = "180"  # x + w = 270 > image width 200 (row 3: Enlarged heart)
    write_csv(ann, rows[0], rows[1:])
    with pytest.raises(RowError, match=r"v1\.1\.0\.csv, row 3, field 'x,y,w,h': box .* outside its 200×240 image"):
        convert("ms-cxr", ms_cxr_root, tmp_path, images_root=mimic_jpg)
    samples, summary = convert("ms-cxr", ms_cxr_root, tmp_path, on_error="skip", images_root=mimic_jpg)
    assert len(samples) == 2 and summary.skipped["box outside image"] == 1
    rows[3][4] = "abc"
    write_csv(ann, rows[0], rows[1:])
    with pytest.raises(RowError, match=r"row 3, field 'x': not a number"):
        convert("ms-cxr", ms_cxr_root, tmp_path, images_root=mimic_jpg)


# --- Ext-VQA ------------------------------------------------------------------------------------------------------


def test_ext_vqa(ext_vqa_root: Path, mimic_jpg: Path, tmp_path: Path) -> None:
    """The PhysioNet download's folder; image paths relative to MIMIC-CXR-JPG's files/ with --images at the JPG."""
    samples, summary = convert("ext-vqa", ext_vqa_root, tmp_path, images_root=mimic_jpg)
    by_id = {s.id: s for s in samples}
    assert len(samples) == 7 and summary.by_split == {"train": 5, "val": 1, "test": 1}
    verify = by_id["ext-vqa/train/0"]
    assert (verify.answer, verify.answer_type, verify.question_type) == ("yes", AnswerType.CLOSED, "presence")
    multi = by_id["ext-vqa/train/1"]
    assert (multi.answer, multi.answer_type, multi.question_type) == (
        "atelectasis | lung opacity",
        AnswerType.MULTI,
        "abnormality",
    )
    assert (by_id["ext-vqa/train/2"].answer, by_id["ext-vqa/train/2"].answer_type) == ("none", AnswerType.MULTI)
    assert (by_id["ext-vqa/train/3"].answer, by_id["ext-vqa/train/3"].answer_type) == (
        "lung opacity",
        AnswerType.CLOSED,
    )
    assert by_id["ext-vqa/val/0"].question_type == "plane" and by_id["ext-vqa/val/0"].split == Split.VAL
    assert by_id["ext-vqa/test/0"].answer == "female" and by_id["ext-vqa/test/0"].split == Split.TEST
    assert multi.images[0].path == str(mimic_jpg / "files" / "p10" / "p10000001" / "s50000001" / "aaaa-pa.jpg")
    assert by_id["ext-vqa/val/0"].images[0].path.endswith("files/p11/p11000002/s50000003/cccc-pa.jpg")
    # the file's test record of an official training patient moves to train, and the override is counted
    assert by_id["ext-vqa/test/1"].split == Split.TRAIN
    assert summary.split_disagreements == {"test → train": 1} and summary.disagreeing_patients == ["10000001"]
    assert summary.notes["ext-vqa: empty answer list written 'none' (multi)"] == 1
    assert summary.notes["ext-vqa: 'choose' question with one answer typed closed"] == 1
    assert by_id["ext-vqa/train/0"].provenance.file == "MIMIC-Ext-MIMIC-CXR-VQA/dataset/train.json"


def test_ext_vqa_images_under_files_and_other_folders(ext_vqa_root: Path, mimic_jpg: Path, tmp_path: Path) -> None:
    # --images may name files/ itself; the official split is then given with --mimic-split
    samples, summary = convert(
        "ext-vqa", ext_vqa_root, tmp_path, images_root=mimic_jpg / "files", mimic_split=mimic_jpg
    )
    assert len(samples) == 7 and not any(w for w in summary.split_warnings)
    # the built repository's folder (mimiccxrvqa/dataset) is found too
    shutil.move(ext_vqa_root / "MIMIC-Ext-MIMIC-CXR-VQA", ext_vqa_root / "mimiccxrvqa")
    assert len(convert("ext-vqa", ext_vqa_root, tmp_path, images_root=mimic_jpg)[0]) == 7
    # a missing image names every path tried
    (mimic_jpg / "files" / "p12" / "p12000003" / "s50000004" / "dddd-pa.jpg").unlink()
    with pytest.raises(
        RowError,
        match=r"test\.json, row record 0, field 'image_path': image file not found: "
        r"p12/p12000003/s50000004/dddd-pa\.jpg \(tried .*2\.0\.0/files/p12/.*, .*1\.0\.0/files/p12",
    ):
        convert("ext-vqa", ext_vqa_root, tmp_path, images_root=mimic_jpg)


def test_ext_vqa_bad_record_names_record_and_field(ext_vqa_root: Path, mimic_jpg: Path, tmp_path: Path) -> None:
    path = ext_vqa_root / "MIMIC-Ext-MIMIC-CXR-VQA" / "dataset" / "train.json"
    records = json.loads(path.read_text())
    del records[1]["question"]
    path.write_text(json.dumps(records))
    with pytest.raises(RowError, match=r"train\.json, row record 1, field 'question': missing"):
        convert("ext-vqa", ext_vqa_root, tmp_path, images_root=mimic_jpg)
    samples, summary = convert("ext-vqa", ext_vqa_root, tmp_path, on_error="skip", images_root=mimic_jpg)
    assert len(samples) == 6 and summary.skipped["empty field"] == 1
    path.write_text("[{broken")
    with pytest.raises(InputFileError, match=r"train\.json, line 1: not valid JSON"):
        convert("ext-vqa", ext_vqa_root, tmp_path, on_error="skip", images_root=mimic_jpg)


# --- CXR-VQA ------------------------------------------------------------------------------------------------------


def test_cxr_vqa(cxr_vqa_root: Path, mimic_jpg: Path, tmp_path: Path) -> None:
    samples, summary = convert("cxr-vqa", cxr_vqa_root, tmp_path, images_root=mimic_jpg)
    assert [s.question_type for s in samples] == ["abnormality", "presence", "location", "view", "level", "type"]
    abnormality = samples[0]
    assert (abnormality.answer, abnormality.answer_type) == ("pleural effusion | atelectasis", AnswerType.MULTI)
    assert samples[1].answer == "no" and samples[1].answer_type == AnswerType.CLOSED
    assert (samples[2].answer, samples[2].answer_type) == (
        "left lower lobe area | right lower lobe area",
        AnswerType.MULTI,
    )
    assert samples[0].images[0].path.endswith("aaaa-pa.jpg") and samples[0].images[0].view == "PA"
    assert samples[3].images[0].path.endswith("cccc-pa.jpg") and samples[3].images[0].view == "PA"
    # the official split, not a patient hash: 10000001 train, 11000002 validate, 12000003 test
    assert [s.split for s in samples] == [Split.TRAIN] * 3 + [Split.VAL] * 2 + [Split.TEST]
    assert summary.split_from == {"the official MIMIC-CXR split (mimic-cxr-2.0.0-split.csv.gz)": 6}


def test_cxr_vqa_split_from_mimic_all_then_own_column_then_hash(
    cxr_vqa_root: Path, mimic_jpg: Path, tmp_path: Path
) -> None:
    # no split CSV to be found: mimic_all.csv's split column (a copy of the official split) decides, per study
    samples, summary = convert("cxr-vqa", cxr_vqa_root, tmp_path, images_root=mimic_jpg / "files")
    assert [s.split for s in samples] == [Split.TRAIN] * 3 + [Split.VAL] * 2 + [Split.TEST]
    assert summary.split_from == {"the official MIMIC-CXR split (mimic_all.csv)": 6} and not summary.split_warnings
    # a mimic_all.csv without split and no split CSV: a patient hash, loudly
    mimic_all = cxr_vqa_root / "mimic_all.csv"
    rows = list(csv.reader(mimic_all.open()))
    col = rows[0].index("split")
    write_csv(mimic_all, [c for i, c in enumerate(rows[0]) if i != col], [r[:col] + r[col + 1 :] for r in rows[1:]])
    samples, summary = convert("cxr-vqa", cxr_vqa_root, tmp_path, images_root=mimic_jpg / "files")
    assert all(s.split == hash_split(f"mimic:{s.patient_id}") for s in samples)
    assert any(line.startswith("  WARNING: split from a patient hash") for line in summary.lines())


def test_patient_in_two_splits_fails_naming_the_patient(cxr_vqa_root: Path, mimic_jpg: Path, tmp_path: Path) -> None:
    """Without the official split (no split CSV, no split in mimic_all.csv), a question file's own split is used and
    still checked to be patient-level."""
    mimic_all = cxr_vqa_root / "mimic_all.csv"
    rows = list(csv.reader(mimic_all.open()))
    col = rows[0].index("split")
    write_csv(mimic_all, [c for i, c in enumerate(rows[0]) if i != col], [r[:col] + r[col + 1 :] for r in rows[1:]])
    qa = cxr_vqa_root / "medical-cxr-vqa-questions.csv"
    rows = list(csv.reader(qa.open()))
    splits = ["train", "test", "train", "val", "val", "val"]
    write_csv(qa, [*rows[0], "split"], [[*r, s] for r, s in zip(rows[1:], splits, strict=True)])
    with pytest.raises(SplitLeakError, match="patient 10000001 of cxr-vqa is in two splits: train .* and test"):
        convert("cxr-vqa", cxr_vqa_root, tmp_path, images_root=mimic_jpg / "files")
    # with the official split the question file's split is overridden (and the overrides counted)
    samples, summary = convert("cxr-vqa", cxr_vqa_root, tmp_path, images_root=mimic_jpg)
    assert summary.split_disagreements == {"test → train": 1, "val → test": 1}


def test_cxr_vqa_generator_file_names(cxr_vqa_root: Path, mimic_jpg: Path, tmp_path: Path) -> None:
    """The authors' question generator writes data/mimic_llm_questions_full.csv beside data/mimic_all.csv."""
    data = cxr_vqa_root / "data"
    data.mkdir()
    shutil.move(cxr_vqa_root / "medical-cxr-vqa-questions.csv", data / "mimic_llm_questions_full.csv")
    shutil.move(cxr_vqa_root / "mimic_all.csv", data / "mimic_all.csv")
    samples, _ = convert("cxr-vqa", cxr_vqa_root, tmp_path, images_root=mimic_jpg)
    assert len(samples) == 6 and samples[0].provenance.file == "mimic_llm_questions_full.csv"


def test_missing_image_for_study(cxr_vqa_root: Path, mimic_jpg: Path, tmp_path: Path) -> None:
    shutil.rmtree(mimic_jpg / "files" / "p11")
    with pytest.raises(
        RowError, match=r"medical-cxr-vqa-questions\.csv, row 4, field 'study_id': image file not found"
    ):
        convert("cxr-vqa", cxr_vqa_root, tmp_path, images_root=mimic_jpg)


# --- command line -----------------------------------------------------------------------------------------------


def test_cli_prepare_and_errors(
    ms_cxr_root: Path, mimic_jpg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ms.jsonl"
    images = ["--images", str(mimic_jpg)]
    assert main(["prepare", "ms-cxr", "--root", str(ms_cxr_root), "--out", str(out), "--relative-paths", *images]) == 0
    assert "ms-cxr: wrote 3 samples" in capsys.readouterr().out
    line = json.loads(out.read_text().splitlines()[0])
    assert not Path(line["images"][0]["path"]).is_absolute()
    assert all(Path(s.images[0].path).is_file() for s in load_samples(out))  # relative paths resolve
    ann = ms_cxr_root / "MS_CXR_Local_Alignment_v1.1.0.csv"
    rows = list(csv.reader(ann.open()))
    rows[2][7] = "900"
    write_csv(ann, rows[0], rows[1:])
    before = out.read_text()
    assert main(["prepare", "ms-cxr", "--root", str(ms_cxr_root), "--out", str(out), *images]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "row 2, field 'x,y,w,h'" in err and "Traceback" not in err
    assert out.read_text() == before  # the previous output is untouched
    assert main(["prepare", "ms-cxr", "--out", str(out)]) == 1
    assert "needs --root" in capsys.readouterr().err
    assert main(["prepare", "ms-cxr", "--root", str(tmp_path / "nowhere"), "--out", str(out)]) == 1
    assert (
        main(["prepare", "ms-cxr", "--root", str(ms_cxr_root), "--out", str(out), "--on-error", "skip", *images]) == 0
    )
    assert "skipped 1 rows: box outside image (1)" in capsys.readouterr().out


def test_malformed_csv_row_and_gzipped_metadata(mimic_root: Path, tmp_path: Path) -> None:
    import gzip

    meta = mimic_root / "mimic-cxr-2.0.0-metadata.csv"
    lines = meta.read_text().splitlines()
    lines[2] = lines[2] + ",surplus,cells"  # data row 2 has more cells than the header
    meta.write_text("\n".join(lines) + "\n")
    with pytest.raises(RowError, match=r"metadata\.csv, row 2: malformed row: 14 cells for 12 columns"):
        convert("mimic-cxr", mimic_root, tmp_path)
    _, summary = convert("mimic-cxr", mimic_root, tmp_path, on_error="skip")
    assert summary.skipped["malformed row"] == 1
    meta.write_bytes(gzip.compress(meta.read_bytes()))
    meta.rename(meta.with_suffix(".csv.gz"))
    samples, _ = convert("mimic-cxr", mimic_root, tmp_path, on_error="skip")
    assert {s.id for s in samples} >= {"mimic-cxr/s50000003/findings", "mimic-cxr/s50000002/impression"}
