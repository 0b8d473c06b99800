"""An arena run: draw pairs (active or uniform), draw a sample both models answered, ask the judge in both orders,
combine, store, fit, report.

Both orders: each comparison is asked with model_a as Report A and again with model_b as Report A. The two verdicts,
mapped back to models, combine into one outcome: when they agree, that outcome; when they disagree (including one
win and one tie), a tie — a verdict that flips with the order says the judge cannot tell them apart. When either
order stays unparseable the comparison is recorded as such and left out of the fit (and counted in the report).

Resuming: draws are made with a seeded generator and depend only on earlier outcomes, which are cached, so rerunning
the same command replays the same draws from the store at no cost and carries on where a killed run stopped; a
larger ``--budget`` extends the same sequence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from deepmedix.arena.bt import WINNER_VALUES, ArenaFit, Battle, JudgmentRow, fit_arena
from deepmedix.arena.judges import PROMPT_VERSION, Judge, JudgeOutcome, JudgeTask, image_for
from deepmedix.arena.options import ArenaOptions, Sampling, Scale
from deepmedix.arena.outcomes import SHOWN_ORDERS, ShownOrder, Unresolved, Verdict, Winner, winner_of
from deepmedix.arena.report import JudgeUsage, PositionBias, write_outputs
from deepmedix.arena.sampling import PairStats, pair_probabilities
from deepmedix.arena.store import JudgmentKey, JudgmentStore
from deepmedix.endpoints import content_key
from deepmedix.errors import DataError, InputFileError, OptionError
from deepmedix.io import atomic_write_jsonl, iter_jsonl_objects

log = logging.getLogger(__name__)


@dataclass
class Entry:
    sample_id: str
    task: str
    prediction: str
    reference: str
    image: str | None


def model_names(paths: Sequence[Path], names: Sequence[str] | None = None) -> list[str]:
    if names:
        if len(names) != len(paths):
            raise OptionError(f"--names gives {len(names)} names for {len(paths)} prediction files")
        chosen = list(names)
    else:
        chosen = [Path(p).name.removesuffix(".jsonl").removesuffix(".predictions") for p in paths]
    dupes = sorted({n for n in chosen if chosen.count(n) > 1})
    if dupes:
        raise OptionError(f"model names must differ, {dupes} repeats: name the models with --names")
    return chosen


def load_predictions(path: Path) -> dict[str, Entry]:
    """Report predictions of one model by sample id; lines of other tasks are skipped. An empty prediction is kept:
    a model that wrote nothing competes (and loses), it is not excused from the comparison."""
    path = Path(path)
    entries: dict[str, Entry] = {}
    lines: dict[str, int] = {}
    # A last line cut short by a kill of `deepmedix predict` is left out, as predict itself would on resuming.
    for line, row in iter_jsonl_objects(path, tolerate_torn_tail=True):
        task = row.get("task")
        if not isinstance(task, str):
            raise InputFileError(path, "must be a string", line=line, field="task")
        if not task.startswith("report"):
            continue
        sid = row.get("id")
        if not isinstance(sid, str | int) or isinstance(sid, bool) or str(sid) == "":
            raise InputFileError(path, "must be a non-empty string", line=line, field="id")
        sid = str(sid)
        for key in ("prediction", "reference"):
            if row.get(key) is not None and not isinstance(row[key], str):
                raise InputFileError(path, f"must be a string (id {sid})", line=line, field=key)
        if not isinstance(row.get("reference"), str) or not row["reference"].strip():
            raise InputFileError(path, f"missing or empty (id {sid})", line=line, field="reference")
        if sid in entries:
            raise InputFileError(path, f"{sid!r} repeats line {lines[sid]}", line=line, field="id")
        if "prediction" not in row:
            raise InputFileError(path, f"missing (id {sid})", line=line, field="prediction")
        prediction = (row.get("prediction") or "").strip()
        entries[sid] = Entry(sid, task, prediction, row["reference"], image_for(row.get("image"), path))
        lines[sid] = line
    if not entries:
        raise DataError(f"{path}: no report predictions (lines with a 'task' starting with 'report')")
    return entries


@dataclass
class Draw:
    step: int
    pair: int
    sample_id: str
    prob: float
    outcomes: dict[ShownOrder, JudgeOutcome] = field(default_factory=dict)
    winner: Winner | Unresolved = Unresolved.ERROR


def combine(outcomes: dict[ShownOrder, JudgeOutcome]) -> Winner | Unresolved:
    """The comparison's outcome from its two orders: their winner when they agree, else a tie; unresolved when
    either order has no verdict (a failed call counts before an unreadable reply)."""
    verdicts = [outcomes[o].verdict if o in outcomes else Unresolved.ERROR for o in SHOWN_ORDERS]
    for unresolved in (Unresolved.ERROR, Unresolved.UNPARSEABLE):
        if unresolved in verdicts:
            return unresolved
    first, second = (winner_of(Verdict(v), o) for v, o in zip(verdicts, SHOWN_ORDERS, strict=True))
    return first if first == second else Winner.TIE


def position_bias(draws: Sequence[Draw]) -> PositionBias:
    """How often the report shown first wins, and how often the two orders disagree."""
    counts = dict.fromkeys((*Verdict, Unresolved.UNPARSEABLE), 0)
    both, inconsistent = 0, 0
    for d in draws:
        for o in d.outcomes.values():
            if o.verdict in counts:
                counts[o.verdict] += 1
        if isinstance(d.winner, Winner):
            both += 1
            wa = winner_of(Verdict(d.outcomes["ab"].verdict), "ab")
            wb = winner_of(Verdict(d.outcomes["ba"].verdict), "ba")
            inconsistent += wa != wb
    parsed = counts[Verdict.A] + counts[Verdict.B] + counts[Verdict.TIE]
    decisive = counts[Verdict.A] + counts[Verdict.B]
    return {
        "verdicts": parsed,
        "position_a_wins": counts[Verdict.A] / parsed if parsed else None,
        "position_b_wins": counts[Verdict.B] / parsed if parsed else None,
        "ties": counts[Verdict.TIE] / parsed if parsed else None,
        "position_a_share_of_decisive": counts[Verdict.A] / decisive if decisive else None,
        "unparseable_verdicts": counts[Unresolved.UNPARSEABLE],
        "comparisons_both_orders": both,
        "order_inconsistent": inconsistent / both if both else None,
    }


@dataclass
class ArenaRun:
    models: list[str]
    draws: list[Draw]
    judge: str
    usage: JudgeUsage
    bias: PositionBias
    out_dir: Path
    fit: ArenaFit | None = None  # None when no comparison could be fitted
    outcome_counts: dict[Winner | Unresolved, int] = field(default_factory=dict)


def run_arena(
    prediction_files: Sequence[str | Path],
    judge: Judge,
    out_dir: str | Path,
    budget: int,
    sampling: Sampling = ArenaOptions.sampling,
    seed: int = ArenaOptions.seed,
    names: Sequence[str] | None = None,
    batch_size: int = ArenaOptions.batch_size,
    bootstrap_rounds: int = ArenaOptions.bootstrap_rounds,
    scale: Scale = ArenaOptions.scale,
    vision: bool = ArenaOptions.vision,
    progress: bool = True,
) -> ArenaRun:
    """Run (or resume) an arena over ``budget`` comparisons and write everything under ``out_dir``."""
    # Checks every setting before anything is read or asked.
    ArenaOptions(
        budget=budget,
        sampling=sampling,
        seed=seed,
        batch_size=batch_size,
        bootstrap_rounds=bootstrap_rounds,
        scale=scale,
        vision=vision,
    )
    paths = [Path(p) for p in prediction_files]
    if len(paths) < 2:
        raise OptionError("the arena needs prediction files of at least two models")
    models = model_names(paths, names)
    tables = {m: load_predictions(p) for m, p in zip(models, paths, strict=True)}
    models = sorted(models)  # canonical order: a pair is (model_a, model_b) with model_a < model_b
    pairs = list(combinations(range(len(models)), 2))
    pools = [sorted(set(tables[models[i]]) & set(tables[models[j]])) for i, j in pairs]
    for (i, j), pool in zip(pairs, pools, strict=True):
        if not pool:
            log.warning("%s and %s share no answered report sample: that pair is never compared", models[i], models[j])
    if not any(pools):
        raise DataError("no report sample was answered by two of the models: nothing to compare")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = JudgmentStore(out / "judgments.sqlite")
    run_key = content_key(models, judge.name, PROMPT_VERSION, sampling, seed, batch_size)[:16]
    rng = np.random.default_rng(seed)
    stats = [PairStats() for _ in pairs]
    draws: list[Draw] = []
    usage: JudgeUsage = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cached": 0, "asked": 0}
    bar = tqdm(total=budget, desc=f"arena ({judge.name})", unit="cmp", disable=not progress)
    try:
        while len(draws) < budget:
            batch: list[Draw] = []
            while len(batch) < batch_size and len(draws) + len(batch) < budget:
                available = np.array([len(p) > 0 for p in pools])
                if not available.any():
                    break
                probs = pair_probabilities(stats, sampling, available)
                k = int(rng.choice(len(pairs), p=probs))
                sample_id = pools[k].pop(int(rng.integers(len(pools[k]))))
                batch.append(Draw(len(draws) + len(batch), k, sample_id, float(probs[k])))
            if not batch:
                log.warning(
                    "every pair has been compared on every shared sample: stopping at %d comparisons", len(draws)
                )
                break
            _judge_batch(batch, pairs, models, tables, judge, store, vision, usage)
            for d in batch:
                d.winner = combine(d.outcomes)
                if isinstance(d.winner, Winner):
                    stats[d.pair].add(WINNER_VALUES[d.winner])
                i, j = pairs[d.pair]
                store.record_draw(run_key, d.step, models[i], models[j], d.sample_id, d.prob, d.winner)
            draws.extend(batch)
            bar.update(len(batch))
            bar.set_postfix(calls=usage["calls"], cached=usage["cached"])
            atomic_write_jsonl(out / "judgments.jsonl", _judgment_rows(draws, pairs, models))
    finally:
        bar.close()
        store.close()

    counts = {w: sum(d.winner == w for d in draws) for w in (*Winner, *Unresolved)}
    result = ArenaRun(models, draws, judge.name, usage, position_bias(draws), out, outcome_counts=counts)
    battles = [
        Battle(models[pairs[d.pair][0]], models[pairs[d.pair][1]], d.winner, d.prob)
        for d in draws
        if isinstance(d.winner, Winner)
    ]
    if counts[Unresolved.ERROR]:
        log.warning(
            "%d comparisons failed at the endpoint: rerun the same command to ask them again", counts[Unresolved.ERROR]
        )
    if counts[Unresolved.UNPARSEABLE]:
        log.warning(
            "%d comparisons had an unparseable verdict and are left out of the fit", counts[Unresolved.UNPARSEABLE]
        )
    if battles:
        result.fit = fit_arena(battles, models, bootstrap_rounds=bootstrap_rounds, scale=scale, seed=seed)
        write_outputs(
            out,
            result.fit,
            {
                "judge": judge.name,
                "prompt_version": PROMPT_VERSION,
                "sampling": sampling,
                "seed": seed,
                "budget": budget,
                "comparisons": len(draws),
                "outcomes": counts,
                "position_bias": result.bias,
                "usage": usage,
            },
        )
    return result


def _judge_batch(
    batch: list[Draw],
    pairs: list[tuple[int, int]],
    models: list[str],
    tables: dict[str, dict[str, Entry]],
    judge: Judge,
    store: JudgmentStore,
    vision: bool,
    usage: JudgeUsage,
) -> None:
    asks: list[tuple[Draw, ShownOrder, JudgmentKey, JudgeTask]] = []
    for d in batch:
        i, j = pairs[d.pair]
        ea, eb = tables[models[i]][d.sample_id], tables[models[j]][d.sample_id]
        image = ea.image if vision else None
        digest = content_key(ea.reference, ea.prediction, eb.prediction, image)
        for order in SHOWN_ORDERS:
            key = JudgmentKey(judge.name, PROMPT_VERSION, d.sample_id, models[i], models[j], order, digest)
            cached = store.get(key)
            if cached is not None:
                d.outcomes[order] = cached
                usage["cached"] += 1
                continue
            first, second = (ea, eb) if order == "ab" else (eb, ea)
            task = JudgeTask(d.sample_id, ea.reference, first.prediction, second.prediction, ea.task, ea.image)
            asks.append((d, order, key, task))
    if not asks:
        return
    for k, outcome in judge.judge_many([a[3] for a in asks]):
        d, order, key, _ = asks[k]
        d.outcomes[order] = outcome
        usage["asked"] += 1
        usage["calls"] += outcome.calls
        usage["prompt_tokens"] += outcome.prompt_tokens
        usage["completion_tokens"] += outcome.completion_tokens
        if outcome.verdict == Unresolved.ERROR:
            continue
        name = None  # an unparseable reply has no winner
        if outcome.verdict != Unresolved.UNPARSEABLE:
            winner = winner_of(Verdict(outcome.verdict), order)
            name = {Winner.A: key.model_a, Winner.B: key.model_b, Winner.TIE: "tie"}[winner]
        store.put(key, outcome, name)  # stored the moment it is known: a kill loses only calls in flight


def _judgment_rows(draws: Sequence[Draw], pairs: list[tuple[int, int]], models: list[str]) -> list[JudgmentRow]:
    rows: list[JudgmentRow] = []
    for d in draws:
        i, j = pairs[d.pair]
        rows.append(
            {
                "model_a": models[i],
                "model_b": models[j],
                "winner": d.winner,
                "prob": d.prob,
                "sample_id": d.sample_id,
                "step": d.step,
                "verdicts": {o: d.outcomes[o].verdict for o in SHOWN_ORDERS if o in d.outcomes},
            }
        )
    return rows
