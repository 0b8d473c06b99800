"""``deepmedix arena run`` (judge report pairs, fit, report) and ``deepmedix arena fit`` (fit given judgments)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from deepmedix.arena.options import ArenaOptions, FitOptions
from deepmedix.errors import DataError, OptionError
from deepmedix.io import check_output, iter_jsonl_objects
from deepmedix.options import add_dataclass_arguments, dataclass_from_args

if TYPE_CHECKING:
    from deepmedix.arena.bt import ArenaFit


def register(subparsers: argparse._SubParsersAction) -> None:
    arena = subparsers.add_parser(
        "arena",
        help="Report Arena: pairwise judging of generated reports, Bradley–Terry ranking",
        description="Rank models by pairwise judgments of their reports (an LLM judge or the offline rules-labeler).",
    )
    sub = arena.add_subparsers(dest="arena_command", metavar="SUBCOMMAND")

    run = sub.add_parser(
        "run",
        help="judge report pairs drawn actively (or uniformly), then fit and report",
        description=(
            "Draw pairs of models (active rule or uniform), a report sample both answered, ask the judge in both "
            "orders, store every judgment in DIR/judgments.sqlite (rerun the same command to resume at no cost), "
            "then write DIR/judgments.jsonl, DIR/scores.json, DIR/arena.json, DIR/arena.md and figures."
        ),
    )
    run.add_argument(
        "--predictions", nargs="+", required=True, metavar="FILE", help="prediction JSONL files, one per model"
    )
    run.add_argument(
        "--names", nargs="+", metavar="NAME", help="model names, in the order of --predictions (default: file names)"
    )
    run.add_argument(
        "--judge",
        required=True,
        metavar="URL|offline",
        help="base URL of an OpenAI-compatible endpoint (e.g. http://127.0.0.1:8000/v1), or 'offline' for rules-labeler",
    )
    run.add_argument("--judge-model", default=None, help="model name at the endpoint (required with a URL)")
    run.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    run.add_argument("--max-concurrency", type=int, default=4, help="judge requests in flight at once (default 4)")
    run.add_argument("--requests-per-minute", type=float, default=None, help="rate limit for the judge endpoint")
    run.add_argument("--out", required=True, type=Path, metavar="DIR")
    # The default batch follows the judge (twice its concurrency; 64 offline), so this flag is not the API's.
    run.add_argument(
        "--batch-size", type=int, default=None, help="comparisons drawn before judging (default: 2 × concurrency)"
    )
    add_dataclass_arguments(run, ArenaOptions, exclude=("batch_size", "weighted"))
    run.set_defaults(func=_run)

    fit = sub.add_parser(
        "fit",
        help="fit Bradley–Terry scores from a judgments JSONL",
        description=(
            'Each line: {"model_a", "model_b", "winner": "a"|"b"|"tie", "prob"?} (prob: the probability with which '
            "the pair was drawn; 1 when absent). Writes DIR/scores.json, DIR/arena.json, DIR/arena.md and figures."
        ),
    )
    fit.add_argument("judgments", type=Path, metavar="JUDGMENTS.jsonl")
    fit.add_argument("--out", required=True, type=Path, metavar="DIR")
    add_dataclass_arguments(fit, FitOptions)
    fit.set_defaults(func=_fit)
    arena.set_defaults(func=lambda args: _help(arena))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _run(args: argparse.Namespace) -> int:
    # numpy and scipy (the fit), numpy and PIL (the judges' image handling): not for `--help`
    from deepmedix.arena.judges import Judge, LLMJudge, RulesLabelerJudge
    from deepmedix.arena.run import run_arena
    from deepmedix.endpoints import ChatEndpoint, EndpointConfig

    check_output(args.out, folder=True)
    judge: Judge
    if args.judge == "offline":
        judge = RulesLabelerJudge()
        batch_size = args.batch_size or 64
        if args.vision:
            raise OptionError("--judge-vision needs an LLM judge endpoint, not 'offline'")
    else:
        if not args.judge.startswith(("http://", "https://")):
            raise OptionError(
                f"--judge must be an http(s) URL of an OpenAI-compatible endpoint or 'offline', got {args.judge!r}"
            )
        if not args.judge_model:
            raise OptionError("--judge-model is required with a judge URL (the model name the endpoint serves)")
        config = EndpointConfig(
            base_url=args.judge,
            model=args.judge_model,
            api_key_env=args.api_key_env,
            max_concurrency=args.max_concurrency,
            requests_per_minute=args.requests_per_minute,
            max_tokens=512,
        )
        judge = LLMJudge(ChatEndpoint(config), vision=args.vision)
        batch_size = args.batch_size or max(2, 2 * args.max_concurrency)
    options = dataclass_from_args(ArenaOptions, args, batch_size=batch_size)
    result = run_arena(
        args.predictions,
        judge,
        args.out,
        budget=options.budget,
        sampling=options.sampling,
        seed=options.seed,
        names=args.names,
        batch_size=options.batch_size,
        bootstrap_rounds=options.bootstrap_rounds,
        scale=options.scale,
        vision=options.vision,
    )
    u = result.usage
    print(
        f"{len(result.draws)} comparisons; judge calls this run {u['calls']} "
        f"({u['prompt_tokens']} prompt + {u['completion_tokens']} completion tokens), reused {u['cached']}"
    )
    bias = result.bias
    if bias["verdicts"]:
        print(
            f"position bias: report shown first won {bias['position_a_wins']:.1%} of {bias['verdicts']} verdicts; "
            f"orders disagreed on {bias['order_inconsistent'] or 0:.1%} of comparisons (counted as ties)"
        )
    if result.fit is None:
        print("no comparison could be fitted (all unparseable or failed)")
        return 1
    _print_scores(result.fit)
    print(f"wrote {args.out}/scores.json, arena.md, arena.json, judgments.jsonl, judgments.sqlite and figures")
    return 0


def _fit(args: argparse.Namespace) -> int:
    # The fit and its report import numpy and scipy: over half a second, not for `--help`.
    from deepmedix.arena.bt import battles_from_rows, fit_arena
    from deepmedix.arena.report import write_outputs

    options = dataclass_from_args(FitOptions, args)
    check_output(args.out, folder=True)
    numbered = list(iter_jsonl_objects(args.judgments))
    if not numbered:
        raise DataError(f"{args.judgments}: no judgments to fit (the file is empty)")
    rows = [row for _, row in numbered]
    battles = battles_from_rows(rows, source=str(args.judgments), lines=[line for line, _ in numbered])
    if not battles:
        raise DataError(f"{args.judgments}: no resolved judgment to fit (every one is 'unparseable' or 'error')")
    fit = fit_arena(
        battles,
        bootstrap_rounds=options.bootstrap_rounds,
        scale=options.scale,
        seed=options.seed,
        weighted=options.weighted,
    )
    write_outputs(
        args.out,
        fit,
        {"judgments": str(args.judgments), "rows": len(rows), "skipped_unresolved": len(rows) - len(battles)},
    )
    _print_scores(fit)
    print(f"wrote {args.out}/scores.json, arena.md, arena.json and figures")
    return 0


def _print_scores(fit: ArenaFit) -> None:
    from rich.console import Console  # rich takes ~0.1 s to import: not for `deepmedix --help`
    from rich.table import Table

    table = Table(title="Report Arena")
    for col in ("rank", "model", "score", "interval", "battles"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for i, m in enumerate(fit.models):
        table.add_row(
            str(fit.rank[i]),
            m,
            f"{fit.score[i]:.3f}",
            f"[{fit.ci_low[i]:.3f}, {fit.ci_high[i]:.3f}]",
            str(int(fit.battles[i].sum())),
        )
    Console().print(table)
