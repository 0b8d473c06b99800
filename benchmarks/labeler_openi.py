"""Agreement of the rule-based CheXpert labeler with the manual MeSH codes of the Open-I reports (and, when a
checkpoint is given, with CheXbert on the same reports).

    .venv/bin/python benchmarks/labeler_openi.py [--csv indiana_reports.csv] [--figure docs/figures/labeler_openi.png]
        [--json results.json] [--chexbert chexbert.pth --chexbert-tokenizer path/to/bert-base-uncased]

Prints Markdown tables (as in docs/labeler.md) and draws precision / recall per observation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from deepmedix.labeler import OBSERVATIONS
from deepmedix.labeler.agreement import Agreement, agreement_dicts, agreement_table, openi_agreement, positive_agreement

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT.parent / "shared" / "data" / "open-i" / "indiana_reports.csv"
DEFAULT_FIGURE = ROOT / "docs" / "figures" / "labeler_openi.png"
# CheXbert's classes per head: 0 blank, 1 positive, 2 negative, 3 uncertain (No Finding: 0 blank, 1 positive).
CHEXBERT_CLASS_TO_LABEL = {0: None, 1: 1, 2: 0, 3: -1}


def chexbert_labels(checkpoint: Path, tokenizer_dir: Path, texts: list[str], min_vocab_size: int = 30000) -> list[dict]:
    """Label ``texts`` with a CheXbert checkpoint through the evaluation package's loader (strict, batched)."""
    from deepmedix.evaluation.chexbert import CheXbertLabeler

    labeler = CheXbertLabeler(checkpoint, tokenizer_dir, min_vocab_size=min_vocab_size)
    return [
        {name: CHEXBERT_CLASS_TO_LABEL[int(c)] for name, c in zip(OBSERVATIONS, row, strict=True)}
        for row in labeler.classes(texts)
    ]


def draw(rows: list[Agreement], rows_uncertain: list[Agreement], path: Path, n_reports: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [r.observation for r in rows]
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 7))
    bars = [
        ([r.precision or 0 for r in rows], "precision of positives", "#1f77b4"),
        ([r.recall or 0 for r in rows], "recall of positives", "#ff7f0e"),
        ([r.recall or 0 for r in rows_uncertain], "recall, positive or uncertain", "#ffbb78"),
    ]
    for k, (values, label, color) in enumerate(bars):
        ax.barh(y + (k - 1) * 0.27, values, height=0.27, label=label, color=color)
    ax.set_yticks(y, [f"{r.observation} (n={r.gold})" for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("agreement with the Open-I MeSH codes")
    ax.set_title(f"Rule-based CheXpert labeler vs manual MeSH codes, {n_reports} Open-I reports", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.4, -0.08), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="Open-I indiana_reports.csv")
    parser.add_argument("--figure", type=Path, default=DEFAULT_FIGURE)
    parser.add_argument("--json", type=Path, help="write the numbers here")
    parser.add_argument("--chexbert", type=Path, help="a CheXbert checkpoint (chexbert.pth); skipped when not given")
    parser.add_argument(
        "--chexbert-tokenizer", type=Path, help="local bert-base-uncased folder (vocab.txt) for --chexbert"
    )
    args = parser.parse_args(argv)
    if not args.csv.is_file():
        print(f"{args.csv}: no such file (pass --csv)", file=sys.stderr)
        return 1

    start = time.perf_counter()
    reports, labels, rows = openi_agreement(args.csv)
    seconds = time.perf_counter() - start
    rows_uncertain = positive_agreement([r.positives for r in reports], labels, count_uncertain=True)
    print(f"{len(reports)} coded Open-I reports labeled in {seconds:.2f} s (including reading the CSV)\n")
    print("Positives (label 1) vs MeSH codes:\n")
    print(agreement_table(rows))
    print("\nPositive or uncertain (label 1 or -1) vs MeSH codes:\n")
    print(agreement_table(rows_uncertain))
    results: dict[str, object] = {
        "reports": len(reports),
        "positive": agreement_dicts(rows),
        "positive_or_uncertain": agreement_dicts(rows_uncertain),
    }

    if args.chexbert:
        if args.chexbert_tokenizer is None:
            parser.error("--chexbert needs --chexbert-tokenizer (a local bert-base-uncased folder)")
        reference = chexbert_labels(args.chexbert, args.chexbert_tokenizer, [r.text for r in reports])
        as_gold = [frozenset(n for n, v in ref.items() if v == 1) for ref in reference]
        rows_chexbert = positive_agreement(as_gold, labels)
        exact = {
            name: sum(ref[name] == ours[name] for ref, ours in zip(reference, labels, strict=True)) / len(labels)
            for name in OBSERVATIONS
        }
        print("\nPositives vs CheXbert positives:\n")
        print(agreement_table(rows_chexbert))
        print("\nExact agreement (all four values) with CheXbert:\n")
        print("\n".join(f"- {name}: {value:.3f}" for name, value in exact.items()))
        results["chexbert_positive"] = agreement_dicts(rows_chexbert)
        results["chexbert_exact"] = exact
        mesh_vs_chexbert = positive_agreement([r.positives for r in reports], reference)
        print("\nFor scale, CheXbert positives vs MeSH codes:\n")
        print(agreement_table(mesh_vs_chexbert))
        results["chexbert_vs_mesh"] = agreement_dicts(mesh_vs_chexbert)
    else:
        print("\n(CheXbert comparison skipped: pass --chexbert PATH)")

    draw(rows, rows_uncertain, args.figure, len(reports))
    print(f"\nfigure: {args.figure}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
