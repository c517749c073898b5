"""The vLLM backend, end to end on a CUDA GPU (skipped elsewhere: vLLM does not run on a CPU).

Run on the GPU machine with vllm installed: python -m pytest -q -m gpu tests/test_gpu_vllm.py
(benchmarks/gpu/run_suite.sh test-vllm does, with the carried wheels).
"""

from __future__ import annotations

import pytest

from distill.generate import GenerateConfig, generate
from distill.traces import read_traces
from tests.conftest import read_jsonl, write_jsonl

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def vllm_teacher(tmp_path_factory):
    pytest.importorskip("vllm")
    from distill.tiny import save_tiny

    # head_dim 64: the smallest size every vLLM attention backend accepts
    return save_tiny(tmp_path_factory.mktemp("vllm") / "r1", "r1", hidden_size=256, heads=4, kv_heads=2, layers=2)


@pytest.fixture(autouse=True)
def batch_invariant_vllm(monkeypatch):
    # vLLM reproduces a seeded sample across different batchings only in its batch-invariant mode
    # (docs: "Reproducibility", "Batch Invariance"): without it a batch of another size may take other
    # kernels, and a last-bit difference in the logits can flip a sampled token.
    monkeypatch.setenv("VLLM_BATCH_INVARIANT", "1")
    # FlashInfer's sampler would be JIT-compiled with nvcc on first use; the torch sampler needs nothing
    monkeypatch.setenv("VLLM_USE_FLASHINFER_SAMPLER", "0")


def run(prompts, teacher, out, **kwargs):
    # eager mode: each generate() builds an engine, and compilation plus CUDA-graph capture would cost
    # ~30 s apiece for a 2-layer model; the backend's logic is the same either way
    options = dict(backend="vllm", n=3, max_tokens=64, gpu_memory_utilization=0.3, max_model_len=1024,
                   max_inflight=4, vllm_args='{"enforce_eager": true}')
    options.update(kwargs)
    return generate(GenerateConfig(prompts=str(prompts), teacher=str(teacher), out=str(out), **options))


def test_vllm_backend_writes_whole_reasoning_resumes_and_reproduces(tmp_path, vllm_teacher):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": f"v{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)}
                                                 for i in range(12)])
    out = tmp_path / "t.jsonl"
    first = run(prompts, vllm_teacher, out, limit=5)  # a partial run, then the rest on resume
    assert first.records == 15 and first.backend == "vllm"
    summary = run(prompts, vllm_teacher, out)
    assert summary.complete and summary.records == 36 and summary.new_records == 21
    records = {r["id"]: r for _, r in read_traces(out)}
    assert set(records) == {f"v{i}:{s}" for i in range(12) for s in range(3)}
    for record in records.values():
        # the R1-Distill template pre-fills '<think>\n': the stored completion still starts with it
        assert record["completion"].startswith("<think>\n")
        assert record["finish_reason"] in ("stop", "length")
        assert 1 <= record["completion_tokens"] <= 64
        assert record["prompt_tokens"] > 0
    # per-prompt seeds: an independent run reproduces every sample, whatever the batching
    again = run(prompts, vllm_teacher, tmp_path / "again.jsonl", max_inflight=64)
    assert {r["id"]: r["completion"] for r in read_jsonl(again.output)} == \
        {k: r["completion"] for k, r in records.items()}


def test_auto_picks_vllm_on_a_gpu(tmp_path, vllm_teacher):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"problem": "1+1?"}])
    assert run(prompts, vllm_teacher, tmp_path / "t.jsonl", backend="auto", n=1).backend == "vllm"
