"""The paper's three training sets from converted sources: ``sft.jsonl``, ``coldstart_input.jsonl``, ``rl.jsonl``.

Sizes are the paper's (351.5K / 3.9K / 6.6K, times ``--scale``); the proportions are project defaults
(:mod:`deepmedix.data.mix_options`), since the paper gives none. Every set is drawn from the *training* split of the
inputs only, after checking, across all inputs together, that no training patient is a test patient (MIMIC-derived
sources share MIMIC-CXR's subject ids). Cold start and RL draw from reports and checkable samples (closed or multi
answers, or boxes) and never share a sample. A ``manifest.json`` records what went where and why.
"""

from __future__ import annotations

import logging
import os
import random
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from deepmedix.data.convert import (
    FIRST_PATIENTS,
    describe_patient,
    find_split_leaks,
    patient_key,
    split_leak_error,
)
from deepmedix.data.enums import AnswerType, Split, Task
from deepmedix.data.mix_options import PAPER_SIZES, STAGES, MixOptions
from deepmedix.data.schema import Sample, parse_sample, sample_to_json
from deepmedix.data.stats import compute_stats, draw_stats
from deepmedix.errors import DataError
from deepmedix.io import atomic_write_json, atomic_write_jsonl, check_output, sha256_file, staged_folder

log = logging.getLogger(__name__)

STAGE_FILES = {"sft": "sft.jsonl", "coldstart": "coldstart_input.jsonl", "rl": "rl.jsonl"}
REPORT_TASKS = (Task.REPORT_FINDINGS, Task.REPORT_IMPRESSION)
# XrayBench's group sizes as inferred from the paper's own numbers (Table 1's weighted average; the VQA text): the
# only proportions the paper implies. Within a task they weight the sources of cold start and RL by default.
XRAYBENCH_SHARES: dict[tuple[str, str], float] = {
    ("mimic-cxr", "report_findings"): 0.4191,
    ("open-i", "report_findings"): 0.0724,
    ("mimic-cxr", "report_impression"): 0.4238,
    ("open-i", "report_impression"): 0.0847,
    ("ext-vqa", "vqa"): 0.517,
    ("cxr-vqa", "vqa"): 0.483,
}

K = TypeVar("K", bound=Hashable)


def allocate(total: int, available: dict[K, int], weights: dict[K, float]) -> dict[K, int]:
    """``total`` split over keys in proportion to ``weights``, none above what it has available.

    Water-filling: a key that cannot take its share gives all it has and the rest is shared again among the others;
    integers by largest remainder. Keys with no weight or nothing available get 0.
    """
    active = [k for k in available if available[k] > 0 and weights.get(k, 0) > 0]
    remaining = float(min(total, sum(available[k] for k in active)))
    shares: dict[K, float] = {k: 0.0 for k in available}
    while active:
        weight_sum = sum(weights[k] for k in active)
        proposal = {k: remaining * weights[k] / weight_sum for k in active}
        full = [k for k in active if proposal[k] >= available[k]]
        if not full:
            shares.update(proposal)
            break
        for k in full:
            shares[k] = float(available[k])
            remaining -= available[k]
            active.remove(k)
    result = {k: int(v) for k, v in shares.items()}
    target = round(sum(shares.values()))
    by_remainder = sorted(shares, key=lambda k: (-(shares[k] - int(shares[k])), str(k)))
    for k in by_remainder:
        if sum(result.values()) >= target:
            break
        if result[k] < available[k]:
            result[k] += 1
    return result


def eligible_for_checked_stages(sample: Sample) -> bool:
    """Cold start and RL: reports (scored by text overlap), and samples whose answers can be checked exactly."""
    return sample.task in REPORT_TASKS or sample.answer_type != AnswerType.OPEN or bool(sample.boxes)


@dataclass(frozen=True, slots=True)
class Entry:
    """What the mix needs of one sample; the sample itself is read again only if it is drawn (a full sample costs
    ~5 KB of memory, and the inputs can hold over a million)."""

    id: str
    source: str
    task: str
    split: Split
    patient_id: str | None
    eligible: bool
    file: int  # index into the list of files read
    offset: int  # byte offset of its line


