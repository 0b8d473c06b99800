"""Token lengths of reference answers, per task: the evidence for the default budgets of new tokens
(``deepmedix.protocol.TASK_NEW_TOKENS``, docs/inference.md "Generation budgets").

Counts, with a real-size tokenizer, the reference reports of Open-I (``indiana_reports.csv``: findings and
impression), the answers of a samples file, and the offline template teacher's protocol completions for it (short
reasoning + answer), and the token cost of one cited box:

    .venv/bin/python benchmarks/answer_lengths.py --tokenizer /models/Qwen2.5-VL-7B-Instruct \\
        --open-i /data/open-i/indiana_reports.csv --samples samples.jsonl [--samples phantom/samples.jsonl]

``--tokenizer`` is a tokenizer folder or hub id (``transformers.AutoTokenizer``), or a ``.tiktoken`` file of
Qwen's BPE ranks (Qwen2/2.5 share them, 151,643 tokens; needs the ``tiktoken`` package). Prints JSON.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
from collections.abc import Callable
from pathlib import Path

from deepmedix.data.frame import QWEN25_VL_FRAME
from deepmedix.data.schema import load_samples
from deepmedix.training.coldstart.teachers import TemplateTeacher

# Qwen2's pre-tokenisation pattern (its tokenizer.json), for a .tiktoken file of its ranks.
QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def token_counter(name: str) -> Callable[[str], int]:
    if name.endswith(".tiktoken"):
        import tiktoken  # only for a ranks file: not a dependency of the project

        lines = Path(name).read_bytes().splitlines()
        ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in lines if line)}
        encoding = tiktoken.Encoding("qwen2", pat_str=QWEN2_PATTERN, mergeable_ranks=ranks, special_tokens={})
        return lambda text: len(encoding.encode(text))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name)
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def distribution(values: list[int]) -> dict[str, float]:
    values = sorted(values)
    n = len(values)
    return {
        "n": n,
        "mean": round(sum(values) / n, 1),
        "p50": values[n // 2],
        "p90": values[min(n - 1, int(0.9 * n))],
        "p99": values[min(n - 1, int(0.99 * n))],
        "max": values[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", required=True, help="tokenizer folder, hub id, or Qwen .tiktoken ranks file")
    parser.add_argument("--open-i", type=Path, help="Open-I indiana_reports.csv")
    parser.add_argument("--samples", type=Path, action="append", default=[], help="samples JSONL (repeatable)")
    args = parser.parse_args()
    count = token_counter(args.tokenizer)
    out: dict[str, object] = {"box": count("[123, 234, 345, 456]")}
    if args.open_i:
        with args.open_i.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        for section in ("findings", "impression"):
            texts = [r[section] for r in rows if (r.get(section) or "").strip()]
            out[f"open-i/{section}"] = distribution([count(t) for t in texts])
    teacher = TemplateTeacher()
    groups: dict[str, dict[str, list[int]]] = {}
    for path in args.samples:
        for s in load_samples(path):
            width, height = s.images[0].width or 512, s.images[0].height or 512
            frame_size = QWEN25_VL_FRAME.input_size(width, height)
            boxes = [[*QWEN25_VL_FRAME.to_model(b.as_list(), width, height), b.label] for b in s.boxes]
            completion = teacher.write(
                {"prompt": s.prompt, "answer": s.answer, "task": str(s.task), "frame_size": frame_size, "boxes": boxes}
            )
            group = groups.setdefault(f"{s.source}/{s.task}", {"answer": [], "template_completion": []})
            group["answer"].append(count(s.answer))
            group["template_completion"].append(count(completion))
    for name, lengths in sorted(groups.items()):
        out[name] = {kind: distribution(values) for kind, values in lengths.items()}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
