"""``deepmedix prepare`` (dataset converters, embedded sample) and ``deepmedix stats``."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepmedix.errors import OptionError

PREPARE_SOURCES = ("bundled", "mimic-cxr", "open-i", "ms-cxr", "ext-vqa", "cxr-vqa")


def register(subparsers: argparse._SubParsersAction) -> None:
    prepare = subparsers.add_parser(
        "prepare",
        help="convert a dataset (or the embedded sample) into a samples JSONL",
        description="Convert a dataset folder into deepmedix samples (docs/data.md describes each layout). "
        "'bundled' writes the embedded CC0 sample and needs no --root.",
    )
    prepare.add_argument("source", choices=PREPARE_SOURCES, help="which dataset")
    prepare.add_argument("--root", type=Path, help="the dataset folder (not needed for 'bundled')")
    prepare.add_argument(
        "--images", type=Path, help="MIMIC-CXR-JPG folder holding files/pXX/… (MIMIC-derived sources; default: --root)"
    )
    prepare.add_argument("--out", type=Path, required=True, help="samples JSONL to write (atomically)")
    prepare.add_argument(
        "--on-error",
        choices=("skip", "fail"),
        default="fail",
        help="a bad row stops the run (fail, default) or is skipped and counted (skip)",
    )
    prepare.add_argument("--limit", type=int, help="stop after N samples")
    prepare.add_argument(
        "--relative-paths", action="store_true", help="write image paths relative to the output file's folder"
    )
    prepare.add_argument("--no-phantom", action="store_true", help="bundled: leave out the phantom grounding samples")
    prepare.set_defaults(func=prepare_handler)

    stats = subparsers.add_parser("stats", help="counts and answer lengths of a samples JSONL, as tables and a figure")
    stats.add_argument("file", type=Path, help="samples JSONL")
    stats.add_argument("--figure", type=Path, help="draw the composition figure here (png, pdf or svg)")
    stats.add_argument("--json", type=Path, help="also write the numbers as JSON")
    stats.set_defaults(func=stats_handler)


def prepare_handler(args: argparse.Namespace) -> int:

    if args.limit is not None and args.limit < 1:
        raise OptionError(f"--limit must be a positive number, got {args.limit}")
    if args.source == "bundled":
        from deepmedix.data.bundled import prepare_bundled
        from deepmedix.data.stats import compute_stats

        out = prepare_bundled(args.out, phantom=not args.no_phantom)
        stats = compute_stats(out)
        print(
            f"bundled: wrote {stats.total} samples to {out} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(stats.by_task.items()))})"
        )
        return 0
    if args.root is None:
        raise OptionError(f"prepare {args.source} needs --root DIR (the dataset folder; see docs/data.md)")

    from deepmedix.data.convert import run_conversion
    from deepmedix.data.sources import SOURCES

    summary = run_conversion(
        SOURCES[args.source],
        args.source,
        args.root,
        args.out,
        on_error=args.on_error,
        limit=args.limit,
        images_root=args.images,
        relative_paths=args.relative_paths,
    )
    print("\n".join(summary.lines()))
    if summary.written == 0:
        raise OptionError(
            f"{args.source}: no samples were written from {args.root}"
            + (" (every row was skipped; see the reasons above)" if summary.n_skipped else "")
        )
    return 0


def stats_handler(args: argparse.Namespace) -> int:
    from deepmedix.data.stats import compute_stats, draw_stats, print_stats

    if not args.file.is_file():
        raise FileNotFoundError(f"{args.file}: no such samples file")
    stats = compute_stats(args.file)
    print_stats(stats, title=args.file.name)
    if args.figure:
        print(f"figure: {draw_stats(stats, args.figure, title=args.file.name)}")
    if args.json:
        from deepmedix.io import atomic_write_json

        atomic_write_json(args.json, stats.to_dict())
        print(f"numbers: {args.json}")
    return 0
