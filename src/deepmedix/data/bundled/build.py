"""Rebuild the embedded sample's assets from the curated public CXR material (maintainers only).

    python -m deepmedix.data.bundled.build /path/to/shared/data/curated

Keeps only CC0 records (VQA-RAD images with their QA pairs, NIH ChestX-ray14 images with their official labels),
downscales each image to at most ``MAX_SIDE`` pixels a side as JPEG, and writes ``assets/manifest.json`` with every
record's origin, licence, original size and labels. Attribution lives in NOTICE-data.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image

from deepmedix.io import atomic_write_json

MAX_SIDE = 384
JPEG_QUALITY = 80
ASSETS = Path(__file__).resolve().parent / "assets"


def build(curated: Path, assets: Path = ASSETS) -> Path:
    records = [json.loads(line) for line in (curated / "samples.jsonl").read_text().splitlines() if line.strip()]
    keep = [r for r in records if r["id"].split("/")[0] in ("vqarad", "nih_cxr14") and r["license"].startswith("CC0")]
    (assets / "images").mkdir(parents=True, exist_ok=True)
    entries = []
    for r in keep:
        dataset = "VQA-RAD" if r["id"].startswith("vqarad") else "NIH ChestX-ray14"
        name = r["id"].replace("/", "_") + ".jpg"
        with Image.open(curated / r["image"]) as img:
            img = img.convert("L")
            img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
            img.save(assets / "images" / name, quality=JPEG_QUALITY, optimize=True)
            width, height = img.size
        entry = {
            "file": f"images/{name}",
            "dataset": dataset,
            "original_id": r["original_id"],
            "width": width,
            "height": height,
            "orig_width": r["orig_width"],
            "orig_height": r["orig_height"],
            "view": r.get("view"),
            "license": r["license"],
            "source_repo": r["source_repo"],
            "source_commit": r["source_commit"],
            "source_path": r["source_path"],
        }
        if dataset == "VQA-RAD":
            entry["patient_id"] = r["original_id"].rsplit(".", 1)[0]  # one MedPix case per image
            entry["vqa"] = [
                {k: q[k] for k in ("qid", "question", "answer", "answer_type", "question_type", "phrase_type", "split")}
                for q in r["vqa"]
            ]
        else:
            entry["patient_id"] = r["meta"]["patient_id"]
            entry["labels"] = sorted(r["labels"]["nih14"])
            entry["label_source"] = r["labels"]["label_source"]
        entries.append(entry)
    manifest = assets / "manifest.json"
    atomic_write_json(manifest, {"version": 1, "max_side": MAX_SIDE, "images": entries}, indent=1)
    return manifest


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
