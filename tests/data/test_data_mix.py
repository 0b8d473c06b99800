"""prepare mix: the paper's three training sets from the converters' outputs, the cross-source patient check, the
manifest and the allocation rule."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from data_fixtures import write_csv

from deepmedix.cli import main
from deepmedix.data.convert import run_conversion
from deepmedix.data.enums import Split, Task
from deepmedix.data.mix import allocate, build_mix, eligible_for_checked_stages
from deepmedix.data.mix_options import MixOptions
from deepmedix.data.schema import Sample, load_samples, sample_to_json
from deepmedix.data.sources import SOURCES
from deepmedix.errors import OptionError, SplitLeakError
from deepmedix.io import sha256_file


@pytest.fixture
def converted(
    tmp_path: Path,
    mimic_jpg: Path,
    mimic_reports: Path,
    ms_cxr_root: Path,
    ext_vqa_root: Path,
    cxr_vqa_root: Path,
    open_i_small: Path,
) -> dict[str, Path]:
    """Every converter's output on its release-layout fixture, MIMIC sources over one MIMIC-CXR-JPG folder."""
    out = tmp_path / "converted"
    roots = {
        "mimic-cxr": mimic_jpg,
        "ms-cxr": ms_cxr_root,
        "ext-vqa": ext_vqa_root,
        "cxr-vqa": cxr_vqa_root,
        "open-i": open_i_small,
    }
    files = {}
    for source, root in roots.items():
        files[source] = out / f"{source}.jsonl"
        extra = {"reports_root": mimic_reports} if source == "mimic-cxr" else {}
        run_conversion(SOURCES[source], source, root, files[source], images_root=mimic_jpg, **extra)
    return files


def _read(path: Path) -> list[Sample]:
    return load_samples(path)


def test_mix_writes_three_sets_and_a_manifest(converted: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "mix"
    inputs = [str(p) for p in converted.values()]
    assert main(["prepare", "mix", *inputs, "--out", str(out), "--scale", "0.001", "--seed", "3"]) == 0
    sets = {name: _read(out / f"{name}.jsonl") for name in ("sft", "coldstart_input", "rl")}
    everything = [s for p in converted.values() for s in _read(p)]
    training = [s for s in everything if s.split == Split.TRAIN]
    eligible = [s for s in training if eligible_for_checked_stages(s)]
    # the paper's sizes × 0.001: SFT 352 (more than the fixtures hold: all of train), cold start 4, RL 7
    assert {s.id for s in sets["sft"]} == {s.id for s in training}
    assert len(sets["coldstart_input"]) == 4 and len(sets["rl"]) == 7
    assert all(s.split == Split.TRAIN for rows in sets.values() for s in rows)
    cold, rl = {s.id for s in sets["coldstart_input"]}, {s.id for s in sets["rl"]}
    assert not cold & rl and (cold | rl) <= {s.id for s in eligible}
    assert any(s.task in (Task.REPORT_FINDINGS, Task.REPORT_IMPRESSION) for s in sets["rl"])  # reports in RL
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["seed"], manifest["scale"]) == (3, 0.001)
    assert manifest["sizes"]["sft"] == {"paper": 351_500, "target": 352, "written": len(training)}
    assert manifest["sizes"]["rl"] == {"paper": 6_600, "target": 7, "written": 7}
    for entry in manifest["inputs"]:
        assert entry["sha256"] == sha256_file(entry["file"])
    for stage, rows in (("sft", sets["sft"]), ("coldstart", sets["coldstart_input"]), ("rl", sets["rl"])):
        counted = {(c["source"], c["task"]): c["n"] for c in manifest["counts"] if c["stage"] == stage and c["n"]}
        drawn: dict[tuple[str, str], int] = {}
        for s in rows:
            drawn[(s.source, s.task.value)] = drawn.get((s.source, s.task.value), 0) + 1
        assert counted == drawn
    assert manifest["overlap"]["coldstart_rl"] == 0
    assert manifest["leak_check"]["n_leaking_patients"] == 0 and manifest["leak_check"]["test_patients"] >= 2
    assert manifest["left_out_of_training"]["test"] == sum(s.split == Split.TEST for s in everything)
    assert set(manifest["figures"]) == {"sft", "coldstart", "rl"}
    assert all((out / name).stat().st_size > 10_000 for name in manifest["figures"].values())
    # the same seed draws the same sets; another seed other ones
    again = tmp_path / "again"
    assert main(["prepare", "mix", *inputs, "--out", str(again), "--scale", "0.001", "--seed", "3", "--no-figure"]) == 0
    for name in ("sft", "coldstart_input", "rl"):
        assert (again / f"{name}.jsonl").read_text() == (out / f"{name}.jsonl").read_text()
    other = tmp_path / "other"
    build_mix([Path(p) for p in inputs], other, MixOptions(scale=0.001, seed=4, figure=False))
    assert (other / "rl.jsonl").read_text() != (out / "rl.jsonl").read_text()


