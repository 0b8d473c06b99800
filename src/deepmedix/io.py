"""Files in and out, shared by every command: atomic writes, append-only JSONL that survives a kill, and the one
strict JSON reader (no NaN or Infinity, valid UTF-8 and Unicode only, every error naming the file, line and field)."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import yaml

from deepmedix.errors import InputFileError, field_path

log = logging.getLogger(__name__)


def cache_root() -> Path:
    """Where deepmedix keeps what it builds or derives once (tiny models, label caches): ``$DEEPMEDIX_CACHE`` or
    ``~/.cache/deepmedix``."""
    root = os.environ.get("DEEPMEDIX_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "deepmedix"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's contents, read in chunks (checkpoints are hundreds of MB)."""
    with Path(path).open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _os_error(kind: int, path: Path) -> OSError:
    """An OSError of the kind ``errno`` names, about ``path`` (the CLI prints it as ``path: reason``)."""
    return OSError(kind, os.strerror(kind), str(path))


def make_parents(path: str | Path) -> list[Path]:
    """Create the folders above ``path``; returns those it created (deepest last), so a failure can remove them.

    A file where a folder is needed is named as such (``a.txt: not a directory``), not as the ``File exists`` that
    ``mkdir`` says.
    """
    missing: list[Path] = []
    parent = Path(path).parent
    while not parent.exists():
        if parent.is_symlink():  # a dangling link: mkdir would say "file exists"
            raise _os_error(errno.ENOENT, parent)
        missing.append(parent)
        parent = parent.parent
    if not parent.is_dir():
        raise _os_error(errno.ENOTDIR, parent)
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
    except BaseException:
        remove_created(created)
        raise
    return created


def remove_created(folders: list[Path]) -> None:
    """Remove folders :func:`make_parents` created, deepest first, where they are still empty."""
    for folder in reversed(folders):
        with suppress(OSError):
            folder.rmdir()


@contextmanager
def atomic_open(
    path: str | Path, mode: str = "w", encoding: str | None = "utf-8", permissions: int = 0o666
) -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path`` and rename it into place only when the block succeeds.

    A crash or an exception leaves the previous file (or nothing, not even the folders made for it) — never half a
    file. The file is created with ``permissions`` less the umask, as a plain ``open()`` would be (``0o600`` for
    secrets: private from the first byte, never readable by others even while it is written). A ``path`` that is a
    folder, or a folder that cannot be written, fails before anything is written, naming ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise _os_error(errno.EISDIR, path)
    created = make_parents(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, permissions)
        except OSError as e:  # about the folder the output goes to: name the output, not the temporary file
            raise OSError(e.errno, e.strerror, str(path)) from None
        try:
            with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    except BaseException:
        remove_created(created)
        raise


@contextmanager
def staged_folder(path: str | Path) -> Iterator[Path]:
    """Build a command's output folder in a hidden folder inside it, and move what was written in only on success.

    On any failure the staging folder is removed, and so is ``path`` itself when this call created it: ``path`` is
    left as it was (absent, or with its earlier files). On success each staged file replaces its namesake in
    ``path`` by an atomic rename; files of ``path`` the command did not write are kept.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise _os_error(errno.ENOTDIR, path)
    created = make_parents(path / "_")  # the folder itself too
    stage = path / f".staging-{secrets.token_hex(6)}.tmp"
    try:
        try:
            stage.mkdir()
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(path)) from None
        try:
            yield stage
            _merge_into(stage, path)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    except BaseException:
        remove_created(created)
        raise


def _merge_into(stage: Path, target: Path) -> None:
    for item in stage.iterdir():
        dest = target / item.name
        if item.is_dir() and dest.is_dir():
            _merge_into(item, dest)
        else:
            if dest.is_dir():
                shutil.rmtree(dest)
            os.replace(item, dest)


def private_database(path: str | Path) -> Path:
    """Make a SQLite database file readable by its owner only before SQLite opens it: a new one is created empty
    with mode 0600, so SQLite creates its -wal and -shm files with the same mode; an existing one (and its -wal and
    -shm) loses group and other permissions. Caches and stores hold report text and judgments."""
    path = Path(path)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            try:
                st = file.stat()
            except FileNotFoundError:
                continue
            if st.st_mode & 0o077 and st.st_uid == os.getuid():
                file.chmod(0o600)
    return path


def check_output(path: str | Path, folder: bool = False) -> None:
    """Fail now, before any work, when ``path`` cannot be written: a folder where a file goes (or a file where a
    folder goes), a file in the way of its folders, or a folder this process may not write to — tried for real, by
    making and removing an empty folder there, since permission bits say nothing for root or a read-only mount.
    The write itself still fails cleanly; this only spares the work done before it."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise _os_error(errno.ENOTDIR if folder else errno.EISDIR, path)
    base = path if folder and path.is_dir() else path.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise _os_error(errno.ENOTDIR, base)
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".deepmedix-probe-", dir=base))
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None


