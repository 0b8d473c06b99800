"""``deepmedix eval --compare A B``: is system B better than system A on the samples both scored?

A and B are each a prediction file or a folder ``deepmedix eval`` wrote (its ``per_sample.jsonl``). Lines are paired
by (group, id); the pairs must share their reference. Per group and metric: A's and B's numbers, B − A with its
paired-bootstrap 95 % interval, and the p-value of paired approximate randomisation (RadEval's test; sacreBLEU's
p = (c + 1) / (N + 1)), all recomputed from per-sample statistics (:mod:`deepmedix.evaluation.resampling`), so no
scorer runs again once the statistics exist. Prediction files are scored on the shared lines only, so both systems'
CIDEr uses the same document frequencies; from folders, each side's CIDEr keeps those of its own run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepmedix.errors import DataError, PredictionFileError
from deepmedix.evaluation.evaluate import PER_SAMPLE_FILE, Evaluator
from deepmedix.evaluation.metrics import METRIC_LABELS
from deepmedix.evaluation.options import EvalOptions
from deepmedix.evaluation.predictions import PredictionRow, load_predictions
from deepmedix.evaluation.resampling import (
    GroupSamples,
    MetricKey,
    PairedResult,
    SampleRecord,
    group_rng,
    nest,
    paired_test,
    reference_digest,
)
from deepmedix.io import atomic_write_json, atomic_write_text, read_jsonl

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (group, id)
LEVEL = 0.95


def _read_side(path: Path) -> tuple[list[PredictionRow] | None, list[SampleRecord] | None]:
    """A prediction file's rows, or the records of an evaluation folder."""
    if path.is_dir():
        file = path / PER_SAMPLE_FILE
        if not file.is_file():
            raise FileNotFoundError(f"{path}: no {PER_SAMPLE_FILE} (expected a folder written by deepmedix eval)")
        records: list[Any] = read_jsonl(file)
        for n, r in enumerate(records, 1):
            for name in ("group", "id", "kind"):
                if not isinstance(r.get(name), str):
                    raise PredictionFileError(file, "missing or not a string", line=n, field=name)
        return None, records
    return load_predictions(path), None


def _keys(path: Path, items: Sequence[Any], group_field: str) -> dict[Key, int]:
    out: dict[Key, int] = {}
    for i, item in enumerate(items):
        key = (item[group_field], item["id"])
        if key in out:
            raise DataError(f"{path}: id {key[1]!r} appears twice in group {key[0]!r}; pairing needs unique ids")
        out[key] = i
    return out


