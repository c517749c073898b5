"""The API key given through --api-key-env never leaves the process: not in traces, summaries, reports,
checkpoints, the model card, logs or error messages, across generate → filter → train → eval.

The key is in the environment of every command (as in a user's shell), a proxy in front of a real
`transformers serve` echoes it back in some error replies, and every byte each run writes is searched.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_user_error, run_cli, write_jsonl
from tests.servers import FaultProxy, transformers_serve

SECRET = "sk-distill-secret-7e1f9a2b4c6d8e0f"
KEY_ENV = {"DISTILL_TEST_KEY": SECRET}


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    with transformers_serve(tiny_models["qwen"], tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url


def test_the_key_appears_in_no_file_log_or_error(server, tiny_models, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # every answer is 4: the proxy answers like DeepSeek's API (reasoning apart, answer "\boxed{4}"), so the
    # filter keeps records and the student has something to train on
    prompts = write_jsonl(run / "prompts.jsonl", [{"id": f"p{i}", "problem": f"What is {i} + {4 - i}?",
                                                   "answer": "4"} for i in range(6)])
    api = ["--backend", "openai", "--api-key-env", "DISTILL_TEST_KEY", "--max-tokens", "8", "--n", "2"]
    results = []

    def distill(*args, env=KEY_ENV):
        result = run_cli("-v", *args, env=env)
        results.append(result)
        return result

    with FaultProxy(server, {"echo-key-400": 0.4}, seed=2, reasoning_split=True) as proxy:
        def generate(out, *extra):
            return ["generate", prompts, "--teacher", tiny_models["qwen"], "--out", out, "--base-url", proxy.base_url,
                    "--max-retries", "0", *api, *extra]

        traces = run / "traces.jsonl"
        first = distill(*generate(traces))
        summary = (run / "traces.summary.json").read_text()
        assert "bad request from Bearer ***" in summary  # the server echoed the key: it was sent, and scrubbed
        assert first.returncode == 3, first.stderr  # those prompts failed: a partial run
        proxy.rates = {}
        assert distill(*generate(traces)).returncode == 0  # the rerun picks up the failed prompts

        kept = run / "kept.jsonl"
        result = distill("filter", traces, "--out", kept, "--checks", "format,correctness", "--workers", "1")
        assert result.returncode == 0, result.stderr
        assert kept.stat().st_size > 0
        result = distill("train", kept, "--student", tiny_models["qwen"], "--out", run / "student", "--max-seq-len",
                         "512", "--batch-tokens", "600", "--epochs", "2", "--save-steps", "1", "--keep-checkpoints",
                         "1")
        assert result.returncode == 0, result.stderr

        proxy.rates = {"echo-key-400": 0.3}
        result = distill("eval", "--model", f"qwen={tiny_models['qwen']}", "--data", prompts, "--out",
                         run / "results.json", "--base-url", proxy.base_url, "--max-retries", "4", "--workers", "1",
                         *api)
        failed = json.loads((run / "results.json").read_text())["models"]["qwen"]["failed_prompts"]
        assert result.returncode == (3 if failed else 0), result.stderr

        # failures: credentials refused, with the traceback shown (DISTILL_DEBUG=1), and a key pasted in
        proxy.rates = {"401": 1.0}
        refused = distill(*generate(run / "refused.jsonl"), env={**KEY_ENV, "DISTILL_DEBUG": "1"})
        assert refused.returncode == 1 and "Traceback" in refused.stderr and "HTTP 401" in refused.stderr
        pasted = distill(*generate(run / "pasted.jsonl", "--api-key-env", SECRET))
        assert_user_error(pasted, "--api-key-env takes the name of an environment variable")

    written = [path for path in run.rglob("*") if path.is_file()]
    names = {path.relative_to(run).as_posix() for path in written}
    # what each stage writes (and so what was searched): traces, summaries, report, model, card, results
    assert {"traces.jsonl", "traces.summary.json", "kept.report.json", "student/model.safetensors",
            "student/README.md", "student/train_summary.json", "results.json", "results.problems.jsonl",
            "results.qwen.traces.jsonl"} <= names, sorted(names)
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), f"the key leaked into {path}"
    for result in results:
        assert SECRET not in result.stdout and SECRET not in result.stderr, result.args


@pytest.mark.parametrize("offset", range(0, 260, 7))
def test_an_error_message_is_scrubbed_before_it_is_cut(offset, monkeypatch):
    """A key anywhere in a server's error text, across the 200-character cut, never survives in part."""
    from distill.backends.openai_compat import OpenAIBackend, OpenAIOptions

    monkeypatch.setenv("DISTILL_TEST_KEY", SECRET)
    backend = OpenAIBackend("m", OpenAIOptions(base_url="http://127.0.0.1:9/v1", api_key_env="DISTILL_TEST_KEY"))

    refused = Exception()
    refused.body = {"error": {"message": "x" * offset + f"invalid key Bearer {SECRET} for this model" + "y" * 40}}
    text = backend.error_text(refused)
    assert len(text) <= 200
    assert not any(SECRET[i:i + 6] in text for i in range(len(SECRET) - 5)), text


def test_a_key_shaped_variable_name_is_not_echoed(monkeypatch):
    """'hf_…' passes as a variable name; when no such variable is set, the error does not repeat it."""
    from distill.backends.openai_compat import OpenAIBackend, OpenAIOptions
    from distill.errors import ConfigError

    pasted = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"
    monkeypatch.delenv(pasted, raising=False)
    with pytest.raises(ConfigError) as caught:
        OpenAIBackend("m", OpenAIOptions(base_url="http://127.0.0.1:9/v1", api_key_env=pasted))
    assert pasted[:6] not in str(caught.value) and "--api-key-env" in str(caught.value)
    monkeypatch.delenv("MY_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="--api-key-env: MY_API_KEY is not set"):
        OpenAIBackend("m", OpenAIOptions(base_url="http://127.0.0.1:9/v1", api_key_env="MY_API_KEY"))
