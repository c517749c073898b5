"""The openai backend against a real `transformers serve` on 127.0.0.1 serving a tiny model,
directly and through a proxy that injects 429s, 500s, timeouts, resets and empty replies."""

from __future__ import annotations

import json

import pytest

from distill.generate import GenerateConfig, generate
from distill.traces import read_traces
from tests.conftest import assert_user_error, read_jsonl, run_cli
from tests.servers import FaultProxy, transformers_serve

SECRET = "sk-distill-test-5up3r-s3cr3t"


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    with transformers_serve(tiny_models["qwen"], tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url


def config(prompts, teacher, out, base_url, **kwargs) -> GenerateConfig:
    # one request at a time: transformers serve seeds torch's global generator per request, so
    # only sequential requests reproduce exactly (which the comparisons with the reference need)
    options = dict(backend="openai", base_url=base_url, n=2, max_tokens=8, retry_backoff=0.01,
                   request_timeout=20.0, concurrency=1)
    options.update(kwargs)
    return GenerateConfig(prompts=str(prompts), teacher=str(teacher), out=str(out), **options)


def completions(path) -> dict[str, tuple[str, str, int]]:
    return {r["id"]: (r["completion"], r["finish_reason"], r["completion_tokens"]) for _, r in read_traces(path)}


@pytest.fixture(scope="module")
def reference(server, tiny_models, tmp_path_factory):
    """A clean run: the ground truth every faulty run must reproduce exactly."""
    from tests.conftest import write_jsonl

    root = tmp_path_factory.mktemp("reference")
    prompts = write_jsonl(root / "p.jsonl", [{"id": f"r{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)}
                                             for i in range(8)])
    out = root / "reference.jsonl"
    summary = generate(config(prompts, tiny_models["qwen"], out, server, n=3))
    assert summary.complete and summary.records == 24
    return prompts, out


def test_cli_generates_through_the_server_and_repeats_requests_for_n(server, tiny_models, reference, tmp_path):
    prompts, reference_out = reference
    out = tmp_path / "t.jsonl"
    result = run_cli("generate", prompts, "--teacher", tiny_models["qwen"], "--out", out, "--backend", "openai",
                     "--base-url", server, "--n", "3", "--max-tokens", "8", "--api-key-env", "DISTILL_TEST_KEY",
                     env={"DISTILL_TEST_KEY": SECRET})
    assert result.returncode == 0, result.stderr
    assert "asking for the other samples one by one" in result.stderr  # transformers serve ignores n
    records = read_jsonl(out)
    assert len(records) == 24 and {r["id"] for r in records} == set(completions(reference_out))
    assert all(r["completion"] and (r["completion_tokens"] == 8 or r["finish_reason"] == "stop") for r in records)
    # the samples of one prompt differ (they are not one sample copied n times)
    assert len({r["completion"] for r in records if r["prompt_id"] == "r0"}) > 1
    # sequential requests with per-sample seeds reproduce the reference run exactly
    again = tmp_path / "again.jsonl"
    result = run_cli("generate", prompts, "--teacher", tiny_models["qwen"], "--out", again, "--backend", "openai",
                     "--base-url", server, "--n", "3", "--max-tokens", "8", "--concurrency", "1")
    assert result.returncode == 0, result.stderr
    assert completions(again) == completions(reference_out)


def test_faults_are_retried_and_nothing_wrong_is_recorded(server, tiny_models, reference, tmp_path):
    prompts, reference_out = reference
    rates = {"429": 0.1, "500": 0.1, "timeout": 0.04, "reset": 0.1, "empty": 0.1}
    with FaultProxy(server, rates, seed=1, hang_s=4.0) as proxy:
        out = tmp_path / "t.jsonl"
        summary = generate(config(prompts, tiny_models["qwen"], out, proxy.base_url, n=3, max_retries=10,
                                  request_timeout=2.0))
    injected = {k: v for k, v in proxy.counts.items() if k != "ok"}
    assert set(injected) == set(rates), injected  # every kind of fault really happened
    assert summary.complete and not summary.failed_prompts
    assert summary.retries == sum(injected.values())
    assert completions(out) == completions(reference_out)


def test_failed_prompts_are_listed_and_a_rerun_picks_them_up(server, tiny_models, reference, tmp_path):
    prompts, reference_out = reference
    out = tmp_path / "t.jsonl"
    with FaultProxy(server, {"500": 0.5}, seed=3) as proxy:
        summary = generate(config(prompts, tiny_models["qwen"], out, proxy.base_url, n=3, max_retries=0))
    assert summary.failed_prompts and not summary.complete
    failed = {f["prompt_id"] for f in summary.failed_prompts}
    assert all("HTTP 500" in f["error"] for f in summary.failed_prompts)
    assert not failed & {r["prompt_id"] for r in read_jsonl(out)}  # nothing partial of a failed prompt
    rerun = generate(config(prompts, tiny_models["qwen"], out, server, n=3))
    assert rerun.complete and rerun.new_records == 3 * len(failed)
    assert completions(out) == completions(reference_out)


def test_n_choices_under_one_usage_are_counted_by_the_tokenizer_loaded_before_any_request(tiny_models):
    """A server that does n but reports one usage for all choices and no token ids (not vLLM: SGLang, most
    hosted APIs): each choice is counted with the tokenizer, loaded before the first request goes out
    (not inside the event loop, where it would hold up every reply in flight)."""
    from transformers import AutoTokenizer

    from distill.backends import GenerationRequest, SamplingParams
    from distill.backends.openai_compat import OpenAIBackend, OpenAIOptions
    from tests.scripted_server import ScriptedChatServer

    texts = ["The answer is 4.", "Four, surely: 2 + 2 = 4.", "<think>\nadd\n</think>\n\n\\boxed{4}"]
    tokenizer_at_request = []

    def script(prompt, call):
        tokenizer_at_request.append(bool(backend._tokenizer))
        return texts

    with ScriptedChatServer(script) as scripted:
        backend = OpenAIBackend("m", OpenAIOptions(base_url=scripted.base_url, tokenizer=str(tiny_models["qwen"])))
        [result] = backend.generate([GenerationRequest("p", [{"role": "user", "content": "2 + 2?"}])],
                                    SamplingParams(n=3, temperature=0.6, top_p=0.95, max_tokens=16, seed=0))
    assert backend.server == "" and tokenizer_at_request == [True]  # /models did not say vLLM
    counts = [len(ids) for ids in AutoTokenizer.from_pretrained(tiny_models["qwen"])(texts, add_special_tokens=False)
              ["input_ids"]]
    assert [s.completion_tokens for s in result.samples] == counts and [s.text for s in result.samples] == texts


def test_reasoning_content_is_folded_back_into_think(server, tiny_models, reference, tmp_path):
    prompts, reference_out = reference
    with FaultProxy(server, {}, reasoning_split=True) as proxy:
        out = tmp_path / "t.jsonl"
        generate(config(prompts, tiny_models["qwen"], out, proxy.base_url, n=3, limit=2))
    raw = completions(reference_out)
    for _, record in read_traces(out):
        reasoning = raw[record["id"]][0]
        assert record["completion"] == f"<think>\n{reasoning.strip(chr(10))}\n</think>\n\nThe answer is \\boxed{{4}}."


def test_the_api_key_is_never_written_or_echoed(server, tiny_models, reference, tmp_path):
    prompts, _ = reference
    out = tmp_path / "run" / "t.jsonl"
    with FaultProxy(server, {"echo-key-400": 0.5}, seed=5) as proxy:
        result = run_cli("-v", "generate", prompts, "--teacher", tiny_models["qwen"], "--out", out, "--backend",
                         "openai", "--base-url", proxy.base_url, "--max-tokens", "8", "--api-key-env",
                         "DISTILL_TEST_KEY", "--max-retries", "0", "--n", "1", "--concurrency", "1",
                         env={"DISTILL_TEST_KEY": SECRET})
    # one request per prompt, one at a time: the seeded proxy fails the same prompts in every run,
    # whether or not the server does n natively
    assert result.returncode == 3, result.stderr  # the prompts that got the 400 failed: a partial run
    summary = (tmp_path / "run" / "t.summary.json").read_text()
    assert "bad request from Bearer ***" in summary  # the server echoed the key; we scrubbed it
    written = [path for path in (tmp_path / "run").rglob("*") if path.is_file()]
    assert written
    for text in [result.stdout, result.stderr, *(p.read_text(errors="replace") for p in written)]:
        assert SECRET not in text


def test_rejected_credentials_and_missing_key_stop_with_one_line(server, tiny_models, reference, tmp_path):
    prompts, _ = reference
    out = tmp_path / "t.jsonl"
    with FaultProxy(server, {"401": 1.0}) as proxy:
        result = run_cli("generate", prompts, "--teacher", tiny_models["qwen"], "--out", out, "--backend", "openai",
                         "--base-url", proxy.base_url, "--api-key-env", "DISTILL_TEST_KEY",
                         env={"DISTILL_TEST_KEY": SECRET})
    assert_user_error(result, "refused the credentials", "HTTP 401")
    assert SECRET not in result.stderr
    result = run_cli("generate", prompts, "--teacher", "m", "--out", out, "--backend", "openai",
                     "--base-url", server, "--api-key-env", "DISTILL_UNSET_VARIABLE")
    assert_user_error(result, "--api-key-env: DISTILL_UNSET_VARIABLE is not set")
    assert_user_error(run_cli("generate", prompts, "--teacher", "m", "--out", out, "--backend", "openai"),
                      "--base-url is required")


def generate_args(prompts, teacher, out, base_url):
    return ["generate", prompts, "--teacher", teacher, "--out", out, "--backend", "openai", "--base-url", base_url,
            "--n", "1", "--max-tokens", "8", "--concurrency", "1", "--max-retries", "1", "--retry-backoff", "0.01"]


def assert_exit(result, status: int, *needles: str) -> str:
    """The summary on stdout, then one `error:` line on stderr naming the failures, and `status`."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(needle in errors[0] for needle in needles), result.stderr
    return errors[0]


def test_a_run_whose_prompts_all_failed_exits_1_and_a_partial_one_3(server, tiny_models, reference, tmp_path):
    prompts, _ = reference
    teacher = tiny_models["qwen"]
    out = tmp_path / "t.jsonl"
    with FaultProxy(server, {"empty": 1.0}) as proxy:
        result = run_cli(*generate_args(prompts, teacher, out, proxy.base_url))
    assert "records           0 (0 new) for 8 prompts" in result.stdout and "FAILED prompts    8" in result.stdout
    assert_exit(result, 1, "8 of 8 prompts failed after their retries", "empty reply", "nothing was produced")
    assert proxy.counts == {"ok": 0, "empty": 16}  # each prompt tried twice (--max-retries 1)

    with FaultProxy(server, {"empty": 0.6}, seed=4) as proxy:
        result = run_cli(*generate_args(prompts, teacher, out, proxy.base_url))
    failed = len(json.loads((tmp_path / "t.summary.json").read_text())["failed_prompts"])
    assert 0 < failed < 8 and len(read_jsonl(out)) == 8 - failed
    assert_exit(result, 3, f"{failed} of 8 prompts failed after their retries", "rerun the same command to retry")
    # a rerun once the server answers retries exactly the failed prompts, and the run is then complete
    result = run_cli(*generate_args(prompts, teacher, out, server))
    assert result.returncode == 0 and not result.stderr.count("error:"), result.stderr
    assert f"records           8 ({failed} new)" in result.stdout


def test_eval_exits_3_when_some_problems_could_not_be_sampled(server, tiny_models, reference, tmp_path):
    prompts, _ = reference
    args = ["eval", "--model", f"qwen={tiny_models['qwen']}", "--data", prompts, "--backend", "openai", "--n", "1", "--max-tokens", "8", "--concurrency", "1", "--max-retries", "0",
            "--workers", "1"]
    with FaultProxy(server, {"empty": 0.5}, seed=4) as proxy:
        result = run_cli(*args, "--out", tmp_path / "results.json", "--base-url", proxy.base_url)
    assert "| qwen" in result.stdout  # the table first
    scores = json.loads((tmp_path / "results.json").read_text())["models"]["qwen"]
    failed = len(scores["failed_prompts"])
    assert 0 < failed < 8 and scores["problems"] == 8 - failed
    assert_exit(result, 3, f"{failed} of 8 prompts failed after their retries", "qwen: ", "rerun the same command")
    with FaultProxy(server, {"empty": 1.0}) as proxy:
        result = run_cli(*args, "--out", tmp_path / "none.json", "--base-url", proxy.base_url)
    assert_exit(result, 1, "8 of 8 prompts failed", "nothing was produced")
