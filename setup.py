"""Packages: `distill` and its subpackages, and the cli/ folder installed as `distill_cli`.

The command line lives in cli/ (the layout the project fixes) but must not be installed as a top-level
package named `cli`, which would clash with any other project that ships one; pyproject.toml alone
cannot combine a package search with a renamed folder, so the mapping is declared here.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["distill", "distill.*"]), "distill_cli"], package_dir={"distill_cli": "cli"})
