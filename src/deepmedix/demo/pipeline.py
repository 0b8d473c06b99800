"""The main job: prepare → stage 1 → stage 2 → stage 3 → predictions → XrayBench → Report Arena → review set →
report. Every stage writes a ``.done`` marker beside its outputs and is skipped on a rerun; ``fresh`` redoes all.

On the embedded default (the small random Qwen2.5-VL, the bundled CC0 sample and phantom images) this runs in
minutes on a laptop CPU, and the held-out phantom samples show what each stage taught the model. With ``recipes`` pointing at ``recipes/qwen2.5-vl-7b`` and ``data`` at real samples, the
same code drives the real recipes on GPUs.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deepmedix.annotation.create import create_review, parse_annotators
from deepmedix.arena.judges import LLMJudge, RulesLabelerJudge
from deepmedix.arena.run import run_arena
from deepmedix.data.bundled import prepare_bundled
from deepmedix.data.enums import AnswerType, Task
from deepmedix.data.phantom import SAMPLE_KINDS, make_phantom_samples
from deepmedix.data.schema import (
    Sample,
    check_sample_images,
    iter_samples,
    load_numbered_samples,
    load_samples,
    sample_to_json,
)
from deepmedix.data.stats import compute_stats, draw_stats, print_stats
from deepmedix.demo.config import DemoConfig
from deepmedix.demo.report import write_demo_report
from deepmedix.endpoints import ChatEndpoint, EndpointConfig
from deepmedix.errors import DataError
from deepmedix.evaluation.evaluate import Evaluator
from deepmedix.evaluation.options import EvalOptions
from deepmedix.evaluation.predictions import load_predictions
from deepmedix.evaluation.report import write_reports
from deepmedix.evaluation.stage_comparison import compare_stages
from deepmedix.inference.predict import benchmark_name, predict_file
from deepmedix.io import atomic_write_json, atomic_write_jsonl, atomic_write_text, check_output, read_json, read_yaml
from deepmedix.protocol import LARGEST_NEW_TOKENS, load_prompt_template
from deepmedix.training.coldstart.synthesize import synthesize
from deepmedix.training.coldstart.teachers import EndpointTeacher, TemplateTeacher

log = logging.getLogger(__name__)

# The models the demo compares: the base model (asked to think, like the paper's "Qwen2.5-VL-7B (think)"), and the
# model after each stage (stage 1 = DeepMedix, answers plainly; stage 3 = DeepMedix-R1).
MODELS = ("base", "stage1", "stage2", "stage3")
# Phantom radiographs generated for the demo (all four kinds): the training set and a held-out set drawn from other
# seeds, never trained on, on which the stages are compared. The bundled sample's own phantoms use seeds 0-2.
PHANTOM_TRAIN_SEED = 100
PHANTOM_HELDOUT_SEED = 200
HELDOUT_SOURCE = "phantom"


@dataclass
class StageRecord:
    name: str
    seconds: float
    skipped: bool
    outputs: dict[str, str] = field(default_factory=dict)


def _packaged_recipes(name: str = "small") -> Path:
    """recipes/<name> of the source tree, or the copy a wheel installs as deepmedix/recipes (see setup.py)."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parents[1] / "recipes" / name, package / "recipes" / name):
        if (candidate / "sft.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"recipes/{name} not found: pass --recipes DIR (a folder with sft.yaml, coldstart.yaml, grpo.yaml)"
    )


