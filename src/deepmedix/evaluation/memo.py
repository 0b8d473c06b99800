"""Each text through a labelling model once: CheXbert labels and RadGraph annotations kept per (model, text).

Evaluating several models on one benchmark then labels its references once, and scoring a prediction file again
labels nothing. The store is a SQLite file (``labels.sqlite``) under ``--cache-dir`` (default ``$DEEPMEDIX_CACHE``
or ``~/.cache/deepmedix``); keys are sha256 of (kind, the model files' fingerprint, text), so a changed checkpoint
never reuses old labels. Values are what the model returned: label classes, or a RadGraph annotation — which holds
the report's words, so the file is as sensitive as the reports themselves.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from deepmedix.endpoints import ResponseCache, content_key
from deepmedix.errors import UserError
from deepmedix.io import sha256_file

CACHE_FILE = "labels.sqlite"
Label = TypeVar("Label")  # what the model returns for one text


def open_label_cache(cache_dir: str | Path) -> ResponseCache:
    path = Path(cache_dir) / CACHE_FILE
    try:
        return ResponseCache(path)
    except (OSError, sqlite3.Error) as e:
        raise UserError(f"{path}: cannot open the label store ({e}); pass --cache-dir DIR or --no-cache") from e


def memoized(
    compute: Callable[[list[str]], Sequence[Label]],
    texts: Sequence[str],
    cache: ResponseCache | None,
    namespace: Sequence[Any],
) -> list[Label]:
    """``compute(texts)`` with every text already in ``cache`` under ``namespace`` served from it; the rest are
    computed in one call (each distinct text once) and stored."""
    if cache is None:
        return list(compute(list(texts)))
    keys = {t: content_key(*namespace, t) for t in dict.fromkeys(texts)}
    found = cache.get_many(list(keys.values()))
    missing = [t for t, k in keys.items() if k not in found]
    if missing:
        values = list(compute(missing))
        if len(values) != len(missing):
            raise RuntimeError(f"{namespace[0]}: {len(values)} results for {len(missing)} texts")
        new = {keys[t]: v for t, v in zip(missing, values, strict=True)}
        cache.put_many(new)
        found.update(new)
    return [found[keys[t]] for t in texts]


def folder_fingerprint(folder: str | Path) -> str:
    """sha256 over every file below ``folder`` (relative path and contents): what identifies a model folder."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return content_key([(p.relative_to(folder).as_posix(), sha256_file(p)) for p in files])
