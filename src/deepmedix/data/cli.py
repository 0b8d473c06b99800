"""``deepmedix prepare`` (dataset converters, XrayBench, the paper's training mixes, embedded sample) and ``stats``."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepmedix.data.mix_options import MixOptions
from deepmedix.errors import OptionError
from deepmedix.options import add_dataclass_arguments, dataclass_from_args

# Converters of a source dataset folder (docs/data.md describes each layout).
SOURCE_HELP = {
    "mimic-cxr": "MIMIC-CXR-JPG (--root) with the MIMIC-CXR reports (--reports-root): report generation",
    "open-i": "Open-I, Indiana University chest X-rays (Kaggle layout): report generation",
    "ms-cxr": "MS-CXR phrase grounding over MIMIC-CXR-JPG images",
    "ext-vqa": "MIMIC-Ext-MIMIC-CXR-VQA over MIMIC-CXR-JPG images",
    "cxr-vqa": "Medical-CXR-VQA over MIMIC-CXR-JPG images",
}
MIMIC_DERIVED = ("mimic-cxr", "ms-cxr", "ext-vqa", "cxr-vqa")
PREPARE_SOURCES = ("bundled", *SOURCE_HELP, "xraybench", "mix")


def _common(parser: argparse.ArgumentParser, out_help: str = "samples JSONL to write (atomically)") -> None:
    parser.add_argument("--out", type=Path, required=True, help=out_help)


def _row_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--on-error",
        choices=("skip", "fail"),
        default="fail",
        help="a bad row stops the run (fail, default) or is skipped and counted (skip)",
    )
    parser.add_argument("--limit", type=int, help="stop after N samples")
    parser.add_argument(
        "--relative-paths", action="store_true", help="write image paths relative to the output file's folder"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    prepare = subparsers.add_parser(
        "prepare",
        help="convert a dataset, XrayBench or the embedded sample into samples; build the paper's training mixes",
        description="Convert a dataset folder into deepmedix samples (docs/data.md describes each layout), XrayBench "
        "as released, or the embedded sample; 'mix' draws the paper's SFT / cold-start / RL sets from converted files.",
    )
    kinds = prepare.add_subparsers(dest="source", metavar="SOURCE", required=True)

    bundled = kinds.add_parser("bundled", help="the embedded CC0 sample (no download)")
    _common(bundled)
    bundled.add_argument("--no-phantom", action="store_true", help="leave out the phantom grounding samples")
    bundled.set_defaults(func=prepare_handler)

    for name, text in SOURCE_HELP.items():
        source = kinds.add_parser(name, help=text, description=text + " (layout: docs/data.md)")
        source.add_argument("--root", type=Path, help="the dataset folder")
        _common(source)
        if name in MIMIC_DERIVED:
            source.add_argument(
                "--images",
                type=Path,
                help="the MIMIC-CXR-JPG folder (holding files/pXX/…), or its files/ folder (default: --root)",
            )
            source.add_argument(
                "--mimic-split",
                type=Path,
                help="MIMIC-CXR-JPG's mimic-cxr-2.0.0-split.csv[.gz] (or its folder): the official split, the "
                "authority for every MIMIC-derived source (default: found under --images, then --root)",
            )
        if name == "mimic-cxr":
            source.add_argument(
                "--reports-root",
                type=Path,
                help="the MIMIC-CXR reports download (the mimic-cxr project folder, its files/, or where "
                "mimic-cxr-reports.zip was unzipped; default: --root)",
            )
        _row_flags(source)
        source.set_defaults(func=prepare_handler)

    bench = kinds.add_parser(
        "xraybench",
        help="XrayBench as released (Qika/xraybench): a snapshot folder, a data file or a hub id",
        description="XrayBench into the sample format, every group kept (MIMIC-CXR and Open-I findings/impression, "
        "Ext-VQA, CXR-VQA). Columns are detected by name; --column-map names them when they are not found.",
    )
    bench.add_argument(
        "--root", required=True, help="a local snapshot folder (or one data file), or a hub id such as Qika/xraybench"
    )
    _common(bench, "samples JSONL to write (embedded images are written to <out stem>-images/ beside it)")
    bench.add_argument(
        "--images",
        type=Path,
        action="append",
        default=[],
        help="a folder relative image paths are under (MIMIC-CXR-JPG, the Open-I folder, …); repeatable",
    )
    bench.add_argument(
        "--column-map",
        help="FIELD=COLUMN,… for fields not found by name (prompt, answer, image, group, id, question_type, "
        "answer_type, patient, study)",
    )
    bench.add_argument(
        "--group-map",
        help="VALUE=SOURCE/TASK,… for group values (or config names) not recognised, TASK one of "
        "findings, impression, vqa",
    )
    bench.add_argument("--revision", help="hub id: the revision (branch, tag or commit)")
    bench.add_argument("--offline", action="store_true", help="hub id: use the local hub cache only")
    bench.add_argument("--cache-dir", type=Path, help="datasets' Arrow cache (default: datasets' own)")
    _row_flags(bench)
    bench.set_defaults(func=xraybench_handler)

    mix = kinds.add_parser(
        "mix",
        help="the paper's training sets (SFT, cold-start input, RL) from converted samples files",
        description="Draw sft.jsonl, coldstart_input.jsonl and rl.jsonl with the paper's sizes (351.5K / 3.9K / "
        "6.6K, times --scale) from the training split of the inputs, after checking across all inputs and "
        "--test-split files that no training patient is a test patient; writes manifest.json and figures.",
    )
    mix.add_argument("inputs", nargs="+", type=Path, metavar="SAMPLES", help="samples JSONL files (from prepare)")
    mix.add_argument("--out", type=Path, required=True, help="folder to write the sets, manifest and figures into")
    add_dataclass_arguments(mix, MixOptions)
    mix.set_defaults(func=mix_handler)

    stats = subparsers.add_parser("stats", help="counts and answer lengths of a samples JSONL, as tables and a figure")
    stats.add_argument("file", type=Path, help="samples JSONL")
    stats.add_argument("--figure", type=Path, help="draw the composition figure here (png, pdf or svg)")
    stats.add_argument("--json", type=Path, help="also write the numbers as JSON")
    stats.set_defaults(func=stats_handler)


def _check_limit(args: argparse.Namespace) -> None:
    if getattr(args, "limit", None) is not None and args.limit < 1:
        raise OptionError(f"--limit must be a positive number, got {args.limit}")


def prepare_handler(args: argparse.Namespace) -> int:
    _check_limit(args)
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
        images_root=getattr(args, "images", None),
        relative_paths=args.relative_paths,
        reports_root=getattr(args, "reports_root", None),
        mimic_split=getattr(args, "mimic_split", None),
    )
    print("\n".join(summary.lines()))
    if summary.written == 0:
        raise OptionError(
            f"{args.source}: no samples were written from {args.root}"
            + (" (every row was skipped; see the reasons above)" if summary.n_skipped else "")
        )
    return 0


def xraybench_handler(args: argparse.Namespace) -> int:
    _check_limit(args)
    from deepmedix.data.xraybench import parse_column_map, parse_group_map, prepare_xraybench

    summary = prepare_xraybench(
        args.root,
        args.out,
        column_map=parse_column_map(args.column_map),
        group_map=parse_group_map(args.group_map),
        image_roots=tuple(args.images),
        on_error=args.on_error,
        limit=args.limit,
        relative_paths=args.relative_paths,
        revision=args.revision,
        offline=args.offline,
        cache_dir=args.cache_dir,
    )
    print("\n".join(summary.lines()))
    if summary.written == 0:
        raise OptionError(f"xraybench: no samples were written from {args.root}")
    return 0


def mix_handler(args: argparse.Namespace) -> int:
    from deepmedix.data.mix import build_mix

    result = build_mix(list(args.inputs), args.out, dataclass_from_args(MixOptions, args))
    print("\n".join(result.lines()))
    return 0


def stats_handler(args: argparse.Namespace) -> int:
    from deepmedix.data.stats import compute_stats, draw_stats, print_stats
    from deepmedix.errors import DataError
    from deepmedix.io import check_output

    for output in (args.figure, args.json):  # both checked before either is written
        if output is not None:
            check_output(output)
    stats = compute_stats(args.file)
    if not stats.total:
        raise DataError(f"{args.file}: no samples to count (the file is empty)")
    print_stats(stats, title=args.file.name)
    if args.figure:
        print(f"figure: {draw_stats(stats, args.figure, title=args.file.name)}")
    if args.json:
        from deepmedix.io import atomic_write_json

        atomic_write_json(args.json, stats.to_dict())
        print(f"numbers: {args.json}")
    return 0
