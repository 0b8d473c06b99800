"""The ``deepmedix`` command: a thin layer over the capability packages.

Each capability owns a ``cli.py`` with ``register(subparsers)``; registering must stay cheap (no torch import), the
heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from deepmedix import __version__
from deepmedix.errors import UserError

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


def os_error_message(error: OSError) -> str:
    """``PermissionError: [Errno 13] Permission denied: 'x'`` → ``x: permission denied`` (the file first)."""
    if error.strerror is None or error.filename is None:  # raised with a message of its own
        return str(error) or type(error).__name__
    reason = error.strerror.rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    target = f"{error.filename} → {error.filename2}" if error.filename2 else str(error.filename)
    return f"{target}: {reason}"


class CurrentStderrHandler(logging.StreamHandler):
    """Logs to whatever ``sys.stderr`` is when a record is written, not the stream it was when logging was set up:
    a command run in a process that swaps stderr (a test harness, an embedding program) never writes to a closed
    stream, from any thread."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201 - the StreamHandler attribute, read at every emit
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:  # StreamHandler.__init__ assigns it; the property ignores that
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepmedix",
        description="DeepMedix-R1: grounded chest X-ray reasoning — data, training, inference, evaluation, arena, review.",
    )
    parser.add_argument("--version", action="version", version=f"deepmedix {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        handlers=[CurrentStderrHandler()],
        force=True,
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except (UserError, OSError) as e:
        # Bad input and unusable files are one line naming the file, record and field; anything else is a bug and
        # keeps its traceback. -v shows the traceback of these too.
        if args.verbose:
            raise
        message = os_error_message(e) if isinstance(e, OSError) and not isinstance(e, UserError) else str(e)
        message = " ".join(message.split())  # one line, whatever a library put in its message
        print(f"deepmedix {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
