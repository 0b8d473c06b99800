"""CheXbert labelling throughput: deepmedix's batched labeler against f1chexbert's one-report-at-a-time loop.

Both run the same weights and the same tokenizer, and their labels are checked to be identical. f1chexbert needs
transformers < 5, so it cannot be imported beside deepmedix: with ``--f1chexbert-python`` (the Python of a
virtualenv with f1chexbert, see ``f1chexbert_worker.py``) the package's own loop is timed there; without it, the
loop as deepmedix reproduces it (``deepmedix.evaluation.chexbert.f1chexbert_style_classes``: CheXbert's tokenize →
ids with [CLS]/[SEP] cut at 512, a batch of one, one argmax per head) is timed here.

Without ``--checkpoint``/``--tokenizer`` the model is CheXbert's real architecture at BERT-base size with random
weights and a WordPiece vocabulary trained on the IU reports, padded to bert-base-uncased's 30,522 entries; speed
does not depend on the weights' values. Loop and batched runs are interleaved in rounds so that load from other
processes falls on both alike. The batched rate is measured without de-duplication; labelling each distinct text
once then skips every repeat, so the rate with de-duplication is that rate × reports / distinct reports.

To show where the ceiling lies, the useful work is counted too (2 FLOPs per encoder weight per real token, padding not
counted) and set against what the same device reaches on one large fp32 matrix product — the most any batching
could approach. ``--device cuda`` runs both paths on a GPU.

    .venv/bin/python benchmarks/chexbert_throughput.py --n 600 --loop-n 80 --rounds 2 \
        --f1chexbert-python .venv-reference/bin/python          # the environment `make test` builds
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

IU = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "curated" / "text" / "iu_xray_reports.jsonl"


def iu_reports(path: Path, n: int, seed: int) -> list[str]:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    texts = [r[k] for r in rows for k in ("findings", "impression") if r.get(k)]
    random.Random(seed).shuffle(texts)
    return texts[:n]  # without replacement: repeats are the collection's own (normal reports recur)


def build_random_bert_base(folder: Path, corpus: list[str]) -> tuple[Path, Path]:
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig

    from deepmedix.evaluation.chexbert import BERT_BASE_VOCAB, build_chexbert_module

    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(corpus, vocab_size=BERT_BASE_VOCAB, min_frequency=1, show_progress=False)
    vocab = sorted(wp.get_vocab(), key=wp.get_vocab().get)
    vocab += [f"[unused{i}]" for i in range(BERT_BASE_VOCAB - len(vocab))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = BertConfig()  # bert-base-uncased: 12 layers, hidden 768, vocab 30522
    config.save_pretrained(folder)
    torch.manual_seed(0)
    model = build_chexbert_module(config)
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, folder / "chexbert.pth")
    return folder / "chexbert.pth", folder


WORKER = Path(__file__).with_name("f1chexbert_worker.py")
# get_label(mode="classification") → deepmedix's head classes (0 blank, 1 positive, 2 negative, 3 uncertain)
CLASSIFICATION_TO_CLASS = {"": 0, 1: 1, 0: 2, -1: 3}


def f1chexbert_package_run(
    python: Path,
    checkpoint: Path,
    tokenizer: Path,
    texts: list[str],
    threads: int,
    device: str = "cpu",
    refs: list[str] | None = None,
) -> dict:
    """The f1chexbert worker's result, run in the package's own environment (see f1chexbert_worker.py)."""
    job = {
        "checkpoint": str(checkpoint),
        "tokenizer": str(tokenizer),
        "texts": texts,
        "threads": threads,
        "device": device,
        "refs": refs,
    }
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [str(python), str(WORKER)], input=json.dumps(job), capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"f1chexbert worker ({python}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def f1chexbert_package_loop(
    python: Path, checkpoint: Path, tokenizer: Path, texts: list[str], threads: int, device: str = "cpu"
) -> tuple[float, list[list[int]], dict]:
    """(seconds, classes, versions) of the f1chexbert package's get_label loop, run in its own environment."""
    result = f1chexbert_package_run(python, checkpoint, tokenizer, texts, threads, device)
    classes = [[CLASSIFICATION_TO_CLASS[v] for v in row] for row in result["labels"]]
    return result["seconds"], classes, result["versions"]


