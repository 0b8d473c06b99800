"""The errors a user can fix, on the lowest floor so every room raises the same kinds.

The command line prints a :class:`UserError` (and an ``OSError``, which names its file) as one line and exits
non-zero; anything else is a bug and keeps its traceback. Each kind that reports bad input also subclasses
``ValueError``, so library callers can keep catching the built-in type.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


def field_path(parts: Iterable[str | int]) -> str:
    """``("steps", 0, "boxes")`` → ``steps[0].boxes``: where in a record a value is, as every message writes it."""
    out = ""
    for part in parts:
        if not isinstance(part, int):  # a key holding a lone surrogate is shown escaped: it cannot be printed
            part = str(part).encode("utf-8", "backslashreplace").decode("utf-8")
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class UserError(Exception):
    """A problem with the user's input, options or environment: printed as one clear message, no traceback."""


class OptionError(UserError, ValueError):
    """A command-line option or API argument out of its range or choices."""


class RecipeError(UserError, ValueError):
    """A training recipe that cannot be used; the message names the file and the key."""


class DataError(UserError, ValueError):
    """Input data that cannot be used; the message names the file, the line or record and the field it can."""


class InputFileError(DataError):
    """A file whose content is wrong, built from its parts: the file, then the line (or record) and the field."""

    def __init__(self, file: str | Path, message: str, line: int | None = None, field: str | None = None):
        self.file, self.line, self.field = str(file), line, field
        where = str(file)
        if line is not None:
            where += f", line {line}"
        if field:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")

    @classmethod
    def from_validation(cls, file: str | Path, error: Any, line: int | None = None) -> InputFileError:
        """A pydantic ``ValidationError`` as one line: the file, the line, the first problem's field and message
        (and how many more problems there are). Duck-typed, so this floor does not import pydantic."""
        problems = error.errors(include_url=False)
        first = problems[0]
        message = str(first.get("msg", error)).replace("\n", " ")
        if first.get("type") not in ("missing", "extra_forbidden") and "input" in first:
            shown = repr(first["input"])
            message += f", got {shown if len(shown) <= 60 else shown[:57] + '...'}"
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
        return cls(file, message, line=line, field=field_path(first.get("loc", ())) or None)


class SampleFileError(InputFileError):
    """A samples JSONL that cannot be read as the sample format."""


class PredictionFileError(InputFileError):
    """A malformed prediction line."""


class RowError(DataError):
    """One bad row of a source dataset: names the file, the row (1-based data row, header excluded) and the field.

    ``reason`` is the short cause a conversion counts skipped rows by.
    """

    def __init__(
        self, file: str | Path, row: int | str | None, field: str | None, message: str, reason: str | None = None
    ):
        self.file, self.row, self.field = str(file), row, field
        self.reason = reason or message.split(":")[0]
        where = str(file) + (f", row {row}" if row is not None else "") + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {message}")


class SplitLeakError(DataError):
    """One patient in two splits: the split would leak test images into training."""


class ImageError(UserError, ValueError):
    """An image that cannot be used: unreadable, truncated, not an image, or too large. The message names it."""


class ImageTooLargeError(ImageError):
    """An image whose header already shows it is over the size limits (refused before decoding)."""


class ModelFileError(UserError, ValueError):
    """A model folder, checkpoint or tokenizer that cannot be used (the message names the path)."""


class MissingDependencyError(UserError, ImportError):
    """An optional engine (vLLM, DeepSpeed, Java for METEOR, ...) that the asked-for path needs is not installed."""


class EndpointError(UserError, RuntimeError):
    """A model endpoint the user pointed at failed or refused (after retries)."""


__all__ = [
    "DataError",
    "EndpointError",
    "ImageError",
    "ImageTooLargeError",
    "InputFileError",
    "MissingDependencyError",
    "ModelFileError",
    "OptionError",
    "PredictionFileError",
    "RecipeError",
    "RowError",
    "SampleFileError",
    "SplitLeakError",
    "UserError",
    "field_path",
]
