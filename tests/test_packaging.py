"""The installed layout: `distill` and `distill_cli`, never a top-level `cli` package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from tests.conftest import ROOT


def test_wheel_installs_the_cli_as_distill_cli_not_cli(tmp_path):
    # built from a copy: a build/ folder left in the checkout by an earlier build would leak into the wheel
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source)
    for name in ("distill", "cli"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(tmp_path / "wheels")], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "wheels").glob("distill-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if "/" in name and ".dist-info" not in name}
    assert top_level == {"distill", "distill_cli"}, top_level
    assert "distill_cli/main.py" in names and "distill/filter/run.py" in names
    assert "distill/judge_prompts/reference-v1.txt" in names and "distill/judge_prompts/rubric-v1.txt" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "distill = distill_cli.main:main" in entry_points


def test_python_dash_m_distill_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "distill", "--version"], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("distill ")
