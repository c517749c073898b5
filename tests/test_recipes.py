"""Every recipe loads into its stage's config, and starts with the command that runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.config import build_config, required_fields
from distill.eval import EvalConfig
from distill.filter import FilterConfig
from distill.generate import GenerateConfig
from distill.rl import RLConfig
from distill.train import TrainConfig

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
STAGES = {"generate": GenerateConfig, "filter": FilterConfig, "train": TrainConfig, "eval": EvalConfig,
          "rl": RLConfig}
PLACEHOLDERS = {"prompts": "prompts.jsonl", "out": "out.jsonl", "teacher": "teacher", "kept": "kept.jsonl",
                "student": "student", "traces": "traces.jsonl", "model": ["model"], "data": "bench.jsonl"}


def stage_recipes():
    return sorted(p for p in RECIPES.glob("*/*.yaml") if p.parent.name in STAGES)


def test_every_stage_directory_is_known():
    unknown = {p.parent.name for p in RECIPES.glob("*/*.yaml")} - set(STAGES) - {"accelerate"}
    assert not unknown


@pytest.mark.parametrize("recipe", stage_recipes(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_loads_and_starts_with_its_command(recipe):
    cfg_cls = STAGES[recipe.parent.name]
    first = recipe.read_text().splitlines()[0]
    assert first.startswith("#") and f"distill {recipe.parent.name}" in first
    assert f"recipes/{recipe.parent.name}/{recipe.name}" in first
    overrides = {name: PLACEHOLDERS.get(name, "x") for name in required_fields(cfg_cls)}
    from distill.config import read_yaml

    overrides = {k: v for k, v in overrides.items() if k not in read_yaml(recipe)}
    build_config(cfg_cls, yaml_path=recipe, overrides=overrides)


@pytest.mark.parametrize("config", sorted(RECIPES.glob("accelerate/*.yaml")), ids=lambda p: p.name)
def test_accelerate_config_loads_with_accelerates_own_launcher(config, monkeypatch):
    """Each launch config parses with `accelerate launch`'s own validation, names only options it
    knows, and its first line launches a train recipe that exists."""
    from accelerate.commands.launch import (
        _validate_launch_command,
        launch_command_parser,
        prepare_multi_gpu_env,
    )

    first = config.read_text().splitlines()[0]
    assert first.startswith(f"# accelerate launch --config_file recipes/accelerate/{config.name} ")
    recipe = first.split("distill train --config ", 1)[1].split()[0]
    assert (RECIPES.parent / recipe).is_file()
    parser = launch_command_parser()
    known = {action.dest for action in parser._actions}
    args, defaults, _ = _validate_launch_command(parser.parse_args(["--config_file", str(config), "train.py"]))
    sections = {"FSDP": defaults.fsdp_config, "DEEPSPEED": defaults.deepspeed_config}
    kind = defaults.distributed_type.value
    assert sections.get(kind)
    assert set(sections[kind]) <= known, set(sections[kind]) - known
    assert defaults.mixed_precision == "bf16"
    if kind == "FSDP":
        assert args.use_fsdp and str(args.fsdp_version) == "2"
        assert defaults.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # one safetensors file at the end
        # the environment accelerate hands the workers builds a valid FSDP2 plugin
        from accelerate.utils import FullyShardedDataParallelPlugin

        for key, value in prepare_multi_gpu_env(args).items():
            if key.startswith(("FSDP_", "ACCELERATE_")):
                monkeypatch.setenv(key, value)
        plugin = FullyShardedDataParallelPlugin()
        assert plugin.fsdp_version == 2 and plugin.activation_checkpointing
    else:
        assert args.use_deepspeed and int(defaults.deepspeed_config["zero_stage"]) == 3


def test_the_model_family_recipes_set_what_their_family_needs():
    """Issue 26: Qwen3 students at 1.7B, 4B and 8B with every method, and the teachers of the current families
    with the settings they cannot go without (a DeepSeek-V3.1 teacher writes no reasoning unless asked to
    think; Qwen3-235B-Thinking needs the 8 GPUs of a node)."""
    def load(path):
        from distill.config import read_yaml

        stage = STAGES[path.parent.name]
        overrides = {name: PLACEHOLDERS.get(name, "x") for name in required_fields(stage) if name not in read_yaml(path)}
        return build_config(stage, yaml_path=path, overrides=overrides)

    students = {p.name: load(p) for p in RECIPES.glob("train/qwen3-*.yaml")}
    assert {cfg.method for cfg in students.values()} == {"full", "lora", "qlora"}
    assert {cfg.student for cfg in students.values()} == {"Qwen/Qwen3-1.7B", "Qwen/Qwen3-4B", "Qwen/Qwen3-8B"}
    assert all(cfg.method == "qlora" for name, cfg in students.items() if "24gb" in name)
    v31 = load(RECIPES / "generate/deepseek-v3.1-served.yaml")
    assert v31.template_kwargs == {"thinking": True} and v31.backend == "openai"
    qwen3 = load(RECIPES / "generate/qwen3-235b-a22b-thinking-tp8.yaml")
    assert qwen3.backend == "vllm" and qwen3.tensor_parallel_size == 8
    assert qwen3.max_model_len >= qwen3.max_tokens + 1024  # room for the prompt
    offline, served = (load(RECIPES / f"generate/gpt-oss-120b-{kind}.yaml") for kind in ("1gpu", "served"))
    assert offline.backend == "vllm" and offline.template_kwargs == {"reasoning_effort": "high"}
    assert served.backend == "openai" and offline.teacher == served.teacher == "openai/gpt-oss-120b"