def matmul_gflops(device: str, size: int = 2048, repeats: int = 20) -> float:
    """fp32 GFLOP/s of one large square matrix product: a practical peak for dense work on this device."""
    import torch

    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    for _ in range(3):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - t0) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="reports for the batched labeler")
    ap.add_argument("--loop-n", type=int, default=150, help="reports for the one-at-a-time loop (its rate is measured)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: 16 on a CPU, 64 on a GPU")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of loop and batched timing")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--tokenizer", type=Path, default=None)
    ap.add_argument("--reports", type=Path, default=IU)
    ap.add_argument(
        "--f1chexbert-python",
        type=Path,
        default=None,
        help="python of a virtualenv with the f1chexbert package: time its own loop",
    )
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = ap.parse_args()

    import numpy as np
    import torch

    from deepmedix.evaluation.chexbert import CheXbertLabeler, f1chexbert_style_classes

    if args.threads:
        torch.set_num_threads(args.threads)
    loop_versions: dict = {}
    texts = iu_reports(args.reports, args.n, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        if args.checkpoint:
            ckpt, tok = args.checkpoint, args.tokenizer or args.checkpoint.parent
        else:
            ckpt, tok = build_random_bert_base(Path(tmp), texts)
        labeler = CheXbertLabeler(ckpt, tok, batch_size=args.batch_size, device=args.device)
        device = str(labeler.device)
        encoder_weights = sum(p.numel() for n, p in labeler.model.named_parameters() if ".encoder." in n)
        tokens = {t: len(labeler.tokenizer(t, truncation=True, max_length=512)["input_ids"]) for t in texts}

        if device.startswith("cuda"):
            labeler.classes(["warm up"], progress=False)  # the first CUDA call pays for kernel loading
        # Interleaved rounds, so that load from other processes falls on both paths alike.
        loop_s = batched_s = 0.0
        loop_out, batched_out = [], []
        for r in range(args.rounds):
            loop_chunk = texts[: args.loop_n][r :: args.rounds]
            chunk = texts[r :: args.rounds]
            if args.f1chexbert_python:
                seconds, classes, loop_versions = f1chexbert_package_loop(
                    args.f1chexbert_python, ckpt, tok, loop_chunk, torch.get_num_threads(), str(labeler.device)
                )
                loop_out += classes
                loop_s += seconds
            else:
                t0 = time.perf_counter()
                loop_out += [f1chexbert_style_classes(labeler, t) for t in loop_chunk]
                loop_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            batched_out.append(labeler.classes(chunk, progress=False, dedupe=False))
            batched_s += time.perf_counter() - t0
        loop_texts = [t for r in range(args.rounds) for t in texts[: args.loop_n][r :: args.rounds]]
        all_texts = [t for r in range(args.rounds) for t in texts[r :: args.rounds]]
        batched = np.concatenate(batched_out)
        deduped = labeler.classes(all_texts, progress=False)

    position = {t: i for i, t in enumerate(all_texts)}
    identical = bool(
        (np.array(loop_out) == batched[[position[t] for t in loop_texts]]).all() and (deduped == batched).all()
    )
    distinct = len(set(texts))
    loop_rate, batched_rate = len(loop_texts) / loop_s, len(all_texts) / batched_s
    flops = 2 * encoder_weights  # per real token: one multiply-add per encoder weight (attention scores ignored)
    loop_gflops = flops * sum(tokens[t] for t in loop_texts) / loop_s / 1e9
    batched_gflops = flops * sum(tokens[t] for t in all_texts) / batched_s / 1e9
    peak = matmul_gflops(device)
    result = {
        "loop": (
            f"f1chexbert {loop_versions['f1chexbert']} package (transformers {loop_versions['transformers']})"
            if args.f1chexbert_python
            else "deepmedix's reproduction of f1chexbert's loop"
        ),
        "device": torch.cuda.get_device_name(labeler.device) if device.startswith("cuda") else "cpu",
        "reports": args.n,
        "distinct_reports": distinct,
        "mean_tokens": float(np.mean([tokens[t] for t in texts])),
        "loop_reports": len(loop_texts),
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "batch_size": labeler.batch_size,
        "f1chexbert_loop_reports_per_s": loop_rate,
        "batched_reports_per_s": batched_rate,
        "speedup_batched": batched_rate / loop_rate,
        # labelling each distinct text once skips the repeats outright: the rate scales by reports / distinct
        "speedup_batched_dedupe": batched_rate / loop_rate * args.n / distinct,
        "identical_labels": identical,
        "loop_useful_gflops": loop_gflops,
        "batched_useful_gflops": batched_gflops,
        "matmul_fp32_gflops": peak,
        # no batching can do more useful work per second than a large dense product does
        "speedup_ceiling": peak / loop_gflops,
    }
    for k, v in result.items():
        print(f"{k:32s} {v:.2f}" if isinstance(v, float) else f"{k:32s} {v}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
