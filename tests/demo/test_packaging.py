"""A built wheel carries the recipes, so `deepmedix demo` works from a plain `pip install` without a source tree."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_carries_recipes_and_the_demo_finds_them(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("src", "recipes"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
        ],
        check=True,
        cwd=tmp_path,
    )
    wheel = next((tmp_path / "dist").glob("deepmedix-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for recipe in sorted((ROOT / "recipes").rglob("*.yaml")):
        assert f"deepmedix/recipes/{recipe.relative_to(ROOT / 'recipes').as_posix()}" in names

    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    found = subprocess.run(
        [sys.executable, "-c", "from deepmedix.demo.pipeline import _packaged_recipes; print(_packaged_recipes())"],
        env={"PYTHONPATH": str(target), "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert Path(found) == target / "deepmedix" / "recipes" / "small"
    assert (Path(found) / "grpo.yaml").read_text() == (ROOT / "recipes" / "small" / "grpo.yaml").read_text()
