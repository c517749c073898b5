"""notebooks/walkthrough.ipynb runs top to bottom in its tiny offline mode (DISTILL_NOTEBOOK_TINY=1).

The GPU mode loads the same library functions with Hub models; what differs is a block of settings,
so a notebook that executes here has every call, argument name and plot path right.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


def test_the_walkthrough_executes_in_tiny_mode(tmp_path, monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager

    # the kernel is this interpreter (the venv the tests run in), whatever kernels are installed
    spec_dir = tmp_path / "kernels" / "distill-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "distill tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("DISTILL_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("DISTILL_NOTEBOOK_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "distill-test" in KernelSpecManager().find_kernel_specs()

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, kernel_name="distill-test", timeout=180,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=dict(os.environ))

    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.get("output_type") == "error"]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) >= 6  # three filter plots, the loss curve PNG, the inline loss plot, GRPO's reward curves
    tables = [out["data"]["text/markdown"] for out in outputs if "text/markdown" in out.get("data", {})]
    final = tables[-1]
    for model in ("teacher", "student-before", "student-after", "student-grpo"):
        assert f"| {model}" in final
    run = tmp_path / "run"
    for path in ("traces.jsonl", "kept.jsonl", "kept.report.json", "eval/before.json", "eval/after.json",
                 "student/adapter_config.json", "student/merged/config.json", "student/loss.png",
                 "student-grpo/adapter_config.json", "student-grpo/merged/config.json", "student-grpo/rewards.png",
                 "eval/after-rl.json"):
        assert (run / path).is_file(), path