class Demo:
    def __init__(self, config: DemoConfig, console: Any = None):
        from rich.console import Console

        self.cfg = config
        self.out = Path(config.out)
        self.console = console or Console(stderr=True)
        self.records: list[StageRecord] = []
        self.recipes = Path(config.recipes) if config.recipes else _packaged_recipes()

    # --- bookkeeping --------------------------------------------------------------------------------------------

    def _marker(self, name: str) -> Path:
        return self.out / ".done" / f"{name}.json"

    def _done(self, name: str) -> bool:
        """The stage's marker says it finished and every output it listed still exists."""
        marker = self._marker(name)
        if not marker.is_file():
            return False
        return all(Path(p).exists() for p in read_json(marker)["outputs"].values())

    def stage(self, name: str, title: str, fn: Callable[[], dict[str, str]]) -> dict[str, str]:
        """Run ``fn`` unless its marker says it finished and every output it listed still exists."""
        marker = self._marker(name)
        if self._done(name):
            done = read_json(marker)
            self.console.print(f"[dim]✓ {title}: done earlier, skipped[/dim]")
            self.records.append(StageRecord(name, done["seconds"], True, done["outputs"]))
            return done["outputs"]
        self.console.rule(f"[bold]{title}")
        start = time.perf_counter()
        outputs = fn()
        seconds = time.perf_counter() - start
        atomic_write_json(marker, {"outputs": outputs, "seconds": seconds, "finished": time.time()})
        self.records.append(StageRecord(name, seconds, False, outputs))
        self.console.print(f"[green]✓ {title}[/green] ({seconds:.1f} s)")
        return outputs

    # --- stages -------------------------------------------------------------------------------------------------

    def prepare(self) -> dict[str, str]:
        data_dir = self.out / "data"
        all_path = data_dir / "samples.jsonl"
        if self.cfg.data:
            all_path = Path(self.cfg.data)
        else:
            self._bundled_with_phantoms(all_path)
        samples = load_samples(all_path)
        rng = random.Random(self.cfg.seed)
        train, _ = _check_splits(samples, self.cfg.data)
        groups: dict[str, list[Sample]] = defaultdict(list)
        for s in samples:
            if s.split == "test":
                groups[_benchmark(s)].append(s)
        test: list[Sample] = []
        for name in sorted(groups):
            members = groups[name]
            rng.shuffle(members)
            # the held-out phantoms are all kept: they are the samples on which the stages are compared
            keep_all = self.cfg.per_benchmark <= 0 or members[0].source == HELDOUT_SOURCE
            test.extend(members if keep_all else members[: self.cfg.per_benchmark])
        # Stages 2 and 3 lean on samples whose answers can be checked (closed, multi, boxed): a small model learns
        # the protocol from them, and the reward has a signal to follow.
        checkable = [s for s in train if s.answer_type != AnswerType.OPEN or s.boxes]
        cold = _spread(checkable, self.cfg.coldstart_samples, rng)
        grpo = _spread(checkable, self.cfg.grpo_samples, rng)
        paths = {
            "train": data_dir / "train.jsonl",
            "test": data_dir / "test.jsonl",
            "coldstart_input": data_dir / "coldstart_input.jsonl",
            "grpo": data_dir / "grpo.jsonl",
        }
        for key, rows in (("train", train), ("test", test), ("coldstart_input", cold), ("grpo", grpo)):
            atomic_write_jsonl(paths[key], (sample_to_json(s) for s in rows))

        stats = compute_stats(all_path)
        print_stats(stats, title=str(all_path))
        draw_stats(stats, data_dir / "stats.png")
        return {k: str(v) for k, v in paths.items()} | {"stats_figure": str(data_dir / "stats.png")}

    def _bundled_with_phantoms(self, all_path: Path) -> None:
        """The bundled real images (VQA-RAD, NIH) and the demo's phantoms: a training set (four questions per image)
        and a held-out set from other seeds, one question per image and the four kinds in equal shares, so that
        held-out samples are independent (the bootstrap resamples samples). Image paths are relative to
        ``all_path``'s folder."""
        data_dir = all_path.parent
        prepare_bundled(all_path, phantom=False)
        lines = [sample_to_json(s) for s in iter_samples(all_path, resolve_images=False)]
        sets = [("phantom-train", self.cfg.phantom_train, PHANTOM_TRAIN_SEED, "train", SAMPLE_KINDS)]
        per_kind = -(-self.cfg.phantom_heldout // len(SAMPLE_KINDS))
        sets += [
            (f"phantom-heldout-{kind}", per_kind, PHANTOM_HELDOUT_SEED + i, "test", (kind,))
            for i, kind in enumerate(SAMPLE_KINDS)
        ]
        for folder, n, seed, split, kinds in sets:
            for s in make_phantom_samples(data_dir / folder, n, seed=seed, split=split, kinds=kinds):
                for image in s.images:
                    image.path = Path(image.path).relative_to(data_dir.resolve()).as_posix()
                lines.append(sample_to_json(s))
        atomic_write_jsonl(all_path, lines)

    def train(self, data: dict[str, str], cold: str, base: str, beside: Any = None) -> dict[str, str]:
        """The three stages through the training pipeline (each stage skips itself when complete). ``beside``: the
        base model's predictions running in a worker process; once they finish, training takes their core too."""
        from deepmedix.training.pipeline import run_pipeline  # imports transformers/TRL: only this path pays for it

        overrides: dict[str, dict[str, Any]] = {"sft": {"model": base}, "coldstart": {"data": cold}}
        if self.cfg.prompt_template is not None:  # the reasoning stages' prompt; stage 1 asks plainly
            for stage in ("coldstart", "grpo"):
                overrides.setdefault(stage, {})["prompt_template"] = str(self.cfg.prompt_template)
        for stage, steps in (self.cfg.max_steps or {}).items():
            overrides.setdefault(stage, {})["max_steps"] = steps
        finals = run_pipeline(
            self.recipes,
            data=data["train"],
            grpo_data=data["grpo"],
            output_root=self.out / "models",
            overrides=overrides,
            callbacks=[_threads_when_done(beside, self.cfg.threads + 1)] if beside and self.cfg.threads else None,
        )
        return {stage: str(path) for stage, path in finals.items()} | {
            "rewards": str(self.out / "models" / "grpo" / "rewards.jsonl")
        }

    def synthesize(self, data: str, base: str) -> str:
        from deepmedix.training.stages import is_complete  # imports transformers/TRL: only this path pays for it

        out = self.out / "data" / "coldstart.jsonl"
        if is_complete(self.out / "models" / "coldstart"):  # stage 2 was trained already (e.g. with accelerate)
            self.console.print("stage 2 is already trained: no cold-start data is asked of the teacher")
            return str(out)
        from deepmedix.models.loading import model_frame  # imports transformers/TRL: only this path pays for it

        if self.cfg.teacher == "offline":
            teacher: Any = TemplateTeacher()
        else:
            teacher = EndpointTeacher(
                ChatEndpoint(EndpointConfig(base_url=self.cfg.teacher, model=self.cfg.teacher_model, max_tokens=2048))
            )
        summary = synthesize(data, out, teacher, frame=model_frame(base))  # every stage shares the base's frame
        self.console.print(f"cold start: kept {summary.kept} of {summary.total}; dropped {dict(summary.dropped)}")
        if summary.kept == 0:
            raise DataError(f"the cold-start filter kept no sample of {data}: see {out.with_suffix('.dropped.jsonl')}")
        return str(out)

    def predict(self, name: str, model: str, test: str, reasoning: bool) -> str:
        out = self.out / "predictions" / f"{name}.jsonl"
        _predict_job(str(out), model, test, self._prediction_options(reasoning))
        return str(out)

    def _prediction_options(self, reasoning: bool) -> dict[str, Any]:
        """predict_file's options for one model (plain, picklable values: worker processes receive them)."""
        return {
            "backend": self.cfg.backend,
            "batch_size": self.cfg.batch_size,
            "max_new_tokens": self.cfg.max_new_tokens or _prediction_budget(self.recipes),
            "reasoning": reasoning,
            "prompt_template": self.reasoning_template() if reasoning else None,
        }

    def reasoning_template(self) -> Path | str | None:
        """The reasoning prompt every reasoning model is asked with, the base model too: --prompt-template, else the
        cold-start recipe's (the trained models keep it), else None (the built-in one)."""
        if self.cfg.prompt_template is not None:
            return self.cfg.prompt_template
        from deepmedix.training.config import read_recipe  # imports transformers/TRL: only this path pays for it

        template = read_recipe(self.recipes / "coldstart.yaml").get("prompt_template")
        return str(template) if template else None

    def _prediction_workers(self) -> int:
        if self.cfg.prediction_workers is not None:
            return self.cfg.prediction_workers
        return 1 if self.cfg.backend != "transformers" or _has_gpu() else min(2, os.cpu_count() or 1)

    def predict_base_while_training(self, base: str, test: str) -> Any:
        """On a CPU with a core to spare (training runs one torch thread), the base model's predictions — the
        longest, since a random model never stops early — start before training, in a worker process; returns the
        running job (None when there is nothing to overlap)."""
        if self._prediction_workers() <= 1 or self._done("predict") or self._done("train"):
            return None
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_one_torch_thread)
        out = str(self.out / "predictions" / "base.jsonl")
        job = pool.submit(_predict_job, out, base, test, self._prediction_options(True))
        pool.shutdown(wait=False)  # the job runs on; waited for before the predict stage
        return job

    def predict_all(self, models: dict[str, tuple[str, bool]], test: str) -> dict[str, str]:
        """Every model's predictions on the test samples. On a CPU, the models are shared among worker processes of
        one torch thread each (independent jobs keep every core busy without the stalls of threads contending)."""
        workers = self._prediction_workers()
        if workers <= 1:
            return {name: self.predict(name, path, test, reasoning) for name, (path, reasoning) in models.items()}
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        outs = {name: str(self.out / "predictions" / f"{name}.jsonl") for name in models}
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_torch_thread) as pool:
            futures = [
                pool.submit(_predict_job, outs[name], path, test, self._prediction_options(reasoning))
                for name, (path, reasoning) in models.items()
            ]
            for future in futures:
                future.result()  # re-raises a worker's error here
        return outs

    def evaluate(self, predictions: dict[str, str]) -> dict[str, str]:
        outputs = {"stages": self.stage_comparison(predictions)}
        options = EvalOptions(
            chexbert=self.cfg.chexbert, meteor=self.cfg.meteor, cache_dir=self.out / "eval" / ".cache"
        )
        with Evaluator(options) as ev:  # one METEOR process for every model
            for name, path in predictions.items():
                metrics = ev.evaluate(load_predictions(path))
                out_dir = self.out / "eval" / name
                atomic_write_json(out_dir / "metrics.json", metrics)
                write_reports(metrics, out_dir)
                outputs[name] = str(out_dir / "metrics.json")
        return outputs

    def stage_comparison(self, predictions: dict[str, str]) -> str:
        """Every model on the held-out samples (the phantoms when the bundled data is used, else every test sample),
        with bootstrap intervals and paired stage-to-stage differences → ``eval/stages.json``."""
        heldout = None if self.cfg.data else (lambda row: row.get("source") == HELDOUT_SOURCE)
        comparison = compare_stages({m: predictions[m] for m in MODELS}, keep=heldout, seed=self.cfg.seed)
        comparison["heldout"] = (
            "every test sample"
            if self.cfg.data
            else (
                f"held-out phantom radiographs, one question per image (seeds {PHANTOM_HELDOUT_SEED}–"
                f"{PHANTOM_HELDOUT_SEED + 3}; the training phantoms' seed is {PHANTOM_TRAIN_SEED})"
            )
        )
        path = self.out / "eval" / "stages.json"
        atomic_write_json(path, comparison)
        return str(path)

    def arena(self, predictions: dict[str, str]) -> dict[str, str]:

        if self.cfg.judge == "offline":
            judge: Any = RulesLabelerJudge()
        else:
            judge = LLMJudge(ChatEndpoint(EndpointConfig(base_url=self.cfg.judge, model=self.cfg.judge_model)))
        out_dir = self.out / "arena"
        run_arena(
            [predictions[m] for m in MODELS],
            judge,
            out_dir,
            budget=self.cfg.arena_budget,
            seed=self.cfg.seed,
            names=list(MODELS),
            bootstrap_rounds=200,
        )
        return {"scores": str(out_dir / "scores.json"), "dir": str(out_dir)}

    def review(self, predictions: dict[str, str]) -> dict[str, str]:

        out_dir = self.out / "review"
        if out_dir.exists():
            shutil.rmtree(out_dir)  # an unfinished earlier attempt: the set is cheap to recreate
        created = create_review(
            [predictions["stage3"], predictions["base"]],
            ["DeepMedix-R1 (stage 3)", "base model (think)"],
            out_dir,
            parse_annotators("physician1:1,physician2:1,physician3:2,physician4:2"),
            n_samples=self.cfg.review_samples,
            seed=self.cfg.seed,
        )
        lines = [f"admin\t{created.admin_token}"] + [f"{a}\t{t}" for a, t in created.tokens.items()]
        tokens = out_dir / "tokens.txt"
        atomic_write_text(tokens, "\n".join(lines) + "\n", permissions=0o600)  # private from the first byte
        return {"dir": str(out_dir), "tokens": str(tokens)}

    # --- the whole job ------------------------------------------------------------------------------------------

    def check_inputs(self) -> None:
        """What the user gave — the output folder, the recipes, the samples and their images — is usable: checked
        before anything is written (or, with --fresh, deleted), so a bad input costs a second, not a stage."""
        check_output(self.out, folder=True)
        for name in ("sft.yaml", "coldstart.yaml", "grpo.yaml"):
            recipe = self.recipes / name
            if not recipe.is_file():
                raise FileNotFoundError(
                    errno.ENOENT, "no such recipe (--recipes needs sft.yaml, coldstart.yaml, grpo.yaml)", str(recipe)
                )
            read_yaml(recipe)
        if self.cfg.data:
            numbered = load_numbered_samples(self.cfg.data)
            check_sample_images(self.cfg.data, numbered)
            _check_splits([s for _, s in numbered], self.cfg.data)

    def run(self) -> Path:
        load_prompt_template(self.cfg.prompt_template)  # a bad template stops the demo before any work
        self.check_inputs()
        if self.cfg.threads and not _has_gpu():
            import torch

            torch.set_num_threads(self.cfg.threads)
        if self.cfg.fresh and self.out.exists():
            shutil.rmtree(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.out / "demo_config.json", {k: str(v) for k, v in asdict(self.cfg).items()})
        started = time.perf_counter()

        data = self.stage("prepare", "1/7 prepare the data", self.prepare)
        base = self.cfg.base_model or _recipe_model(self.recipes / "sft.yaml")
        cold = self.stage(
            "coldstart_data",
            "2/7 cold-start data: teacher + filter",
            lambda: {"data": self.synthesize(data["coldstart_input"], base)},
        )["data"]
        base_job = self.predict_base_while_training(base, data["test"])
        trained = self.stage(
            "train",
            "3/7 training: stage 1 SFT → stage 2 cold-start SFT → stage 3 GRPO",
            lambda: self.train(data, cold, base, beside=base_job),
        )
        s1, s2, s3 = trained["sft"], trained["coldstart"], trained["grpo"]
        models = {"base": (base, True), "stage1": (s1, False), "stage2": (s2, True), "stage3": (s3, True)}
        if base_job is not None:
            base_job.result()  # finished or re-raised; the predict stage then finds the base model's file complete
        preds = self.stage(
            "predict",
            "4/7 predictions of every model on the test samples",
            lambda: self.predict_all(models, data["test"]),
        )
        metrics = self.stage("eval", "5/7 XrayBench metrics", lambda: self.evaluate(preds))
        arena = self.stage("arena", "6/7 Report Arena across the stages", lambda: self.arena(preds))
        review = self.stage("review", "7/7 expert review set", lambda: self.review(preds))

        report = write_demo_report(
            self.out, self.records, data, preds, metrics, arena, review, self.cfg, base_model=base
        )
        total = time.perf_counter() - started
        self.console.rule("[bold green]done")
        self.console.print(f"report: [bold]{report}[/bold]  ({total:.0f} s)")
        self.console.print(
            f"open the review set: deepmedix review serve --dir {review['dir']}  (personal links: {review['tokens']})"
        )
        return report


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _threads_when_done(job: Any, threads: int) -> Any:
    """A trainer callback that sets torch's thread count to ``threads`` at the first step after ``job`` is done: the
    core a worker process predicted on goes back to training (on two cores: 1.4 s → 1.1 s per stage-2 step)."""
    import torch
    from transformers import TrainerCallback

    class ThreadsWhenDone(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if job.done() and torch.get_num_threads() != threads:
                torch.set_num_threads(threads)

    return ThreadsWhenDone()


def _predict_job(out: str, model: str, test: str, options: dict[str, Any]) -> str:
    """One model's predictions (a module-level function: worker processes run it)."""
    predict_file(model, test, out, **options)
    return out


def _check_splits(samples: list[Sample], data: Path | str | None) -> tuple[list[Sample], list[Sample]]:
    """(train, test): the demo trains on the one and measures on the other, so it needs both."""
    train = [s for s in samples if s.split != "test"]
    test = [s for s in samples if s.split == "test"]
    if not train or not test:
        raise DataError(
            f"{data or 'the bundled sample'}: the demo needs train and test samples "
            f"(found {len(train)} train, {len(test)} test)"
        )
    return train, test


def _benchmark(sample: Sample) -> str:

    return benchmark_name(sample.source, str(sample.task))


def _spread(samples: list[Sample], n: int, rng: random.Random) -> list[Sample]:
    """Up to ``n`` samples drawn evenly across tasks, so no task is starved."""
    by_task: dict[Task, list[Sample]] = defaultdict(list)
    for s in samples:
        by_task[s.task].append(s)
    for members in by_task.values():
        rng.shuffle(members)
    picked: list[Sample] = []
    while len(picked) < n and any(by_task.values()):
        for task in sorted(by_task):
            if by_task[task] and len(picked) < n:
                picked.append(by_task[task].pop())
    return picked


def _recipe_model(recipe: Path) -> str:
    from deepmedix.training.config import read_recipe  # imports transformers/TRL: only this path pays for it

    return str(read_recipe(recipe).get("model") or "tiny")


def _prediction_budget(recipes: Path) -> int | None:
    """A budget for every answer when the GRPO recipe trains completions shorter than the task budgets (a small
    model learns to stop within them: the tiny recipes' 96); None (each task's budget) otherwise."""
    from deepmedix.training.config import read_recipe  # imports transformers/TRL: only this path pays for it

    trained = read_recipe(recipes / "grpo.yaml").get("max_completion_length")
    return int(trained) if isinstance(trained, int) and trained < LARGEST_NEW_TOKENS else None


def run_demo(config: DemoConfig) -> Path:
    return Demo(config).run()
