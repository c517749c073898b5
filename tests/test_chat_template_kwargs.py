"""--chat-template-kwargs (issue 26 item 1): a hybrid-thinking teacher's mode is chosen, not guessed.

A DeepSeek-V3.1-style template (distill.tiny.V31_TEMPLATE) closes an empty think block unless
`thinking` is true: without the kwargs distill would collect no reasoning from it.
"""

from __future__ import annotations

import json

import pytest

from distill.chat import render_prompt
from distill.errors import ConfigError
from distill.generate import GenerateConfig
from tests.conftest import assert_user_error, read_jsonl, run_cli, write_jsonl
from tests.scripted_server import ScriptedChatServer


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory):
    from distill.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("models") / "v31", "v31")


@pytest.fixture
def prompts(tmp_path):
    return write_jsonl(tmp_path / "p.jsonl", [{"id": f"q{i}", "problem": f"What is {i} + 1?"} for i in range(3)])


def test_the_kwargs_reach_the_template(hybrid):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hybrid)
    messages = [{"role": "user", "content": "2 + 2?"}]
    assert render_prompt(tokenizer, messages).endswith("<｜Assistant｜></think>")
    assert render_prompt(tokenizer, messages, {"thinking": True}).endswith("<｜Assistant｜><think>")


def test_generate_collects_reasoning_in_thinking_mode_and_refuses_another_mode_on_resume(hybrid, prompts, tmp_path):
    out = tmp_path / "t.jsonl"
    args = ["generate", prompts, "--teacher", hybrid, "--out", out, "--backend", "hf", "--n", "1",
            "--max-tokens", "6", "--limit", "2"]
    result = run_cli(*args, "--chat-template-kwargs", '{"thinking": true}')
    assert result.returncode == 0, result.stderr
    # the template's pre-filled <think> is part of the reasoning: every trace is an open or closed think block
    assert all(r["completion"].startswith("<think>") for r in read_jsonl(out))
    assert_user_error(run_cli(*[a for a in args if a != "2" and a != "--limit"], "--chat-template-kwargs",
                              '{"thinking": false}'), "--chat-template-kwargs", "other settings")


def test_a_kwarg_the_template_never_reads_is_named_in_a_warning(tiny_models, prompts, tmp_path):
    result = run_cli("generate", prompts, "--teacher", tiny_models["qwen"], "--out", tmp_path / "t.jsonl",
                     "--backend", "hf", "--n", "1", "--max-tokens", "2", "--chat-template-kwargs",
                     '{"enable_thinking": true}')
    assert result.returncode == 0, result.stderr
    assert "never reads 'enable_thinking'" in result.stderr


@pytest.mark.parametrize("value", ['[1, 2]', "thinking=true", '"x"'])
def test_kwargs_that_are_not_a_json_object_are_refused(value):
    with pytest.raises(ConfigError, match="--chat-template-kwargs must be a JSON object"):
        GenerateConfig(prompts="p.jsonl", teacher="t", out="o.jsonl", chat_template_kwargs=value)


def test_a_yaml_mapping_is_taken_as_the_json_object(tmp_path):
    from distill.config import build_config

    recipe = tmp_path / "r.yaml"
    recipe.write_text("chat_template_kwargs:\n  enable_thinking: true\n")
    cfg = build_config(GenerateConfig, yaml_path=recipe, overrides={"prompts": "p.jsonl", "teacher": "t",
                                                                    "out": "o.jsonl"})
    assert cfg.template_kwargs == {"enable_thinking": True}


def test_the_openai_backend_sends_them_as_chat_template_kwargs(prompts, tmp_path):
    with ScriptedChatServer(lambda prompt, call: "<think>\nadd\n</think>\n\n2") as server:
        result = run_cli("generate", prompts, "--teacher", "m", "--backend", "openai", "--base-url", server.base_url,
                         "--out", tmp_path / "t.jsonl", "--n", "1", "--tokenizer", "none", "--chat-template-kwargs",
                         '{"thinking": true}')
        assert result.returncode == 0, result.stderr
        assert server.bodies and all(b.get("chat_template_kwargs") == {"thinking": True} for b in server.bodies)


def test_the_judge_takes_its_own(tmp_path):
    from distill.judge import JudgeOptions

    with ScriptedChatServer(lambda prompt, call: "VERDICT: CORRECT\nREASON: ok") as server:
        judge = JudgeOptions(judge="m", judge_base_url=server.base_url,
                             judge_chat_template_kwargs=json.dumps({"enable_thinking": False})).make_judge(None)
        assert server.bodies[-1]["chat_template_kwargs"] == {"enable_thinking": False}
        assert judge.template_kwargs
