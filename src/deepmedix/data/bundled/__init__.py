"""The embedded sample: a few MB of redistributable (CC0) chest X-rays that ship with deepmedix.

``prepare_bundled(out)`` turns it into a samples JSONL that every command can run on, with no download:
- VQA from VQA-RAD's chest radiographs (closed answers → closed, open → open; question types lower-cased);
- report_findings / report_impression for NIH ChestX-ray14 images, written by a fixed template from the image's
  official labels (label-derived template reports, not radiologist reports — the provenance says so);
- VQA presence / abnormality questions from the NIH labels;
- grounding samples on synthetic phantom radiographs (``deepmedix.data.phantom``), whose boxes are known.
Splits are patient-level and deterministic. Attribution: NOTICE-data.md.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from deepmedix.data.convert import check_patient_splits, hash_split
from deepmedix.data.enums import AnswerType, Split, Task
from deepmedix.data.phantom import make_phantom_samples
from deepmedix.data.schema import ImageRef, Provenance, Sample, sample_to_json
from deepmedix.io import atomic_write_jsonl, check_output
from deepmedix.protocol import task_prompt

ASSETS = Path(__file__).resolve().parent / "assets"
IMAGES_DIR = "bundled-images"  # beside the output file

VQA_RAD_CITATION = (
    "Lau JJ, Gayen S, Ben Abacha A, Demner-Fushman D. A dataset of clinically generated visual "
    "questions and answers about radiology images. Scientific Data 5:180251 (2018). OSF 89kps."
)
NIH_CITATION = (
    "Wang X, Peng Y, Lu L, Lu Z, Bagheri M, Summers RM. ChestX-ray8: Hospital-scale chest X-ray database "
    "and benchmarks. CVPR 2017."
)
TEMPLATE_NOTE = (
    "label-derived template report: written by a fixed template from the image's NIH ChestX-ray14 "
    "labels (NLP-mined, ~90% accurate); NOT a radiologist's report"
)

# The 14 NIH ChestX-ray14 findings, each with the sentence the template writes for it.
NIH_FINDINGS: dict[str, str] = {
    "Atelectasis": "There is atelectasis.",
    "Cardiomegaly": "The cardiac silhouette is enlarged.",
    "Effusion": "There is a pleural effusion.",
    "Infiltration": "There is a pulmonary infiltrate.",
    "Mass": "There is a mass.",
    "Nodule": "There is a pulmonary nodule.",
    "Pneumonia": "There are findings of pneumonia.",
    "Pneumothorax": "There is a pneumothorax.",
    "Consolidation": "There is consolidation.",
    "Edema": "There is pulmonary edema.",
    "Emphysema": "There is emphysema.",
    "Fibrosis": "There is pulmonary fibrosis.",
    "Pleural_Thickening": "There is pleural thickening.",
    "Hernia": "There is a hiatal hernia.",
}
NORMAL_FINDINGS = (
    "The lungs are clear. The cardiomediastinal silhouette is within normal limits. There is no "
    "pleural effusion or pneumothorax."
)
NORMAL_IMPRESSION = "No acute cardiopulmonary abnormality."
PHANTOM_PER_SPLIT = {Split.TRAIN: 96, Split.VAL: 6, Split.TEST: 12}


def finding_name(label: str) -> str:
    return label.replace("_", " ").lower()


def template_findings(labels: list[str]) -> str:
    found = [NIH_FINDINGS[label] for label in labels if label in NIH_FINDINGS]
    return " ".join(found) if found else NORMAL_FINDINGS


def template_impression(labels: list[str]) -> str:
    names = [finding_name(label) for label in labels if label in NIH_FINDINGS]
    if not names:
        return NORMAL_IMPRESSION
    text = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return text[0].upper() + text[1:] + "."


def load_manifest() -> dict[str, Any]:
    return json.loads((ASSETS / "manifest.json").read_text(encoding="utf-8"))


def _image_ref(entry: dict[str, Any], images_dir: Path) -> ImageRef:
    target = images_dir / Path(entry["file"]).name
    if not target.is_file():
        shutil.copyfile(ASSETS / entry["file"], target)
    return ImageRef(path=str(target), view=entry.get("view"), width=entry["width"], height=entry["height"])


def _vqa_rad_samples(entry: dict[str, Any], image: ImageRef) -> list[Sample]:
    patient = entry["patient_id"]
    split = hash_split(f"vqa-rad:{patient}")
    samples = []
    for qa in entry["vqa"]:
        answer_type = AnswerType.CLOSED if qa["answer_type"].upper() == "CLOSED" else AnswerType.OPEN
        samples.append(
            Sample(
                id=f"vqa-rad/{qa['qid']}",
                source="vqa-rad",
                split=split,
                task=Task.VQA,
                images=[image.model_copy()],
                prompt=task_prompt("vqa", qa["question"]),
                answer=str(qa["answer"]).strip(),
                answer_type=answer_type,
                question_type=qa["question_type"].strip().lower(),
                patient_id=f"vqa-rad:{patient}",
                study_id=patient,
                provenance=Provenance(
                    dataset="VQA-RAD",
                    file=entry["source_path"],
                    record=f"qid {qa['qid']}",
                    license="CC0-1.0",
                    citation=VQA_RAD_CITATION,
                    source_repo=entry["source_repo"],
                    source_commit=entry["source_commit"],
                    original_split=qa.get("split"),
                    original_size=[entry["orig_width"], entry["orig_height"]],
                ),
            )
        )
    return samples


def _nih_samples(entry: dict[str, Any], image: ImageRef) -> list[Sample]:
    labels = [label for label in entry["labels"] if label in NIH_FINDINGS]
    stem = entry["original_id"].rsplit(".", 1)[0]
    patient = f"nih:{entry['patient_id']}"
    split = hash_split(patient)
    common: dict[str, Any] = {"source": "nih-cxr14", "split": split, "patient_id": patient, "study_id": stem}

    def provenance(kind: str, note: str | None = None) -> Provenance:
        extra = {"note": note} if note else {}
        return Provenance(
            dataset="NIH ChestX-ray14",
            file=entry["source_path"],
            record=f"{stem} ({kind})",
            license="CC0-1.0",
            citation=NIH_CITATION,
            labels=entry["labels"],
            label_source=entry.get("label_source"),
            source_repo=entry["source_repo"],
            original_size=[entry["orig_width"], entry["orig_height"]],
            **extra,
        )

    samples = [
        Sample(
            id=f"nih-cxr14/{stem}/findings",
            task=Task.REPORT_FINDINGS,
            prompt=task_prompt("report_findings"),
            answer=template_findings(labels),
            answer_type=AnswerType.OPEN,
            provenance=provenance("template findings", TEMPLATE_NOTE),
            images=[image.model_copy()],
            **common,
        ),
        Sample(
            id=f"nih-cxr14/{stem}/impression",
            task=Task.REPORT_IMPRESSION,
            prompt=task_prompt("report_impression"),
            answer=template_impression(labels),
            answer_type=AnswerType.OPEN,
            provenance=provenance("template impression", TEMPLATE_NOTE),
            images=[image.model_copy()],
            **common,
        ),
        Sample(
            id=f"nih-cxr14/{stem}/abnormality",
            task=Task.VQA,
            prompt=task_prompt("vqa", "Which abnormalities are seen in this chest X-ray?"),
            answer=" | ".join(finding_name(label) for label in labels) if labels else "none",
            answer_type=AnswerType.MULTI,
            question_type="abnormality",
            provenance=provenance("abnormality"),
            images=[image.model_copy()],
            **common,
        ),
    ]
    # Presence questions: every positive label, and two absent findings chosen deterministically per image.
    absent = [label for label in NIH_FINDINGS if label not in labels]
    offset = int(stem.replace("_", "")) % len(absent)
    asked = labels + [absent[offset], absent[(offset + 7) % len(absent)]]
    for label in asked:
        samples.append(
            Sample(
                id=f"nih-cxr14/{stem}/presence-{label.lower()}",
                task=Task.VQA,
                prompt=task_prompt("vqa", f"Is there {finding_name(label)} in this chest X-ray?"),
                answer="yes" if label in labels else "no",
                answer_type=AnswerType.CLOSED,
                question_type="presence",
                provenance=provenance(f"presence of {label}"),
                images=[image.model_copy()],
                **common,
            )
        )
    return samples


def bundled_samples(images_dir: Path, phantom: bool = True) -> list[Sample]:
    """All samples of the embedded sample; images are copied into ``images_dir``."""
    images_dir.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
    for entry in load_manifest()["images"]:
        image = _image_ref(entry, images_dir)
        if entry["dataset"] == "VQA-RAD":
            samples.extend(_vqa_rad_samples(entry, image))
        else:
            samples.extend(_nih_samples(entry, image))
    if phantom:
        for seed, (split, n) in enumerate(PHANTOM_PER_SPLIT.items()):
            samples.extend(make_phantom_samples(images_dir / "phantom", n, seed=seed, split=split.value))
    check_patient_splits(samples)
    return samples


def prepare_bundled(out_path: str | Path, phantom: bool = True) -> Path:
    """Write the embedded sample as a samples JSONL at ``out_path`` (images beside it, in ``bundled-images/``)."""
    out_path = Path(out_path)
    check_output(out_path)  # before the images are written beside it
    out_dir = out_path.resolve().parent
    samples = bundled_samples(out_dir / IMAGES_DIR, phantom=phantom)
    lines = []
    for s in samples:
        s = s.model_copy(deep=True)  # image refs may be shared between samples of one image
        for img in s.images:
            img.path = Path(img.path).resolve().relative_to(out_dir).as_posix()
        lines.append(sample_to_json(s))
    atomic_write_jsonl(out_path, lines)
    return out_path
