"""XrayBench as released: fixtures written with `datasets` itself in plausible layouts (the release's columns could
not be confirmed), the column and group maps, the one-message errors, and a hub id served from the local cache."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import datasets
import pytest
from PIL import Image

from deepmedix.cli import main
from deepmedix.data.enums import AnswerType, Split, Task
from deepmedix.data.schema import load_samples
from deepmedix.data.xraybench import (
    match_group,
    parse_column_map,
    parse_group_map,
    prepare_xraybench,
    strip_image_placeholders,
)
from deepmedix.errors import DataError, OptionError
from deepmedix.inference.predict import benchmark_name

FINDINGS_PROMPT = (
    '<image>Please act as an experienced radiologist and generate the "FINDINGS" section of an X-ray report based on '
    "the provided image(s). Carefully examine the image(s) and describe the findings."
)
IMPRESSION_PROMPT = FINDINGS_PROMPT.replace('"FINDINGS"', '"IMPRESSION"').replace("describe the findings", "conclude")
PAPER_BLOCKS = {
    "mimic-cxr/findings",
    "mimic-cxr/impression",
    "open-i/findings",
    "open-i/impression",
    "ext-vqa/vqa",
    "cxr-vqa/vqa",
}
README_HEAD = "---\nconfigs:\n"


def png_bytes(width: int, height: int, shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height), shade).save(buf, format="PNG")
    return buf.getvalue()


def write_readme(folder: Path, configs: dict[str, str]) -> None:
    """A hub dataset card whose YAML ``configs`` name each config's test files (what the hub viewer reads)."""
    lines = [README_HEAD]
    for i, (name, path) in enumerate(configs.items()):
        lines.append(f"- config_name: {name}\n  data_files:\n  - split: test\n    path: {path}\n")
        if i == 0:
            lines.append("  default: true\n")
    lines.append("---\n# XrayBench (an invented fixture)\n")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text("".join(lines))


@pytest.fixture
def embedded_release(tmp_path: Path) -> Path:
    """Layout 1: one config, one parquet shard, images embedded (an ``Image`` feature), the paper's group names in a
    ``dataset`` column, EasyR1-like ``problem``/``answer`` with a leading ``<image>``."""
    folder = tmp_path / "xraybench-embedded"
    write_readme(folder, {"default": "data/test-*.parquet"})
    mimic = {"bytes": png_bytes(40, 50, 10), "path": "p12/p12000003/s50000004/dddd-pa.jpg"}
    open_i = {"bytes": png_bytes(30, 36, 20), "path": "1_IM-0001-4001.dcm.png"}
    vqa = {"bytes": png_bytes(32, 32, 30), "path": None}
    rows = [
        ("m-f-0", "MIMIC-CXR Findings", mimic, FINDINGS_PROMPT, "The lungs are clear. No effusion.", None),
        ("m-i-0", "MIMIC-CXR Impression", mimic, IMPRESSION_PROMPT, "No acute process.", None),
        ("o-f-0", "OPEN-I Findings", open_i, FINDINGS_PROMPT, "Heart size normal. Lungs clear.", None),
        ("o-i-0", "OPEN-I Impression", open_i, IMPRESSION_PROMPT, "Normal.", None),
        ("e-0", "Ext-VQA", vqa, "<image>\nIs there pleural effusion in the left lung?", "yes", "presence"),
        (
            "e-1",
            "Ext-VQA",
            vqa,
            "<image>\nList all abnormalities in the right lung.",
            "atelectasis | lung opacity",
            "abnormality",
        ),
        ("c-0", "CXR-VQA", vqa, "<image>which view is this image taken?", "PA view", "view"),
        (
            "c-1",
            "CXR-VQA",
            vqa,
            "<image>what abnormalities are seen in this image?",
            "effusion | atelectasis",
            "abnormality",
        ),
    ]
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "dataset": datasets.Value("string"),
            "image": datasets.Image(),
            "problem": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "question_type": datasets.Value("string"),
        }
    )
    columns = ("id", "dataset", "image", "problem", "answer", "question_type")
    ds = datasets.Dataset.from_dict({c: [r[i] for r in rows] for i, c in enumerate(columns)}, features=features)
    (folder / "data").mkdir()
    ds.to_parquet(str(folder / "data" / "test-00000-of-00001.parquet"))
    return folder


