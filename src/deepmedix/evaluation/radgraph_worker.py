"""RadGraph annotation worker, run by the Python of a separate virtualenv that has ``radgraph`` (and transformers<5).

Reads {"texts": [...]} as JSON on stdin, prints {"annotations": [...]} (one per text, in order) as the last line of
stdout. Imports nothing from deepmedix, so it runs in any environment where ``import radgraph`` works.

``--model-dir`` is the folder radgraph itself caches a model in (``<cache>/<model_type>/`` holding config.json,
vocabulary/ and weights.th). ``--base-model`` points every transformer name in that config.json (a hub id such as
microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext) at a local folder, so nothing is fetched from a hub.
"""

import argparse
import json
import os
import sys
import tempfile


def _retarget(node, base_model):
    if isinstance(node, dict):
        return {k: (base_model if k == "model_name" else _retarget(v, base_model)) for k, v in node.items()}
    if isinstance(node, list):
        return [_retarget(v, base_model) for v in node]
    return node


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--model-type", default="radgraph")
    parser.add_argument("--base-model", default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    texts = json.load(sys.stdin)["texts"]

    # Run by path, this script's folder heads sys.path, and deepmedix's own radgraph.py there would shadow the package.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    from radgraph import RadGraph

    model_dir = os.path.abspath(args.model_dir)
    with tempfile.TemporaryDirectory(prefix="radgraph-") as tmp:
        cache_dir = os.path.dirname(model_dir)
        if args.base_model or os.path.basename(model_dir) != args.model_type:
            # radgraph reads <cache>/<model_type>/: build that layout from links, with the config retargeted.
            cache_dir = tmp
            target = os.path.join(tmp, args.model_type)
            os.makedirs(target)
            for name in os.listdir(model_dir):
                if name != "config.json":
                    os.symlink(os.path.join(model_dir, name), os.path.join(target, name))
            with open(os.path.join(model_dir, "config.json")) as f:
                config = json.load(f)
            if args.base_model:
                config = _retarget(config, os.path.abspath(args.base_model))
            with open(os.path.join(target, "config.json"), "w") as f:
                json.dump(config, f)
        model = RadGraph(model_type=args.model_type, model_cache_dir=cache_dir, batch_size=args.batch_size)
        annotations = []
        for start in range(0, len(texts), args.batch_size):
            chunk = texts[start : start + args.batch_size]
            result = model(chunk)
            for i, text in enumerate(chunk):
                if str(i) not in result:  # radgraph prints the error and drops a report it cannot post-process
                    print(
                        f"radgraph returned no annotation for report {start + i}: scored as no entities",
                        file=sys.stderr,
                    )
                annotations.append(result.get(str(i), {"text": text, "entities": {}}))
    sys.stdout.write("\n" + json.dumps({"annotations": annotations}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