def _entries(files: list[Path], first_index: int = 0) -> list[Entry]:
    """Every sample of ``files``, validated line by line (errors name file, line and field)."""
    entries: list[Entry] = []
    for index, file in enumerate(files, start=first_index):
        offset = 0
        with file.open("rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                start, offset = offset, offset + len(line)
                if not line.strip():
                    continue
                s = parse_sample(line, file, lineno)
                entries.append(
                    Entry(
                        s.id,
                        s.source,
                        s.task.value,
                        s.split,
                        s.patient_id,
                        eligible_for_checked_stages(s),
                        index,
                        start,
                    )
                )
    return entries


@dataclass
class StagePlan:
    target: int
    tasks: dict[str, int]
    groups: dict[tuple[str, str], int]
    available: dict[tuple[str, str], int]
    proportions: str


def plan_stage(stage: str, target: int, pools: dict[tuple[str, str], list[Entry]], options: MixOptions) -> StagePlan:
    """How many samples each (source, task) group gives to a stage."""
    available = {g: len(members) for g, members in pools.items()}
    by_task: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
    for (source, task), n in available.items():
        by_task[task][(source, task)] = n
    task_available = {t: sum(groups.values()) for t, groups in by_task.items()}
    shares = options.task_shares(stage)
    if shares is None:
        # As available, each task capped; the cap yields only when no other task has samples left.
        cap = int(options.task_cap * target)
        capped = {t: min(n, cap) for t, n in task_available.items()}
        tasks = allocate(target, capped, {t: float(n) for t, n in task_available.items()})
        rest = target - sum(tasks.values())
        if rest > 0:
            room = {t: task_available[t] - tasks[t] for t in tasks}
            for t, extra in allocate(rest, room, {t: float(n) for t, n in room.items()}).items():
                tasks[t] += extra
        proportions = f"tasks as available, each at most {options.task_cap:g} of the stage while others have samples"
    else:
        tasks = allocate(target, task_available, {t: shares.get(t, 0.0) for t in task_available})
        proportions = "tasks " + ", ".join(f"{t} {s:g}" for t, s in shares.items())
    weighting = getattr(options, f"{stage}_sources")
    groups: dict[tuple[str, str], int] = {}
    for task, members in by_task.items():
        if weighting == "available":
            weights = {g: float(n) for g, n in members.items()}
        elif weighting == "equal":
            weights = dict.fromkeys(members, 1.0)
        else:
            known = [XRAYBENCH_SHARES[g] for g in members if g in XRAYBENCH_SHARES]
            fill = sum(known) / len(known) if known else 1.0  # a source XrayBench lacks gets an average share
            weights = {g: XRAYBENCH_SHARES.get(g, fill) for g in members}
        groups.update(allocate(tasks.get(task, 0), members, weights))
    return StagePlan(target, tasks, groups, available, f"{proportions}; sources within a task {weighting}")


def _draw(pool: list[Entry], n: int, seed: int, stage: str, group: tuple[str, str]) -> list[Entry]:
    """``n`` of a group's samples, the same for the same seed whatever the other groups hold."""
    ordered = sorted(pool, key=lambda s: s.id)
    return random.Random(f"{seed}:{stage}:{group[0]}:{group[1]}").sample(ordered, n)


@dataclass
class MixResult:
    out: Path
    manifest: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"mix: wrote {self.out}"]
        for stage in STAGES:
            size = self.manifest["sizes"][stage]
            counts = [c for c in self.manifest["counts"] if c["stage"] == stage and c["n"]]
            out.append(
                f"  {STAGE_FILES[stage]}: {size['written']} of {size['target']} "
                + "("
                + ", ".join(f"{c['source']}/{c['task']} {c['n']}" for c in counts)
                + ")"
            )
        leak = self.manifest["leak_check"]
        out.append(
            f"  test patients {leak['test_patients']}, none in training"
            if not leak["leaking_patients"]
            else f"  dropped {leak['dropped_training_samples']} training samples of "
            f"{leak['n_leaking_patients']} test patients"
        )
        if leak["test_samples_without_patient"]:
            out.append(f"  {leak['test_samples_without_patient']} test samples carry no patient id (not checkable)")
        return out


