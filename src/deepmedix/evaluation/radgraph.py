"""F1-RadGraph: the radgraph package's reward computed over RadGraph annotations.

The RadGraph model (radgraph 0.1.x, an allennlp/DyGIE++ model) needs transformers < 5, so it cannot run inside this
environment. It runs in a separate virtualenv instead: ``--radgraph-python /path/to/venv/bin/python`` starts
``radgraph_worker.py`` (which imports only radgraph and the standard library) as a subprocess, sends it the report
texts as JSON on stdin and reads the annotations back as JSON. The reward itself is computed here, the way the
radgraph package defines it (``radgraph/rewards.py``), on those annotations:

* ``simple``   — entities match on (tokens, label);
* ``partial``  — entities match on (tokens, label, has-a-relation) [entities without relations on (tokens, label)];
* ``complete`` — relation-less entities on (tokens, label); each relation of an entity as (tokens, label, relation
  type, target tokens), lower-cased.

Each is the F1 of the two sets; a report pair where either side is empty, or either side has no entity, scores 0;
F1-RadGraph is the mean over pairs. The headline ``f1_radgraph`` is the ``partial`` level (the level used for
RadGraph F1 in report-generation benchmarks); all three are reported.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from deepmedix.endpoints import content_key
from deepmedix.evaluation.memo import folder_fingerprint, memoized

if TYPE_CHECKING:
    from deepmedix.endpoints import ResponseCache

REWARD_LEVELS = ("simple", "partial", "complete")
WORKER = Path(__file__).with_name("radgraph_worker.py")

Annotation = Mapping[str, Any]  # {"text": ..., "entities": {id: {"tokens", "label", "relations": [[type, id]]}}}
Annotate = Callable[[Sequence[str]], Sequence[Annotation]]


class RadGraphScores(TypedDict):
    """F1-RadGraph (the partial level) and each level's mean over pairs (None without pairs), and per pair."""

    f1_radgraph: float | None
    f1_radgraph_simple: float | None
    f1_radgraph_partial: float | None
    f1_radgraph_complete: float | None
    per_sample: list[dict[str, float]]


def _f1(hyp: set[tuple[Any, ...]], ref: set[tuple[Any, ...]]) -> float:
    precision = sum(1 for x in hyp if x in ref) / len(hyp) if hyp else 0.0
    recall = sum(1 for x in ref if x in hyp) / len(ref) if ref else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _candidates(annotation: Annotation, level: str) -> set[tuple[Any, ...]]:
    entities = annotation.get("entities") or {}
    out: set[tuple[Any, ...]] = set()
    for ent in entities.values():
        tokens, label, relations = ent["tokens"], ent["label"], ent.get("relations") or []
        if level == "simple":
            out.add((tokens, label))
        elif level == "partial":
            out.add((tokens, label, True) if relations else (tokens, label))
        elif not relations:  # complete
            out.add((tokens, label))
        else:
            for rel_type, target in relations:
                out.add((tokens.lower(), label, rel_type, entities[str(target)]["tokens"].lower()))
    return out


def pair_reward(hypothesis: Annotation, reference: Annotation) -> dict[str, float]:
    """The three reward levels for one (hypothesis, reference) annotation pair."""
    if not (hypothesis.get("entities") or {}) or not (reference.get("entities") or {}):
        return dict.fromkeys(REWARD_LEVELS, 0.0)
    return {lvl: _f1(_candidates(hypothesis, lvl), _candidates(reference, lvl)) for lvl in REWARD_LEVELS}


def f1_radgraph_from_annotations(
    predictions: Sequence[str], references: Sequence[str], annotate: Annotate
) -> RadGraphScores:
    """F1-RadGraph given an ``annotate(texts) -> list[annotation]`` function (one call for all non-empty texts)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    keep = [i for i, (h, r) in enumerate(zip(predictions, references, strict=True)) if len(h) and len(r)]
    texts = [predictions[i] for i in keep] + [references[i] for i in keep]
    annotations = annotate(texts) if texts else []
    if len(annotations) != len(texts):
        raise RuntimeError(f"RadGraph returned {len(annotations)} annotations for {len(texts)} reports")
    per = [dict.fromkeys(REWARD_LEVELS, 0.0) for _ in predictions]
    for j, i in enumerate(keep):
        per[i] = pair_reward(annotations[j], annotations[j + len(keep)])
    n = max(len(per), 1)
    means = {lvl: sum(p[lvl] for p in per) / n for lvl in REWARD_LEVELS} if per else dict.fromkeys(REWARD_LEVELS)
    return {
        "f1_radgraph": means["partial"],
        "f1_radgraph_simple": means["simple"],
        "f1_radgraph_partial": means["partial"],
        "f1_radgraph_complete": means["complete"],
        "per_sample": per,
    }


class RadGraphSubprocess:
    """Annotates reports with the RadGraph model in another Python (a virtualenv with radgraph + transformers<5)."""

    def __init__(
        self,
        python: str | Path,
        model_dir: str | Path,
        model_type: str = "radgraph",
        base_model: str | Path | None = None,
        timeout_s: float = 3600,
        batch_size: int = 64,
    ) -> None:
        self.python = str(python)
        self.model_dir = Path(model_dir)
        self.model_type = model_type
        self.base_model = str(base_model) if base_model else None
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self._fingerprint: str | None = None
        if not Path(self.python).exists():
            raise FileNotFoundError(f"{self.python}: --radgraph-python interpreter not found")
        if not self.model_dir.is_dir():
            raise FileNotFoundError(f"{self.model_dir}: RadGraph model folder not found")

    def __call__(self, texts: Sequence[str]) -> list[Annotation]:
        cmd = [
            self.python,
            str(WORKER),
            "--model-dir",
            str(self.model_dir),
            "--model-type",
            self.model_type,
            "--batch-size",
            str(self.batch_size),
        ]
        if self.base_model:
            cmd += ["--base-model", self.base_model]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        env.pop("PYTHONPATH", None)  # the worker must see only its own environment's packages
        proc = subprocess.run(
            cmd,
            input=json.dumps({"texts": list(texts)}).encode(),
            capture_output=True,
            timeout=self.timeout_s,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(
                f"RadGraph worker ({self.python}) failed with code {proc.returncode}: " + " | ".join(tail)
            )
        try:
            payload = json.loads(proc.stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError) as e:
            raise RuntimeError(f"RadGraph worker ({self.python}) printed no JSON result") from e
        return payload["annotations"]

    @property
    def fingerprint(self) -> str:
        """What decides the annotations: the model folder's files, the model type and the base transformer's files."""
        if self._fingerprint is None:
            base = folder_fingerprint(self.base_model) if self.base_model and Path(self.base_model).is_dir() else None
            self._fingerprint = content_key(folder_fingerprint(self.model_dir), self.model_type, base)
        return self._fingerprint


def f1_radgraph(
    predictions: Sequence[str],
    references: Sequence[str],
    python: str | Path,
    model_dir: str | Path,
    cache: ResponseCache | None = None,
    model_type: str = "radgraph",
    base_model: str | Path | None = None,
) -> RadGraphScores:
    """F1-RadGraph with the model in another Python; with ``cache`` (a label store) each text is annotated once."""
    annotator = RadGraphSubprocess(python, model_dir, model_type=model_type, base_model=base_model)

    def annotate(texts: Sequence[str]) -> list[Annotation]:
        return memoized(annotator, texts, cache, ("radgraph", annotator.fingerprint)) if cache else annotator(texts)

    return f1_radgraph_from_annotations(predictions, references, annotate)
