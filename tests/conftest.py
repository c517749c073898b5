"""Shared fixtures: tiny models made on the spot (no Hub), prompt files, a CLI runner."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One torch thread per process (inherited by every CLI subprocess a test starts): the models here are tiny,
# so a second thread only adds OpenMP spin-waiting, and with tests running side by side (pytest -n 2) two
# threads per process on two cores made a step several times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


VLLM_IN_PROCESS = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
"""vLLM's engine in the test's own process (no engine-core subprocess); CLI subprocesses take it as env."""


@contextlib.contextmanager
def in_process_vllm():
    """Within the block vLLM runs its engine in this process and keeps it between generate() calls
    (keep_engine: one engine start for a test module); the environment is as it was afterwards."""
    from distill.backends.vllm_engine import keep_engine

    with pytest.MonkeyPatch.context() as patch:
        for name, value in VLLM_IN_PROCESS.items():
            patch.setenv(name, value)
        with keep_engine():
            yield


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random models with the Qwen2.5, Llama-3 and DeepSeek-R1-Distill chat templates."""
    from distill.tiny import save_tiny

    root = tmp_path_factory.mktemp("models")
    return {family: save_tiny(root / family, family) for family in ("qwen", "llama", "r1")}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def prompts_file(tmp_path) -> Path:
    rows = [{"id": f"q{i}", "problem": f"What is {i} + {i + 1}?", "answer": str(2 * i + 1), "level": i % 3}
            for i in range(6)]
    return write_jsonl(tmp_path / "prompts.jsonl", rows)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `distill` command line in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd or ROOT)


def assert_user_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit 1, one `error:` line on stderr naming what is wrong, and no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
