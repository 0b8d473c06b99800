"""The five converters on hand-made fixtures in their layouts, Open-I on the real CSVs, and the error policy."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from data_fixtures import REPORT_BOTH, write_csv, write_image

from deepmedix.cli import main
from deepmedix.data.convert import hash_split, run_conversion
from deepmedix.data.enums import AnswerType, Split, Task
from deepmedix.data.frame import box_inside
from deepmedix.data.reports import extract_sections, normalize_section_name
from deepmedix.data.schema import load_samples
from deepmedix.data.sources import SOURCES
from deepmedix.errors import RowError, SplitLeakError


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
    assert summary.skipped["no frontal image"] == 1
    assert summary.skipped["no findings section"] == 2 and summary.skipped["no impression section"] == 1
    assert summary.by_task == {"report_findings": 2, "report_impression": 3}


def test_mimic_cxr_missing_report_fails_or_skips(mimic_root: Path, tmp_path: Path) -> None:
    (mimic_root / "files" / "p10" / "p10000001" / "s50000002.txt").unlink()
    with pytest.raises(RowError, match=r"mimic-cxr-2\.0\.0-metadata\.csv, row 3, field 'study_id': no report"):
        convert("mimic-cxr", mimic_root, tmp_path)
    assert not (tmp_path / "mimic-cxr.jsonl").exists()  # nothing half-written
    samples, summary = convert("mimic-cxr", mimic_root, tmp_path, on_error="skip")
    assert summary.skipped["report not found"] == 1 and len(samples) == 4


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


def test_ms_cxr_grounding_boxes(ms_cxr_root: Path, tmp_path: Path) -> None:
    samples, _ = convert("ms-cxr", ms_cxr_root, tmp_path)
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


def test_ms_cxr_box_outside_image(ms_cxr_root: Path, tmp_path: Path) -> None:
    ann = ms_cxr_root / "MS_CXR_Local_Alignment_v1.1.0.csv"
    rows = list(csv.reader(ann.open()))
    rows[3][4] = "180"  # x + w = 270 > image width 200 (row 3: Enlarged heart)
    write_csv(ann, rows[0], rows[1:])
    with pytest.raises(RowError, match=r"v1\.1\.0\.csv, row 3, field 'x,y,w,h': box .* outside its 200×240 image"):
        convert("ms-cxr", ms_cxr_root, tmp_path)
    samples, summary = convert("ms-cxr", ms_cxr_root, tmp_path, on_error="skip")
    assert len(samples) == 2 and summary.skipped["box outside image"] == 1
    rows[3][4] = "abc"
    write_csv(ann, rows[0], rows[1:])
    with pytest.raises(RowError, match=r"row 3, field 'x': not a number"):
        convert("ms-cxr", ms_cxr_root, tmp_path)


# --- Ext-VQA ------------------------------------------------------------------------------------------------------


def test_ext_vqa(ext_vqa_root: Path, tmp_path: Path) -> None:
    samples, summary = convert("ext-vqa", ext_vqa_root, tmp_path)
    by_id = {s.id: s for s in samples}
    assert len(samples) == 5 and summary.by_split == {"train": 3, "val": 1, "test": 1}
    verify = by_id["ext-vqa/train/0"]
    assert (verify.answer, verify.answer_type, verify.question_type) == ("yes", AnswerType.CLOSED, "presence")
    multi = by_id["ext-vqa/train/1"]
    assert (multi.answer, multi.answer_type, multi.question_type) == (
        "atelectasis | lung opacity",
        AnswerType.MULTI,
        "abnormality",
    )
    assert by_id["ext-vqa/train/2"].answer == "none"  # an empty answer list
    assert by_id["ext-vqa/val/0"].question_type == "plane" and by_id["ext-vqa/val/0"].split == Split.VAL
    assert by_id["ext-vqa/test/0"].answer == "female" and by_id["ext-vqa/test/0"].question_type == "gender"
    assert multi.images[0].path.endswith("files/p10/p10000001/s50000001/img-a.jpg")


def test_ext_vqa_bad_record_names_record_and_field(ext_vqa_root: Path, tmp_path: Path) -> None:
    path = ext_vqa_root / "dataset" / "train.json"
    records = json.loads(path.read_text())
    del records[1]["question"]
    path.write_text(json.dumps(records))
    with pytest.raises(RowError, match=r"train\.json, row record 1, field 'question': missing"):
        convert("ext-vqa", ext_vqa_root, tmp_path)
    samples, summary = convert("ext-vqa", ext_vqa_root, tmp_path, on_error="skip")
    assert len(samples) == 4 and summary.skipped["empty field"] == 1
    path.write_text("[{broken")
    with pytest.raises(RowError, match=r"train\.json: not valid JSON"):
        convert("ext-vqa", ext_vqa_root, tmp_path, on_error="skip")


# --- CXR-VQA ------------------------------------------------------------------------------------------------------


def test_cxr_vqa(cxr_vqa_root: Path, tmp_path: Path) -> None:
    samples, _ = convert("cxr-vqa", cxr_vqa_root, tmp_path)
    assert [s.question_type for s in samples] == ["abnormality", "presence", "location", "view", "level", "type"]
    abnormality = samples[0]
    assert (abnormality.answer, abnormality.answer_type) == ("pleural effusion | atelectasis", AnswerType.MULTI)
    assert samples[1].answer == "no" and samples[1].answer_type == AnswerType.CLOSED
    assert samples[2].answer == "left lower lobe area" and samples[2].answer_type == AnswerType.CLOSED
    assert samples[0].images[0].path.endswith("img-pa.jpg") and samples[0].images[0].view == "PA"
    assert samples[3].images[0].view == "AP"
    assert all(s.split == hash_split(f"mimic:{s.patient_id}") for s in samples)


def test_patient_in_two_splits_fails_naming_the_patient(cxr_vqa_root: Path, tmp_path: Path) -> None:
    qa = cxr_vqa_root / "medical_cxr_vqa_questions.csv"
    rows = list(csv.reader(qa.open()))
    splits = ["train", "test", "train", "val", "val", "val"]
    write_csv(qa, [*rows[0], "split"], [[*r, s] for r, s in zip(rows[1:], splits, strict=True)])
    with pytest.raises(SplitLeakError, match="patient 10000001 of cxr-vqa is in two splits: train .* and test"):
        convert("cxr-vqa", cxr_vqa_root, tmp_path)


def test_missing_image_for_study(cxr_vqa_root: Path, tmp_path: Path) -> None:
    shutil.rmtree(cxr_vqa_root / "files" / "p11")
    with pytest.raises(RowError, match=r"medical_cxr_vqa_questions\.csv, row 4, field 'study_id': image file not"):
        convert("cxr-vqa", cxr_vqa_root, tmp_path)


# --- command line -----------------------------------------------------------------------------------------------


def test_cli_prepare_and_errors(ms_cxr_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ms.jsonl"
    assert main(["prepare", "ms-cxr", "--root", str(ms_cxr_root), "--out", str(out), "--relative-paths"]) == 0
    assert "ms-cxr: wrote 3 samples" in capsys.readouterr().out
    line = json.loads(out.read_text().splitlines()[0])
    assert not Path(line["images"][0]["path"]).is_absolute()
    assert all(Path(s.images[0].path).is_file() for s in load_samples(out))  # relative paths resolve
    ann = ms_cxr_root / "MS_CXR_Local_Alignment_v1.1.0.csv"
    rows = list(csv.reader(ann.open()))
    rows[2][7] = "900"
    write_csv(ann, rows[0], rows[1:])
    before = out.read_text()
    assert main(["prepare", "ms-cxr", "--root", str(ms_cxr_root), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "row 2, field 'x,y,w,h'" in err and "Traceback" not in err
    assert out.read_text() == before  # the previous output is untouched
    assert main(["prepare", "ms-cxr", "--out", str(out)]) == 1
    assert "needs --root" in capsys.readouterr().err
    assert main(["prepare", "ms-cxr", "--root", str(tmp_path / "nowhere"), "--out", str(out)]) == 1
    assert main(["prepare", "ms-cxr", "--root", str(ms_cxr_root), "--out", str(out), "--on-error", "skip"]) == 0
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