@pytest.fixture
def path_release(tmp_path: Path, mimic_jpg: Path, open_i_small: Path) -> Path:
    """Layout 2: a config per group (the group only in the config names), JSON Lines with EasyR1's
    ``prompt``/``answer``/``images``, images as paths: MIMIC-CXR-JPG's ``files/…`` and Open-I file names."""
    folder = tmp_path / "xraybench-paths"
    mimic = ["files/p12/p12000003/s50000004/dddd-pa.jpg"]
    open_i = ["1_IM-0000-1001.dcm.png"]
    vqa = ["p11/p11000002/s50000003/cccc-pa.jpg"]
    groups = {
        "mimic_findings": [(FINDINGS_PROMPT, "The lungs are clear.", mimic)],
        "mimic_impression": [(IMPRESSION_PROMPT, "No acute process.", mimic)],
        "openi_findings": [(FINDINGS_PROMPT, "Lungs clear.", open_i)],
        "openi_impression": [(IMPRESSION_PROMPT, "Normal chest.", open_i)],
        "ext_vqa": [("<image>Is there edema?", "no", vqa), ("<image>List the abnormalities.", "edema | effusion", vqa)],
        "cxr_vqa": [("<image>what level is the edema?", "mild", vqa)],
    }
    write_readme(folder, {name: f"data/{name}.jsonl" for name in groups})
    (folder / "data").mkdir()
    for name, rows in groups.items():
        lines = [json.dumps({"prompt": p, "answer": a, "images": imgs}) for p, a, imgs in rows]
        (folder / "data" / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def renamed_release(tmp_path: Path, mimic_jpg: Path) -> Path:
    """Layout 3: a ``save_to_disk`` folder whose columns no candidate name matches and whose groups are codes."""
    folder = tmp_path / "xraybench-renamed"
    image = str(mimic_jpg / "files" / "p10" / "p10000001" / "s50000001" / "aaaa-pa.jpg")
    ds = datasets.Dataset.from_dict(
        {
            "query_text": ["<image> Describe the FINDINGS.", "<image> Is there edema?"],
            "reference": ["Clear lungs.", "no"],
            "img_file": [image, image],
            "subset": ["g1", "g2"],
        }
    )
    datasets.DatasetDict({"test": ds}).save_to_disk(str(folder))
    return folder


def test_embedded_images_and_a_group_column(embedded_release: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench" / "xraybench.jsonl"
    summary = prepare_xraybench(str(embedded_release), out, cache_dir=tmp_path / "cache")
    samples = {s.id.rsplit("/", 1)[1]: s for s in load_samples(out)}
    assert len(samples) == 8 and {benchmark_name(s.source, s.task) for s in samples.values()} == PAPER_BLOCKS
    assert all(s.split == Split.TEST for s in samples.values())
    findings = samples["m-f-0"]
    assert (findings.source, findings.task, findings.answer_type) == ("mimic-cxr", Task.REPORT_FINDINGS, "open")
    assert findings.prompt.startswith("Please act as") and "<image>" not in findings.prompt
    assert findings.provenance.model_extra["image_placeholders"] == 1
    # the embedded image is written beside the output once, whatever the number of rows that share it
    image_dir = out.parent / "xraybench-images"
    assert Path(findings.images[0].path).parent == image_dir and len(list(image_dir.iterdir())) == 3
    assert (findings.images[0].width, findings.images[0].height) == (40, 50)
    assert samples["m-i-0"].images[0].path == findings.images[0].path
    # patients from the stored image names (MIMIC-CXR-JPG path, Open-I file name)
    assert (findings.patient_id, findings.study_id) == ("12000003", "50000004")
    assert samples["o-f-0"].patient_id == "1" and samples["e-0"].patient_id is None
    # reports are open whatever their length; VQA typed by the released rule
    assert samples["o-i-0"].answer_type == AnswerType.OPEN
    assert [samples[k].answer_type for k in ("e-0", "e-1", "c-0", "c-1")] == ["closed", "multi", "closed", "multi"]
    assert samples["e-0"].prompt == "Is there pleural effusion in the left lung?"
    assert samples["c-0"].question_type == "view"
    assert summary.notes["group from the column dataset"] == 8
    assert summary.notes["answer type by the released rule (| and ≤ 20 words multi, ≤ 2 words closed)"] == 4
    assert "config 'default' split 'test' (8 rows): id (string), dataset (string), image (Image)" in "\n".join(
        summary.lines()
    )


def test_image_paths_and_groups_in_config_names(
    path_release: Path, mimic_jpg: Path, open_i_small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "xb.jsonl"
    args = ["prepare", "xraybench", "--root", str(path_release), "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    assert main([*args, "--images", str(mimic_jpg)]) == 1  # the Open-I images are under another folder
    err = capsys.readouterr().err.splitlines()[-1]  # datasets' progress bars come first
    assert err.startswith("deepmedix prepare: error: ") and "1_IM-0000-1001.dcm.png" in err and "--images" in err
    assert main([*args, "--images", str(mimic_jpg), "--images", str(open_i_small)]) == 0
    samples = load_samples(out)
    assert {benchmark_name(s.source, s.task) for s in samples} == PAPER_BLOCKS and len(samples) == 7
    by_config = {(s.provenance.file, s.provenance.record): s for s in samples}
    mimic = by_config[("mimic_findings/test", "row 0")]
    assert mimic.images[0].path == str(mimic_jpg / "files" / "p12" / "p12000003" / "s50000004" / "dddd-pa.jpg")
    assert mimic.patient_id == "12000003" and mimic.provenance.model_extra["group_from"] == "config name"
    open_i = by_config[("openi_impression/test", "row 0")]
    assert open_i.images[0].path == str(open_i_small / "images" / "images_normalized" / "1_IM-0000-1001.dcm.png")
    assert (open_i.source, open_i.task, open_i.patient_id) == ("open-i", Task.REPORT_IMPRESSION, "1")
    vqa = by_config[("ext_vqa/test", "row 1")]
    assert (vqa.source, vqa.answer, vqa.answer_type, vqa.patient_id) == (
        "ext-vqa",
        "edema | effusion",
        AnswerType.MULTI,
        "11000002",
    )
    assert "xraybench: wrote 7 samples" in capsys.readouterr().out


def test_column_map_group_map_and_their_errors(renamed_release: Path, tmp_path: Path) -> None:
    out = tmp_path / "xb.jsonl"
    with pytest.raises(DataError) as err:
        prepare_xraybench(str(renamed_release), out)
    message = str(err.value)
    assert (
        "cannot find the prompt column and the answer column and the image column in config 'default' split "
        "'test'" in message
    )
    assert (
        "config 'default' split 'test' (2 rows): query_text (string), reference (string), img_file (string), "
        "subset (string)" in message
    )
    assert "--column-map prompt=COLUMN,answer=COLUMN,image=COLUMN" in message and "\n" not in message
    column_map = parse_column_map("prompt=query_text,answer=reference,image=img_file")
    # g1's row asks for FINDINGS of a MIMIC-CXR-JPG image: its group is inferred; g2's cannot be
    with pytest.raises(
        DataError,
        match=r"cannot tell the benchmark group .* of 1 rows.*'g2 / default / test' "
        r"\(1 rows\).*--group-map",
    ):
        prepare_xraybench(str(renamed_release), out, column_map=column_map)
    with pytest.raises(DataError, match=r"the column 'ref' given for answer in config 'default'"):
        prepare_xraybench(str(renamed_release), out, column_map={**column_map, "answer": "ref"})
    groups = parse_group_map("g2=cxr-vqa/vqa")
    prepare_xraybench(str(renamed_release), out, column_map=column_map, group_map=groups)
    first, second = load_samples(out)
    assert (first.source, first.task, first.prompt, first.answer) == (
        "mimic-cxr",
        Task.REPORT_FINDINGS,
        "Describe the FINDINGS.",
        "Clear lungs.",
    )
    assert first.provenance.model_extra["group_from"] == "inferred from the image path and the prompt"
    assert second.provenance.model_extra["group_from"] == "--group-map 'g2'"
    assert (second.source, second.task, second.answer_type, second.patient_id) == (
        "cxr-vqa",
        Task.VQA,
        AnswerType.CLOSED,
        "10000001",
    )
    assert not out.with_name("xb-images").exists()  # path images are referenced, not copied


def test_hub_id_from_the_local_cache_offline(embedded_release: Path, tmp_path: Path) -> None:
    """A hub id resolves through huggingface_hub's cache (refs/main → snapshots/<commit>), never the network."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "datasets--Qika--xraybench"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(embedded_release, repo / "snapshots" / commit)
    out = tmp_path / "xb.jsonl"
    summary = prepare_xraybench(
        "Qika/xraybench", out, offline=True, hub_cache=tmp_path / "hub", cache_dir=tmp_path / "cache"
    )
    assert summary.written == 8
    with pytest.raises(OptionError, match=r"Someone/else: not a local folder.*hf download Someone/else"):
        prepare_xraybench("Someone/else", out, offline=True, hub_cache=tmp_path / "hub")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        prepare_xraybench(str(tmp_path / "not" / "here"), out)


def test_group_names_and_placeholders() -> None:
    assert match_group("MIMIC-CXR Findings") == ("mimic-cxr", Task.REPORT_FINDINGS)
    assert match_group("openi_impression") == ("open-i", Task.REPORT_IMPRESSION)
    assert match_group("MIMIC-Ext-MIMIC-CXR-VQA") == ("ext-vqa", Task.VQA)
    assert match_group("mimic-cxr-vqa") == ("ext-vqa", Task.VQA)  # the Ext-VQA repository's name
    assert match_group("Medical-CXR-VQA") == ("cxr-vqa", Task.VQA)
    assert match_group("mimic", "findings") == ("mimic-cxr", Task.REPORT_FINDINGS)
    assert match_group("mimic vqa") is None and match_group("findings") is None and match_group("default") is None
    assert strip_image_placeholders("<image>\nIs there edema?") == ("Is there edema?", 1)
    assert strip_image_placeholders("Compare <image> and <image> now.") == ("Compare and now.", 2)
    with pytest.raises(OptionError, match="unknown field 'question'"):
        parse_column_map("question=q")
    with pytest.raises(OptionError, match="not VALUE=SOURCE/TASK"):
        parse_group_map("g1=mimic-cxr")
