"""The ``deepmedix`` command: a thin layer over the capability packages.

Each capability owns a ``cli.py`` with ``register(subparsers)``; registering must stay cheap (no torch import), the
heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Capability modules, in the order their commands are listed in ``deepmedix --help``.
COMMAND_MODULES = (
    "deepmedix.data.cli",  # prepare, stats, sample
    "deepmedix.models.cli",  # tiny-model
    "deepmedix.training.cli",  # train, coldstart, pipeline
    "deepmedix.rewards.cli",  # reward
    "deepmedix.inference.cli",  # infer, predict, serve
    "deepmedix.labeler.cli",  # label
    "deepmedix.evaluation.cli",  # eval, bench
    "deepmedix.arena.cli",  # arena
    "deepmedix.annotation.cli",  # review
    "deepmedix.demo.cli",  # demo
)


class UserError(Exception):
    """An error caused by the user's input: printed as one clear message, without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    from deepmedix import __version__

    parser = argparse.ArgumentParser(
        prog="deepmedix",
        description="DeepMedix-R1: grounded chest X-ray reasoning — data, training, inference, evaluation, arena, review.",
    )
    parser.add_argument("--version", action="version", version=f"deepmedix {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):  # capability not present in this build
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except (UserError, FileNotFoundError, ValueError) as e:
        # Bad input is reported as one line that names the file, record and field; never a bare traceback.
        if args.verbose:
            raise
        print(f"deepmedix {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