def build_mix(inputs: list[Path], out: Path, options: MixOptions) -> MixResult:
    """Write the three sets, the manifest and the figures into ``out``; nothing is written if a check fails."""
    if not inputs:
        raise DataError("prepare mix needs at least one samples file")
    files = [*inputs, *options.test_split]
    check_output(out, folder=True)
    rows = _entries(inputs)
    test_rows = _entries(options.test_split, first_index=len(inputs))
    counts = Counter(e.file for e in rows)
    for index, file in enumerate(inputs):
        if not counts[index]:
            log.warning("%s: no samples (the file is empty)", file)
    if not rows:
        raise DataError(f"no samples in {', '.join(str(f) for f in inputs)}: nothing to draw the sets from")
    seen: dict[str, int] = {}
    for e in rows:
        if e.id in seen:
            raise DataError(f"{files[e.file]}: sample id {e.id!r} is also in {files[seen[e.id]]} (ids must be unique)")
        seen[e.id] = e.file

    training = [e for e in rows if e.split == Split.TRAIN]
    test = [e for e in rows if e.split == Split.TEST] + test_rows
    leaks = find_split_leaks(
        ((e.source, e.patient_id, str(files[e.file])) for e in training),
        ((e.source, e.patient_id, str(files[e.file])) for e in test),
    )
    dropped = 0
    if leaks and options.on_leak == "fail":
        raise split_leak_error(
            leaks, hint=" — fix the splits, or give --on-leak drop to leave these patients' training samples out"
        )
    if leaks:
        kept = [e for e in training if patient_key(e.source, e.patient_id) not in leaks]
        dropped = len(training) - len(kept)
        training = kept

    pools: dict[str, dict[tuple[str, str], list[Entry]]] = {stage: defaultdict(list) for stage in STAGES}
    for e in training:
        pools["sft"][(e.source, e.task)].append(e)
        if e.eligible:
            pools["coldstart"][(e.source, e.task)].append(e)
    plans: dict[str, StagePlan] = {}
    chosen: dict[str, list[Entry]] = {}
    for stage in ("coldstart", "rl", "sft"):
        if stage == "rl":  # RL never repeats a cold-start sample
            taken = {e.id for e in chosen["coldstart"]}
            pools["rl"] = defaultdict(list)
            for group, members in pools["coldstart"].items():
                pools["rl"][group] = [e for e in members if e.id not in taken]
        plan = plan_stage(stage, options.size(stage), pools[stage], options)
        plans[stage] = plan
        picked = [
            e
            for group, n in sorted(plan.groups.items())
            if n
            for e in _draw(pools[stage][group], n, options.seed, stage, group)
        ]
        random.Random(f"{options.seed}:{stage}:order").shuffle(picked)
        chosen[stage] = picked

    with staged_folder(out) as staging:  # all of it or nothing: a failure leaves no set without its manifest
        staged = {stage: staging / STAGE_FILES[stage] for stage in STAGES}
        for stage in STAGES:
            atomic_write_jsonl(staged[stage], _lines(chosen[stage], files, out.resolve(), options.relative_paths))
        manifest = _manifest(inputs, rows, test_rows, training, test, leaks, dropped, plans, chosen, options)
        if options.figure:
            manifest["figures"] = _figures(staged, staging)
        atomic_write_json(staging / "manifest.json", manifest)
    return MixResult(out, manifest, {stage: out / STAGE_FILES[stage] for stage in STAGES})