def compare(a: str | Path, b: str | Path, out_dir: str | Path, options: EvalOptions | None = None) -> dict[str, Any]:
    """Paired comparison of two systems; writes ``OUT/compare.json`` and ``OUT/compare.md`` and returns the JSON."""
    options = options or EvalOptions()
    paths = (Path(a), Path(b))
    sides = [_read_side(p) for p in paths]
    keyed = [
        _keys(p, rows, "group") if rows is not None else _keys(p, records or [], "group")
        for p, (rows, records) in zip(paths, sides, strict=True)
    ]
    shared = [k for k in keyed[0] if k in keyed[1]]
    counts = [len(k) for k in keyed]
    if not shared:
        raise DataError(
            f"{paths[0]} ({counts[0]} lines) and {paths[1]} ({counts[1]} lines) share no line: lines are paired by "
            "(group, id), and no id of one appears in the same group of the other"
        )

    def digest(side: int, key: Key) -> str:
        rows, records = sides[side]
        if rows is not None:
            return reference_digest(rows[keyed[side][key]]["reference"])
        return str((records or [])[keyed[side][key]].get("reference_sha256"))

    differ = [k for k in shared if digest(0, k) != digest(1, k)]
    if differ:
        group, id_ = differ[0]
        raise DataError(
            f"{paths[0]} and {paths[1]}: {len(differ)} shared line(s) have different references (first: id {id_!r} "
            f"in group {group!r}); a paired test needs the same reference on both sides"
        )
    scoring = dataclasses.replace(options, bootstrap_resamples=0)
    records_by_side: list[dict[Key, SampleRecord]] = []
    with Evaluator(scoring) as ev:
        for side, (rows, records) in enumerate(sides):
            if rows is not None:
                log.info("scoring %s on the %d shared lines", paths[side], len(shared))
                picked = [rows[keyed[side][k]] for k in shared]
                _, scored = ev.evaluate_samples(picked)
                records_by_side.append({(r["group"], r["id"]): r for r in scored})
            else:
                records_by_side.append({k: (records or [])[keyed[side][k]] for k in shared})
        by_group: dict[str, list[Key]] = defaultdict(list)
        for k in shared:
            by_group[k[0]].append(k)
        groups: dict[str, Any] = {}
        for group in sorted(by_group):
            keys = by_group[group]
            sa = GroupSamples.from_records([records_by_side[0][k] for k in keys])
            sb = GroupSamples.from_records([records_by_side[1][k] for k in keys], objects=sa.objects)
            log.info("paired test on %s (%d pairs, %d trials)", group, len(keys), options.ar_trials)
            results = paired_test(
                sa,
                sb,
                options.ar_trials,
                options.bootstrap_resamples,
                group_rng(options.bootstrap_seed, group),
                ev.meteor_of_sums,
                LEVEL,
            )
            groups[group] = {"n": len(keys), "metrics": nest(results), "_flat": results}
    report = {
        "a": str(paths[0]),
        "b": str(paths[1]),
        "n_a": counts[0],
        "n_b": counts[1],
        "n_shared": len(shared),
        "method": {
            "test": "paired approximate randomisation: each pair's statistics swapped with probability 1/2, the "
            "corpus metric recomputed; p = (c + 1) / (N + 1), c = trials with |B − A| at least the observed",
            "trials": options.ar_trials,
            "interval": f"{LEVEL:.0%} paired bootstrap (percentile) of B − A",
            "resamples": options.bootstrap_resamples,
            "seed": options.bootstrap_seed,
            "cider": "per-sample CIDEr-D with each side's document frequencies"
            + (" (both scored on the shared lines: the same)" if all(r is not None for r, _ in sides) else ""),
        },
        "groups": {g: {"n": v["n"], "metrics": v["metrics"]} for g, v in groups.items()},
    }
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "compare.json", report)
    atomic_write_text(out_dir / "compare.md", compare_markdown(report, {g: v["_flat"] for g, v in groups.items()}))
    return report


def _label(key: MetricKey) -> str:
    return METRIC_LABELS.get(key[0], key[0]) if len(key) == 1 else "/".join(key)


def compare_markdown(report: dict[str, Any], flat: dict[str, dict[MetricKey, PairedResult]]) -> str:
    """The comparison as Markdown: one table per group (per-observation and per-object rows are in compare.json)."""
    lines = [
        "# Paired comparison",
        "",
        f"A: `{report['a']}` ({report['n_a']} lines); B: `{report['b']}` ({report['n_b']} lines); "
        f"{report['n_shared']} lines in both, paired by (group, id).",
        "",
        f"Test: {report['method']['test']}; {report['method']['trials']} trials. Interval: "
        f"{report['method']['interval']}, {report['method']['resamples']} resamples; seed {report['method']['seed']}.",
        "",
    ]
    for group, results in flat.items():
        lines += [f"## {group} ({report['groups'][group]['n']} pairs)", ""]
        lines += ["| metric | A | B | B − A | 95 % CI of B − A | p |", "|---|---|---|---|---|---|"]
        for key, r in results.items():
            if key[0].startswith("per_observation") or key[0] == "object_recall":
                continue
            ci = f"[{r['ci'][0]:+.4f}, {r['ci'][1]:+.4f}]" if r["ci"] else "—"
            mark = " *" if "approximate" in r else ""
            lines.append(
                f"| {_label(key)}{mark} | {r['a']:.4f} | {r['b']:.4f} | {r['difference']:+.4f} | {ci} | {r['p']:.4f} |"
            )
        lines.append("")
    lines += ["\\* approximate interval: CIDEr-D with fixed document frequencies; top-10 objects fixed from A.", ""]
    return "\n".join(lines)
