"""The command line's one error path: user errors and unusable files are one line; real bugs keep their traceback."""

from __future__ import annotations

import argparse

import pytest

from deepmedix import cli
from deepmedix.errors import DataError


def _run_with_handler(monkeypatch: pytest.MonkeyPatch, handler, argv: list[str]) -> int:
    """Run ``deepmedix stats FILE`` with its handler replaced, so any exception can be raised from a command."""
    real_build = cli.build_parser

    def build() -> argparse.ArgumentParser:
        parser = real_build()
        parser._subparsers._group_actions[0].choices["stats"].set_defaults(func=handler)  # type: ignore[union-attr]
        return parser

    monkeypatch.setattr(cli, "build_parser", build)
    return cli.main(argv)


def test_a_user_error_is_one_line_without_traceback(monkeypatch, capsys) -> None:
    def handler(args: argparse.Namespace) -> int:
        raise DataError("data.jsonl, line 3, field 'answer': must be a string")

    assert _run_with_handler(monkeypatch, handler, ["stats", "data.jsonl"]) == 1
    err = capsys.readouterr().err
    assert err == "deepmedix stats: error: data.jsonl, line 3, field 'answer': must be a string\n"


def test_a_message_of_several_lines_is_printed_as_one(monkeypatch, capsys) -> None:
    def handler(args: argparse.Namespace) -> int:
        raise DataError("r.yaml: not valid YAML (while parsing\n  in line 3\n    expected ']')")

    assert _run_with_handler(monkeypatch, handler, ["stats", "x"]) == 1
    assert (
        capsys.readouterr().err
        == "deepmedix stats: error: r.yaml: not valid YAML (while parsing in line 3 expected ']')\n"
    )


def test_an_os_error_names_the_file_first(monkeypatch, capsys, tmp_path) -> None:
    target = tmp_path / "ro" / "out.jsonl"

    def handler(args: argparse.Namespace) -> int:
        raise PermissionError(13, "Permission denied", str(target))

    assert _run_with_handler(monkeypatch, handler, ["stats", "x"]) == 1
    assert capsys.readouterr().err == f"deepmedix stats: error: {target}: permission denied\n"


def test_a_bug_keeps_its_traceback(monkeypatch) -> None:
    def handler(args: argparse.Namespace) -> int:
        raise ValueError("an internal invariant broke")

    with pytest.raises(ValueError, match="internal invariant"):
        _run_with_handler(monkeypatch, handler, ["stats", "x"])


def test_verbose_shows_the_traceback_of_a_user_error_too(monkeypatch) -> None:
    def handler(args: argparse.Namespace) -> int:
        raise DataError("bad")

    with pytest.raises(DataError):
        _run_with_handler(monkeypatch, handler, ["-v", "stats", "x"])


def test_user_error_kinds_are_still_value_errors_for_library_callers() -> None:
    from deepmedix import errors

    for kind in (errors.DataError, errors.OptionError, errors.RecipeError, errors.SampleFileError, errors.RowError):
        assert issubclass(kind, errors.UserError) and issubclass(kind, ValueError)


def test_registering_every_command_loads_no_heavy_library() -> None:
    """``deepmedix --help`` stays instant: command registration imports no numpy, PIL, pydantic, scipy or torch."""
    import subprocess
    import sys

    code = (
        "import sys, deepmedix.cli; deepmedix.cli.build_parser(); "
        "print(sorted(m for m in ('numpy', 'PIL', 'pydantic', 'scipy', 'torch', 'transformers', 'fastapi') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
