"""Installs the top-level ``recipes/`` as ``deepmedix/recipes`` in a built wheel, so that ``deepmedix demo`` finds
its tiny recipes without a source tree (setuptools has no declarative way to place a folder outside ``src/``)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithRecipes(build_py):
    def run(self) -> None:
        super().run()
        recipes = Path(__file__).resolve().parent / "recipes"
        if recipes.is_dir():
            self.copy_tree(str(recipes), str(Path(self.build_lib) / "deepmedix" / "recipes"))


setup(cmdclass={"build_py": BuildPyWithRecipes})
