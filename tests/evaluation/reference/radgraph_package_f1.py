"""F1-RadGraph as the radgraph package computes it (``F1RadGraph(reward_level="all")``); run by the Python of the
reference environment. Reads {"model_dir", "base_model", "hyps", "refs"} as JSON on stdin and prints
{"simple", "partial", "complete"} (per-pair rewards) as the last line of stdout. Imports nothing from deepmedix.
"""

import json
import os
import shutil
import sys
import tempfile


def main():
    job = json.load(sys.stdin)
    from radgraph import F1RadGraph

    with tempfile.TemporaryDirectory() as cache:
        # radgraph reads <cache>/radgraph/; its config names a hub model, pointed here at the local BERT
        target = os.path.join(cache, "radgraph")
        shutil.copytree(job["model_dir"], target)
        with open(os.path.join(target, "config.json")) as f:
            config = json.load(f)
        for part in (config["dataset_reader"]["token_indexers"], config["model"]["embedder"]["token_embedders"]):
            part["bert"]["model_name"] = job["base_model"]
        with open(os.path.join(target, "config.json"), "w") as f:
            json.dump(config, f)
        scorer = F1RadGraph(reward_level="all", model_type="radgraph", model_cache_dir=cache, cuda=-1)
        _, (simple, partial, complete), _, _ = scorer(refs=job["refs"], hyps=job["hyps"])
    print(json.dumps({"simple": simple, "partial": partial, "complete": complete}))


if __name__ == "__main__":
    main()
