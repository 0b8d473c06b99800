"""The errors a user can fix, on the lowest floor so every room raises the same kinds.

The command line prints a :class:`UserError` (and an ``OSError``, which names its file) as one line and exits
non-zero; anything else is a bug and keeps its traceback. Each kind that reports bad input also subclasses
``ValueError``, so library callers can keep catching the built-in type.
"""

from __future__ import annotations

from pathlib import Path


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
]
