"""An example XrayBench report from two trivial baselines on public data, for docs/figures/eval_example_*.png.

* Reports (IU X-ray / Open-i findings and impressions): the "prediction" is another, randomly drawn report of the
  same section — the floor any model should beat.
* VQA (VQA-RAD, CC0): the "prediction" is the most common training answer of the question's type.

    .venv/bin/python benchmarks/eval_example.py --out /tmp/eval-example
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CURATED = ROOT.parent / "shared" / "data" / "curated"


def build_predictions(path: Path, n_reports: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    rows = [json.loads(x) for x in (CURATED / "text" / "iu_xray_reports.jsonl").read_text().splitlines() if x.strip()]
    lines = []
    for section in ("findings", "impression"):
        texts = [r[section] for r in rows if r.get(section)]
        for i, ref in enumerate(rng.sample(texts, n_reports)):
            lines.append(
                {
                    "id": f"iu-{section}-{i}",
                    "split": "test",
                    "task": f"report_{section}",
                    "benchmark": f"openi/{section}",
                    "prediction": rng.choice(texts),
                    "reference": ref,
                }
            )
    vqa = [json.loads(x) for x in (CURATED / "vqa_pairs.jsonl").read_text().splitlines() if x.strip()]
    common: dict[str, Counter[str]] = defaultdict(Counter)
    for q in vqa:
        if q["split"] == "train":
            common[q["question_type"]][q["answer"].strip().lower()] += 1
    for q in vqa:
        if q["split"] != "test":
            continue
        guess = common[q["question_type"]].most_common(1)[0][0] if common[q["question_type"]] else "yes"
        lines.append(
            {
                "id": f"vqarad-{q['qid']}",
                "split": "test",
                "task": "vqa",
                "benchmark": "vqa-rad/vqa",
                "prediction": guess,
                "reference": q["answer"],
                "answer_type": "closed" if q["answer_type"] == "CLOSED" else "open",
                "question_type": q["question_type"].lower(),
            }
        )
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/eval-example"))
    ap.add_argument("--reports", type=int, default=500)
    args = ap.parse_args()
    from deepmedix.evaluation.evaluate import evaluate_file

    args.out.mkdir(parents=True, exist_ok=True)
    preds = args.out / "predictions.jsonl"
    build_predictions(preds, args.reports)
    evaluate_file(preds, args.out)
    for png in (args.out / "figures").glob("eval_*.png"):
        shutil.copy(png, ROOT / "docs" / "figures" / png.name.replace("eval_", "eval_example_", 1))
    print((args.out / "report.md").read_text())


if __name__ == "__main__":
    main()
