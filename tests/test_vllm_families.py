"""Hybrid-thinking and harmony teachers on the real vLLM CPU engine and `vllm serve` (issue 26).

`distill generate --chat-template-kwargs '{"thinking": true}'` against a DeepSeek-V3.1-style teacher writes
reasoning traces offline and served (the hf backend: tests/test_chat_template_kwargs.py); a gpt-oss-style
teacher's harmony channels come out of the engine as the canonical trace. One kept engine per teacher
and one server for the module (their start is most of the cost); skipped where vLLM is not installed.
"""

from __future__ import annotations

import json

import pytest

from distill.generate import GenerateConfig, generate
from distill.traces import read_traces
from tests.conftest import in_process_vllm, write_jsonl
from tests.test_harmony import CANONICAL_TEXT, PROBLEM, overfit_harmony_teacher
from tests.test_vllm import ENGINE_ARGS

vllm = pytest.importorskip("vllm")

THINKING = json.dumps({"thinking": True})


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """A V3.1-style teacher (random) and a harmony one (trained to one answer), head size 64, and the kept engine."""
    from distill.tiny import save_tiny

    with in_process_vllm():
        root = tmp_path_factory.mktemp("families")
        yield {"v31": save_tiny(root / "v31", "v31", hidden_size=128, heads=2, kv_heads=1),
               "harmony": overfit_harmony_teacher(root / "harmony")}


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    rows = [{"id": f"h{i}", "problem": f"What is {i} + 2?", "answer": str(i + 2)} for i in range(4)]
    return write_jsonl(tmp_path_factory.mktemp("prompts") / "p.jsonl", rows)


def offline(teacher, prompts, out, **kwargs):
    options = dict(backend="vllm", n=2, max_tokens=24, max_model_len=1024, dtype="float32", vllm_args=ENGINE_ARGS)
    return generate(GenerateConfig(prompts=str(prompts), teacher=str(teacher), out=str(out), **{**options, **kwargs}))


def completions(summary) -> dict[str, str]:
    """id -> completion of a generate run's output."""
    return {r["id"]: r["completion"] for _, r in read_traces(summary.output)}


def test_a_v31_teacher_writes_reasoning_offline_only_when_asked_to_think(teachers, prompts, tmp_path):
    thinking = completions(offline(teachers["v31"], prompts, tmp_path / "on.jsonl", chat_template_kwargs=THINKING))
    assert len(thinking) == 8 and all(text.startswith("<think>") for text in thinking.values())
    # the template's default is thinking off: it closed the think block in the prompt, nothing re-opens it
    plain = completions(offline(teachers["v31"], prompts, tmp_path / "off.jsonl"))
    assert not any(text.startswith("<think>") for text in plain.values())


@pytest.fixture(scope="module")
def served_v31(teachers, tmp_path_factory):
    """`vllm serve` of the V3.1-style teacher with vLLM's DeepSeek-V3 reasoning parser, which splits the
    reasoning off only when the request's chat_template_kwargs turn thinking on."""
    from tests.servers import vllm_serve

    log = tmp_path_factory.mktemp("serve") / "vllm-serve.log"
    with vllm_serve(teachers["v31"], log, "--served-model-name", "v31", "--reasoning-parser", "deepseek_v3",
                    "--dtype", "float32", "--max-model-len", "1024", "--seed", "0", "--no-enable-chunked-prefill",
                    *(f"--{k.replace('_', '-')}={v}" for k, v in json.loads(ENGINE_ARGS).items()
                      if k != "enforce_eager"), "--enforce-eager") as url:
        yield url


def words(text: str) -> list[str]:
    return text.replace("<think>", " ").replace("</think>", " ").split()


def test_a_served_v31_teacher_writes_reasoning_traces_with_the_kwargs(teachers, served_v31, prompts, tmp_path):
    """The server samples with the offline engine's per-sample seeds: each mode's served traces are the
    offline engine's traces of that mode (so the kwargs reached the server's template), the reasoning field
    folded back into the think block in thinking mode."""
    def served(out, kwargs):
        return completions(generate(GenerateConfig(prompts=str(prompts), teacher="v31", out=str(tmp_path / out),
                                                   backend="openai", base_url=served_v31, n=2, max_tokens=24,
                                                   concurrency=4, chat_template_kwargs=kwargs)))

    for mode, kwargs in (("on", THINKING), ("off", json.dumps({"thinking": False}))):
        expected = completions(offline(teachers["v31"], prompts, tmp_path / f"offline-{mode}.jsonl",
                                       chat_template_kwargs=kwargs))
        got = served(f"{mode}.jsonl", kwargs)
        assert set(got) == set(expected) and len(got) == 8
        if mode == "on":  # vLLM's parser drops what comes before a <think> the model writes itself
            expected = {key: text.removeprefix("<think>").partition("<think>")[2] or text.removeprefix("<think>") for key, text in expected.items()}
        assert all(words(got[key]) == words(expected[key]) for key in got), mode
        if mode == "on":  # the parser returned the reasoning in its field; distill folded it back
            assert all(text.startswith("<think>\n") for text in got.values())
    # and the two modes sampled other text (their prompts differ), so the comparison tells them apart
    thinking = {r["id"]: r["completion"] for _, r in read_traces(tmp_path / "on.jsonl")}
    assert any(words(got[key]) != words(thinking[key]) for key in got)


def test_a_harmony_teachers_channels_come_out_of_the_engine_as_the_canonical_trace(teachers, tmp_path):
    """vLLM decodes without special tokens ('analysisTwo plus two is four.assistantfinal…'): the backend reads
    the sample's token ids with the channel markers kept."""
    problem = write_jsonl(tmp_path / "p.jsonl", [{"id": "q", "problem": PROBLEM, "answer": "4"}])
    summary = offline(teachers["harmony"], problem, tmp_path / "t.jsonl", n=1, temperature=0.0, max_tokens=64)
    [record] = [r for _, r in read_traces(summary.output)]
    assert record["completion"] == CANONICAL_TEXT and record["finish_reason"] == "stop"
