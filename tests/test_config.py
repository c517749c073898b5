"""Config dataclasses: defaults < YAML recipe < flags, unknown keys named, every field documented."""

from __future__ import annotations

import dataclasses

import pytest

from distill.config import build_config, field_docs
from distill.demo import DemoConfig
from distill.errors import ConfigError
from distill.eval import EvalConfig
from distill.filter import FilterConfig
from distill.generate import GenerateConfig
from distill.train import TrainConfig
from tests.conftest import assert_user_error, run_cli

CONFIGS = [GenerateConfig, FilterConfig, TrainConfig, EvalConfig, DemoConfig]


def test_precedence_defaults_then_yaml_then_flags(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("teacher: from-yaml\nn: 8\ntemperature: 0.7\nmax-tokens: 1024\n")
    cfg = build_config(GenerateConfig, yaml_path=recipe,
                       overrides={"prompts": "p.jsonl", "out": "o.jsonl", "n": 2, "temperature": None})
    assert cfg.teacher == "from-yaml"          # YAML over default
    assert cfg.n == 2                          # flag over YAML
    assert cfg.temperature == 0.7              # flag not given: YAML stays
    assert cfg.max_tokens == 1024              # dashed YAML keys are accepted
    assert cfg.top_p == 0.95                   # default


def test_unknown_yaml_key_is_named_with_a_suggestion(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("teacher: t\ntemprature: 0.5\n")
    with pytest.raises(ConfigError, match=r"unknown key 'temprature' \(did you mean 'temperature'\?\)"):
        build_config(GenerateConfig, yaml_path=recipe, overrides={"prompts": "p", "out": "o"})


def test_wrong_type_and_bad_yaml_name_the_key_and_line(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("teacher: t\nn: four\n")
    with pytest.raises(ConfigError, match="key 'n' must be an integer, got 'four'"):
        build_config(GenerateConfig, yaml_path=recipe, overrides={"prompts": "p", "out": "o"})
    recipe.write_text("teacher: t\nn: [1,\n")
    with pytest.raises(ConfigError, match=r"r.yaml:\d+: .*fix the YAML syntax"):
        build_config(GenerateConfig, yaml_path=recipe)
    recipe.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        build_config(GenerateConfig, yaml_path=recipe)


def test_missing_required_and_out_of_range_name_the_flag():
    with pytest.raises(ConfigError, match="missing required option --teacher"):
        build_config(GenerateConfig, overrides={"prompts": "p", "out": "o"})
    with pytest.raises(ConfigError, match="--temperature must be ≥ 0"):
        build_config(GenerateConfig, overrides={"prompts": "p", "out": "o", "teacher": "t", "temperature": -1.0})
    with pytest.raises(ConfigError, match="--backend must be one of auto, vllm, openai, hf"):
        GenerateConfig(prompts="p", out="o", teacher="t", backend="tgi")
    with pytest.raises(ConfigError, match="--base-url is required with --backend openai"):
        GenerateConfig(prompts="p", out="o", teacher="t", backend="openai")
    with pytest.raises(ConfigError, match="--shard must look like I/N"):
        GenerateConfig(prompts="p", out="o", teacher="t", shard="3")
    with pytest.raises(ConfigError, match=r"--shard 4/4: need 0 ≤ I < N"):
        GenerateConfig(prompts="p", out="o", teacher="t", shard="4/4")


@pytest.mark.parametrize("cfg_cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_field_has_a_docstring(cfg_cls):
    docs = field_docs(cfg_cls)
    undocumented = [f.name for f in dataclasses.fields(cfg_cls) if f.init and not docs.get(f.name)]
    assert undocumented == []


def test_cli_flags_override_the_recipe_and_unknown_keys_exit_1(tmp_path, tiny_models, prompts_file):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"teacher: {tiny_models['qwen']}\nbackend: hf\nn: 3\nmax_tokens: 4\n")
    out = tmp_path / "t.jsonl"
    result = run_cli("generate", prompts_file, "--out", out, "--config", recipe, "--n", "1", "--limit", "2")
    assert result.returncode == 0, result.stderr
    assert len(out.read_text().splitlines()) == 2  # n=1 from the flag, not 3 from the recipe
    recipe.write_text("teacher: t\nbakend: hf\n")
    assert_user_error(run_cli("generate", prompts_file, "--out", out, "--config", recipe),
                      "unknown key 'bakend'", "did you mean 'backend'")
