"""Embedded models: random Qwen VL models this project builds locally from configs, each named, built once into the
cache (``$DEEPMEDIX_CACHE`` or ``~/.cache/deepmedix``) and rebuilt when its construction changes.

An :class:`EmbeddedModel` says how to build one (``builder``), where its cached copy lives (``folder``), and which
build it is (``build_version``, written by the builder into ``marker``); :mod:`deepmedix.models.registry` lists them
by name, which is how ``"tiny"`` or ``"small"`` resolve wherever a model is asked for.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deepmedix.io import cache_root


@dataclass(frozen=True)
class EmbeddedModel:
    """A locally built model: its name, how to build it, where its cached copy lives and which build it is."""

    name: str
    builder: Callable[..., Path]  # builder(out_dir, seed=0) writes model, processor and marker; returns out_dir
    folder: str  # the cached copy's folder name under the cache root
    build_version: int  # bumped whenever construction changes, so an older cached copy is rebuilt
    summary: str

    @property
    def marker(self) -> str:
        """The file the builder writes beside the weights, holding at least ``{"version": build_version}``."""
        return f"deepmedix-{self.name}.json"

    def is_complete(self, path: Path) -> bool:
        marker = path / self.marker
        if not (
            (path / "model.safetensors").is_file() and (path / "processor_config.json").is_file() and marker.is_file()
        ):
            return False
        try:
            return json.loads(marker.read_text(encoding="utf-8")).get("version") == self.build_version
        except (OSError, ValueError):
            return False

    def path(self) -> Path:
        """The model's folder, built once into the cache.

        Built in a temporary folder and renamed into place, so parallel workers racing to build it never see a
        half-written model: the loser of the rename discards its copy. A copy built by an older version is replaced.
        """
        final = cache_root() / self.folder
        if self.is_complete(final):
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.name}-build-", dir=final.parent))
        stale = final.parent / f".{self.name}-stale-{os.getpid()}-{tmp.name}"
        try:
            self.builder(tmp)
            if final.exists() and not self.is_complete(final):
                with contextlib.suppress(OSError):  # move the outdated copy aside (another process may have)
                    os.rename(final, stale)
            try:
                os.rename(tmp, final)
            except OSError:  # another process finished first (target exists and is not empty)
                if not self.is_complete(final):
                    raise
        finally:
            for leftover in (tmp, stale):
                if leftover.exists():
                    shutil.rmtree(leftover, ignore_errors=True)
        return final


def write_build_marker(out_dir: Path, name: str, version: int, **details: object) -> None:
    """The marker that tells :meth:`EmbeddedModel.is_complete` which build of model ``name`` a folder holds."""
    (Path(out_dir) / f"deepmedix-{name}.json").write_text(json.dumps({"version": version, **details}), encoding="utf-8")


__all__ = ["EmbeddedModel", "write_build_marker"]