def test_a_patient_trained_in_one_source_and_tested_in_another_is_named(
    converted: dict[str, Path], cxr_vqa_root: Path, mimic_jpg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the official split, CXR-VQA's own split column puts patient 10000001 in test: on its own the file is
    patient-level, but MIMIC-CXR, MS-CXR and Ext-VQA train on the same MIMIC-CXR subject."""
    mimic_all = cxr_vqa_root / "mimic_all.csv"
    rows = list(csv.reader(mimic_all.open()))
    col = rows[0].index("split")
    write_csv(mimic_all, [c for i, c in enumerate(rows[0]) if i != col], [r[:col] + r[col + 1 :] for r in rows[1:]])
    qa = cxr_vqa_root / "medical-cxr-vqa-questions.csv"
    rows = list(csv.reader(qa.open()))
    write_csv(qa, [*rows[0], "split"], [[*r, "test"] for r in rows[1:]])
    leaky = tmp_path / "cxr-vqa-own-split.jsonl"
    run_conversion(SOURCES["cxr-vqa"], "cxr-vqa", cxr_vqa_root, leaky, images_root=mimic_jpg / "files")
    inputs = [str(converted[s]) for s in ("mimic-cxr", "ms-cxr", "ext-vqa", "open-i")] + [str(leaky)]
    out = tmp_path / "mix"
    assert main(["prepare", "mix", *inputs, "--out", str(out), "--scale", "0.001"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SplitLeak" not in err
    assert "1 patient(s) are in the training data and in the test split: mimic patient 10000001 (training in " in err
    assert f"{converted['mimic-cxr']}, {converted['ms-cxr']}" in err and f"test in {leaky})" in err
    assert "mimic patient 11000002" not in err  # a validation patient elsewhere: not trained on
    assert "--on-leak drop" in err and not out.exists()
    # --on-leak drop leaves their training samples out and records it
    build_mix([Path(p) for p in inputs], out, MixOptions(scale=0.001, on_leak="drop", figure=False))
    manifest = json.loads((out / "manifest.json").read_text())
    leak = manifest["leak_check"]
    assert leak["leaking_patients"] == ["mimic patient 10000001"] and leak["on_leak"] == "drop"
    expected = sum(s.patient_id == "10000001" and s.split == Split.TRAIN for p in inputs for s in _read(Path(p)))
    assert leak["dropped_training_samples"] == expected > 5
    trained = {s.patient_id for name in ("sft", "coldstart_input", "rl") for s in _read(out / f"{name}.jsonl")}
    assert "10000001" not in trained


def test_benchmark_patients_are_kept_out_of_training(converted: dict[str, Path], tmp_path: Path) -> None:
    """--test-split: a benchmark file (e.g. from prepare xraybench) is test data as a whole."""
    bench = tmp_path / "bench.jsonl"
    sample = _read(converted["mimic-cxr"])[0]
    assert sample.patient_id == "10000001" and sample.split == Split.TRAIN
    bench_sample = sample.model_copy(update={"id": "xraybench/default/test/0", "split": Split.TEST})
    bench.write_text(sample_to_json(bench_sample) + "\n")
    with pytest.raises(SplitLeakError, match=rf"mimic patient 10000001 \(training in .*; test in {bench}\)"):
        build_mix(list(converted.values()), tmp_path / "mix", MixOptions(scale=0.001, test_split=[bench]))
    with pytest.raises(OptionError, match="--rl-tasks: 'reports=1' is not TASK=SHARE"):
        MixOptions(rl_tasks="reports=1")


def test_allocate_fills_shares_up_to_what_is_available() -> None:
    # proportional when everything fits
    assert allocate(10, {"a": 100, "b": 100}, {"a": 3.0, "b": 2.0}) == {"a": 6, "b": 4}
    # a key that cannot take its share gives what it has; the rest goes to the others by their weights
    assert allocate(10, {"a": 2, "b": 100, "c": 100}, {"a": 1.0, "b": 1.0, "c": 3.0}) == {"a": 2, "b": 2, "c": 6}
    # never more than available in total, nothing for a key without weight
    assert allocate(50, {"a": 4, "b": 5, "c": 9}, {"a": 1.0, "b": 1.0, "c": 0.0}) == {"a": 4, "b": 5, "c": 0}
    # integers add up to the total (largest remainder)
    result = allocate(7, {"a": 9, "b": 9, "c": 9}, {"a": 1.0, "b": 1.0, "c": 1.0})
    assert sum(result.values()) == 7 and max(result.values()) - min(result.values()) == 1