def _manifest(
    inputs: list[Path],
    rows: list[Entry],
    test_rows: list[Entry],
    training: list[Entry],
    test: list[Entry],
    leaks: dict[tuple[str, str], tuple[set[str], set[str]]],
    dropped: int,
    plans: dict[str, StagePlan],
    chosen: dict[str, list[Entry]],
    options: MixOptions,
) -> dict[str, Any]:
    ids = {stage: {e.id for e in chosen[stage]} for stage in STAGES}
    test_keys = {patient_key(e.source, e.patient_id) for e in test} - {None}
    leaking = sorted(leaks)
    manifest: dict[str, Any] = {
        "command": "deepmedix prepare mix",
        "seed": options.seed,
        "scale": options.scale,
        "inputs": [_file_entry(f, [e for e in rows if e.file == i]) for i, f in enumerate(inputs)],
        "test_split_files": [
            _file_entry(f, [e for e in test_rows if e.file == len(inputs) + i])
            for i, f in enumerate(options.test_split)
        ],
        "files": {stage: STAGE_FILES[stage] for stage in STAGES},
        "sizes": {
            stage: {"paper": PAPER_SIZES[stage], "target": plans[stage].target, "written": len(chosen[stage])}
            for stage in STAGES
        },
        "proportions": {stage: plans[stage].proportions for stage in STAGES},
        "counts": [
            {"stage": stage, "source": g[0], "task": g[1], "n": n, "available": plans[stage].available[g]}
            for stage in STAGES
            for g, n in sorted(plans[stage].groups.items())
        ],
        "overlap": {
            "coldstart_rl": len(ids["coldstart"] & ids["rl"]),
            "sft_coldstart": len(ids["sft"] & ids["coldstart"]),
            "sft_rl": len(ids["sft"] & ids["rl"]),
        },
        "left_out_of_training": dict(Counter(e.split.value for e in rows if e.split != Split.TRAIN)),
        "leak_check": {
            "keyed_by": "patient id; the MIMIC-derived sources (mimic-cxr, ms-cxr, ext-vqa, cxr-vqa) share one key",
            "test_patients": len(test_keys),
            "training_patients": len({patient_key(e.source, e.patient_id) for e in training} - {None}),
            "n_leaking_patients": len(leaking),
            "leaking_patients": [describe_patient(k) for k in leaking[:FIRST_PATIENTS]],
            "on_leak": options.on_leak,
            "dropped_training_samples": dropped,
            "test_samples_without_patient": sum(1 for e in test if patient_key(e.source, e.patient_id) is None),
        },
        "given_by_paper": ["sizes: SFT 351,500, cold start 3,900 (after filtering), RL 6,600", "the task list"],
        "inferred": ["XrayBench group proportions (used to weight sources within a task where 'xraybench')"],
        "project_default": [
            "task shares of every stage",
            "sources within a task",
            "cold start and RL draw reports and checkable samples only, and never share a sample",
            "every set is drawn from the training split; SFT may share samples with cold start and RL",
        ],
    }
    return manifest


def _lines(entries: list[Entry], files: list[Path], out_dir: Path, relative: bool) -> Iterator[str]:
    """The drawn samples, read again from their files, with image paths absolute (or relative to ``out_dir``)."""
    handles: dict[int, Any] = {}
    bases: dict[int, str] = {}
    try:
        for e in entries:
            fh = handles.get(e.file) or handles.setdefault(e.file, files[e.file].open("rb"))
            fh.seek(e.offset)
            sample = parse_sample(fh.readline(), files[e.file], None)
            base = bases.get(e.file) or bases.setdefault(e.file, str(files[e.file].resolve().parent))
            for img in sample.images:  # string paths: Path.resolve on every image costs more than all the rest
                path = img.path if os.path.isabs(img.path) else os.path.normpath(os.path.join(base, img.path))
                img.path = os.path.relpath(path, out_dir) if relative else path
            yield sample_to_json(sample)
    finally:
        for fh in handles.values():
            fh.close()


def _file_entry(file: Path, entries: list[Entry]) -> dict[str, Any]:
    return {
        "file": str(file),
        "sha256": sha256_file(file),
        "samples": len(entries),
        "by_split": dict(Counter(e.split.value for e in entries)),
    }


def _figures(files: dict[str, Path], out: Path) -> dict[str, str]:
    figures = {}
    for stage, path in files.items():
        stats = compute_stats(path)
        if stats.total:
            figure = draw_stats(stats, out / f"stats-{stage}.png", title=f"{path.name} — {stats.total} samples")
            figures[stage] = figure.name
    return figures