def atomic_write_text(path: str | Path, text: str, permissions: int = 0o666) -> None:
    with atomic_open(path, "w", permissions=permissions) as fh:
        fh.write(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    n = 0
    with atomic_open(path, "w") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
            n += 1
    return n


def append_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """Append complete lines and fsync, so a kill loses at most the rows not yet passed in."""
    path = Path(path)
    make_parents(path)
    lines = [(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows]
    if not lines:
        return 0
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(lines))
        fh.flush()
        os.fsync(fh.fileno())
    return len(lines)


# --- reading JSON -------------------------------------------------------------------------------------------------

# Numbers beyond this many digits cannot be a float (1.8e308) and are refused, as NaN and Infinity are.
_MAX_INT_DIGITS = 309
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
# A JSON token outside strings, to find where a refused number stands in the text (its line and column).
_TOKENS = re.compile(r'"(?:\\.|[^"\\])*"|(-?Infinity|NaN|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)')


class _Refused:
    """What the parser returns in place of a value JSON does not allow; found afterwards with its field path."""

    def __init__(self, token: str, why: str):
        self.token, self.why = token, why


def _constant(token: str) -> _Refused:
    return _Refused(token, f"{token} is not a JSON number (write null, or a finite number)")


def _float(token: str) -> float | _Refused:
    value = float(token)
    if value in (float("inf"), float("-inf")):
        return _Refused(token, f"the number {token} is out of range")
    return value


def _int(token: str) -> int | _Refused:
    if len(token.lstrip("-")) > _MAX_INT_DIGITS:
        return _Refused(token, f"the number {token[:12]}… ({len(token)} digits) is out of range")
    return int(token)


def _find_refused(value: Any, path: tuple[str | int, ...] = ()) -> tuple[tuple[str | int, ...], str, str] | None:
    """(field path, message, token) of the first refused value or lone surrogate inside a parsed JSON value."""
    if isinstance(value, _Refused):
        return path, value.why, value.token
    if isinstance(value, str):
        lone = next((c for c in value if "\ud800" <= c <= "\udfff"), None)
        if lone is not None:
            return path, f"a lone surrogate \\u{ord(lone):04x} is not Unicode text", ""
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_refused(key, (*path, key)) if isinstance(key, str) else None
            found = found or _find_refused(item, (*path, key))
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _find_refused(item, (*path, i))
            if found:
                return found
    return None


def _line_of(text: str, token: str) -> int | None:
    """The line (1-based) of the first ``token`` outside a string, for a message about a whole JSON file."""
    for match in _TOKENS.finditer(text):
        if match.group(1) == token:
            return text.count("\n", 0, match.start()) + 1
    return None


def parse_json(
    text: str, file: str | Path, line: int | None = None, error: type[InputFileError] = InputFileError
) -> Any:
    """Parse JSON as the standard defines it; anything else raises ``error`` naming the file, line and field.

    Refused: what is not JSON, NaN / Infinity / -Infinity (Python's json module accepts them, no other tool does),
    numbers beyond a float's range, and lone surrogates (``"\\ud800"``: no UTF-8 file can hold them). ``line`` is the
    line of a JSONL file; for a whole JSON file the error finds its own line.
    """
    found_refused = False

    def refuse(factory: Any) -> Any:
        def hook(token: str) -> Any:
            nonlocal found_refused
            value = factory(token)
            found_refused = found_refused or isinstance(value, _Refused)
            return value

        return hook

    try:
        value = json.loads(text, parse_constant=refuse(_constant), parse_float=refuse(_float), parse_int=refuse(_int))
    except json.JSONDecodeError as e:
        where = line if line is not None else e.lineno
        raise error(file, f"not valid JSON ({e.msg} at column {e.colno})", line=where) from None
    except (ValueError, RecursionError) as e:  # e.g. nesting deeper than the parser's recursion limit
        raise error(file, f"not valid JSON ({e})", line=line) from None
    if found_refused or _SURROGATE_ESCAPE.search(text):
        problem = _find_refused(value)
        if problem is not None:
            path, message, token = problem
            where = line if line is not None or not token else _line_of(text, token)
            raise error(file, message, line=where, field=field_path(path) or None)
    return value


def read_json(path: str | Path, error: type[InputFileError] = InputFileError) -> Any:
    """A whole JSON file, read strictly (:func:`parse_json`); invalid UTF-8 names its line."""
    path = Path(path)
    data = path.read_bytes()
    return parse_json(decode_utf8(data, path, error), path, error=error)


def read_text(path: str | Path, error: type[InputFileError] = InputFileError) -> str:
    """A UTF-8 text file (a byte-order mark dropped); invalid bytes raise ``error`` naming the line."""
    path = Path(path)
    return decode_utf8(path.read_bytes(), path, error)


def read_yaml(path: str | Path, error: type[InputFileError] = InputFileError) -> Any:
    """A YAML file; a syntax error raises ``error`` as one line naming the file, the line and yaml's reason."""
    path = Path(path)
    try:
        return yaml.safe_load(read_text(path, error))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        reason = " ".join(str(getattr(e, "problem", None) or e).split())
        raise error(path, f"not valid YAML ({reason})", line=mark.line + 1 if mark else None) from None


def decode_utf8(
    data: bytes, file: str | Path, error: type[InputFileError] = InputFileError, line: int | None = None
) -> str:
    """UTF-8 bytes (a byte-order mark dropped) as text; invalid bytes raise ``error`` naming the line and column."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        start = e.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        before = data[:start]
        where = line if line is not None else before.count(b"\n") + 1
        column = start - (before.rfind(b"\n") + 1) + 1
        raise error(
            file, f"not valid UTF-8 (byte 0x{data[start]:02x} at column {column}); save the file as UTF-8", line=where
        ) from None


def iter_jsonl_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes) of each non-blank line of a JSONL file, a byte-order mark dropped; lines are split
    at ``\\n`` only, so a CRLF file reads as well (the ``\\r`` is JSON whitespace)."""
    with Path(path).open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if raw.strip():
                yield number, raw


def iter_jsonl(
    path: str | Path, error: type[InputFileError] = InputFileError, tolerate_torn_tail: bool = False
) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of a JSONL file, parsed strictly (:func:`parse_json`).

    The file is read as bytes and each line decoded alone, so invalid UTF-8 is named by its line; a byte-order mark
    and CRLF line ends are accepted. ``tolerate_torn_tail`` drops a last line cut short by a kill (no newline and not
    valid JSON), for resumable outputs.
    """
    path = Path(path)
    pending: tuple[int, bytes] | None = None
    for number, raw in iter_jsonl_lines(path):
        if pending is not None:
            yield pending[0], jsonl_value(pending[1], path, pending[0], error)
        pending = (number, raw)
    if pending is not None:
        number, raw = pending
        try:
            value = jsonl_value(raw, path, number, error)
        except InputFileError:
            if tolerate_torn_tail and not raw.endswith(b"\n"):
                log.warning("%s, line %d: cut short (by an interrupted run?); left out", path, number)
                return
            raise
        yield number, value


def jsonl_value(raw: bytes, path: str | Path, number: int, error: type[InputFileError] = InputFileError) -> Any:
    """One JSONL line's value: decoded (:func:`decode_utf8`) and parsed (:func:`parse_json`)."""
    return parse_json(decode_utf8(raw, path, error, line=number), path, line=number, error=error)


def iter_jsonl_objects(
    path: str | Path, error: type[InputFileError] = InputFileError, tolerate_torn_tail: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line; a line that is not a JSON object raises ``error`` naming it."""
    for number, value in iter_jsonl(path, error, tolerate_torn_tail):
        if not isinstance(value, dict):
            raise error(path, f"expected a JSON object, got {json_kind(value)}", line=number)
        yield number, value


def read_jsonl(path: str | Path, tolerate_torn_tail: bool = False) -> list[dict[str, Any]]:
    """Every object of a JSONL file (:func:`iter_jsonl_objects`)."""
    return [row for _, row in iter_jsonl_objects(path, tolerate_torn_tail=tolerate_torn_tail)]


def json_object(text: str, file: str | Path, line: int | None = None) -> dict[str, Any]:
    """One JSON object from text (a request body, one line), parsed strictly; errors name the file and line."""
    value = parse_json(text, file, line=line)
    if not isinstance(value, dict):
        raise InputFileError(file, f"expected a JSON object, got {json_kind(value)}", line=line)
    return value


def json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"
