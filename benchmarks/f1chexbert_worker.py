"""Times the f1chexbert package's own ``get_label`` loop; run by the Python of a separate virtualenv that has
f1chexbert (it needs transformers < 5):

    make .venv-reference/.installed     # torch 2.13.0, transformers 4.57.6, f1chexbert 0.0.2, radgraph 0.1.18

Reads {"checkpoint", "tokenizer", "texts", "threads", "device", "refs"?} as JSON on stdin and prints {"seconds",
"labels", "versions", "f1"?} as the last line of stdout: the seconds of the loop alone (model loading excluded) and, per text, the 14 labels of
``get_label(text, mode="classification")`` ("" blank, 1 positive, 0 negative, -1 uncertain); with "refs", also
the package's own micro/macro F1 over 14 and 5 observations with the texts as hypotheses. Only where f1chexbert
fetches from a hub is it redirected — its tokenizer and BERT config to the local ``tokenizer`` folder and its
checkpoint to ``checkpoint`` —; its tokenisation, model and loop run unchanged. Imports nothing from deepmedix.
"""

import json
import os
import shutil
import sys
import tempfile
import time


def main():
    job = json.load(sys.stdin)
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    import transformers
    from f1chexbert import f1chexbert as package

    torch.set_num_threads(int(job["threads"]))
    tokenizer_dir = job["tokenizer"]
    tokenizer_load = package.BertTokenizer.from_pretrained
    config_load = package.AutoConfig.from_pretrained
    package.BertTokenizer.from_pretrained = lambda name, *a, **k: tokenizer_load(tokenizer_dir)
    package.AutoConfig.from_pretrained = lambda name, *a, **k: config_load(tokenizer_dir)
    with tempfile.TemporaryDirectory() as cache:
        shutil.copy(job["checkpoint"], os.path.join(cache, "chexbert.pth"))  # where it looks before downloading
        package.CACHE_DIR = cache
        scorer = package.F1CheXbert(device=job.get("device", "cpu"))
    if job.get("device", "cpu").startswith("cuda"):
        scorer.get_label("warm up")  # the first CUDA call pays for kernel loading
    t0 = time.perf_counter()
    labels = [scorer.get_label(text, mode="classification") for text in job["texts"]]
    seconds = time.perf_counter() - t0
    versions = {"f1chexbert": "0.0.2", "transformers": transformers.__version__, "torch": torch.__version__}
    try:
        from importlib.metadata import version

        versions["f1chexbert"] = version("f1chexbert")
    except Exception:
        pass
    result = {"seconds": seconds, "labels": labels, "versions": versions}
    if job.get("refs") is not None:  # its F1s, with the texts as hypotheses: F1CheXbert.forward(hyps, refs)
        _, _, report_14, report_5 = scorer(job["texts"], job["refs"])
        result["f1"] = {
            f"{avg}_{n}": report[f"{avg} avg"]["f1-score"]
            for n, report in (("14", report_14), ("5", report_5))
            for avg in ("micro", "macro")
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
