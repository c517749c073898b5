"""Config dataclasses: defaults < YAML recipe < flags, unknown keys named, every field documented."""

from __future__ import annotations

import dataclasses

import pytest

from distill.backends import AUTO, BACKENDS, make_backend
from distill.backends.hf import HFOptions
from distill.backends.openai_compat import OpenAIOptions
from distill.config import build_config, field_docs, recipe_hint
from distill.demo import DemoConfig
from distill.errors import ConfigError
from distill.eval import EvalConfig
from distill.filter import FilterConfig
from distill.generate import GenerateConfig
from distill.options import BackendOptions
from distill.train import TrainConfig
from tests.conftest import assert_user_error, read_jsonl, run_cli

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


def test_a_gpu_recipe_is_adapted_from_the_command_line_with_set_and_unset(tmp_path, tiny_models, prompts_file):
    """A GPU recipe run on a CPU with --backend hf: its vLLM keys come from the YAML, where 'drop --x' could not
    drop them (and max_model_len had no flag to unset it with); the error says how, --set/--unset do it."""
    recipe = tmp_path / "gpu.yaml"
    recipe.write_text(f"teacher: {tiny_models['qwen']}\nbackend: vllm\nn: 4\nmax_tokens: 32768\n"
                      "max_model_len: 34816\ngpu_memory_utilization: 0.92\n")
    out = tmp_path / "t.jsonl"
    args = ["generate", prompts_file, "--config", recipe, "--out", out, "--backend", "hf", "--limit", "2"]
    assert_user_error(run_cli(*args), "--gpu-memory-utilization only applies to --backend vllm",
                      f"remove 'gpu_memory_utilization:' from {recipe} or pass --unset gpu_memory_utilization")
    result = run_cli(*args, "--unset", "gpu_memory_utilization", "--set", "max_model_len=null", "--set", "max-tokens=4",
                     "--set", "n=1")
    assert result.returncode == 0, result.stderr
    records = read_jsonl(out)
    assert len(records) == 2 and all(r["params"]["max_tokens"] == 4 for r in records)
    assert_user_error(run_cli(*args, "--set", "n=2", "--n", "3"), "--set n=2 and --n both give n; keep one")


def test_set_and_unset_layer_over_the_recipe(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("teacher: t\nbackend: vllm\nmax_model_len: 4096\ngpu_memory_utilization: 0.5\nsystem: hi\n")
    cfg = build_config(GenerateConfig, yaml_path=recipe, overrides={"prompts": "p", "out": "o"},
                       set_values=["max_model_len=null", "system=42", "top-p=0.5", "decontaminate=a.jsonl,b.jsonl"],
                       unset=["gpu-memory-utilization"])
    assert cfg.max_model_len is None and cfg.gpu_memory_utilization == 0.9  # null, and back to the default
    assert cfg.system == "42" and cfg.top_p == 0.5 and cfg.decontaminate == ["a.jsonl", "b.jsonl"]
    for kwargs, needle in [({"set_values": ["n=four"]}, "--set n=four: 'n' must be an integer"),
                           ({"set_values": ["n"]}, "--set n: give KEY=VALUE"),
                           ({"set_values": ["temprature=1"]}, "unknown option 'temprature' (did you mean 'temperature'?)"),
                           ({"unset": ["teacher"]}, "--unset teacher: --teacher is required")]:
        with pytest.raises(ConfigError) as info:
            build_config(GenerateConfig, yaml_path=recipe, overrides={"prompts": "p", "out": "o"}, **kwargs)
        assert needle in str(info.value)
    # 'drop --x' says how only where x came from the recipe, not where the command line gave it
    message = "--liger needs a CUDA GPU; drop --liger on this machine"
    recipe.write_text("liger: true\n")
    assert recipe_hint(message, recipe, given=set()) == \
        f"--liger needs a CUDA GPU; remove 'liger:' from {recipe} or pass --unset liger on this machine"
    assert recipe_hint(message, recipe, given={"liger"}) == message


# a value off the default for every backend option (a type's sample, where the field takes any)
OFF_DEFAULT = {int: 2, float: 0.5, str: "X", "dtype": "float16", "vllm_args": "{}", "chat_template_kwargs": "{}"}
BACKEND_FIELDS = [(name, f) for name, (_, options) in BACKENDS.items() for f in dataclasses.fields(options)]


def off_default(f: dataclasses.Field):
    if f.name in OFF_DEFAULT:
        return OFF_DEFAULT[f.name]
    kind = next(t for t in (int, float, str) if t.__name__ in str(f.type))
    return OFF_DEFAULT[kind]


def test_every_backends_options_are_flags_of_the_stages():
    registered = {f for _, f in BACKEND_FIELDS}
    for cfg_cls in (GenerateConfig, EvalConfig):
        assert registered <= set(dataclasses.fields(cfg_cls))  # the same fields, inherited, not copies
    assert all(options in BackendOptions.__mro__ for _, options in BACKENDS.values())


@pytest.mark.parametrize("backend", ["hf", "openai", "vllm", "auto"])
def test_an_option_of_another_backend_is_refused_naming_its_backend(backend):
    chosen = AUTO if backend == "auto" else (backend,)
    foreign = {f.name: f for name, f in BACKEND_FIELDS if name not in chosen and f.name not in
               {g.name for other, g in BACKEND_FIELDS if other in chosen}}
    assert foreign  # every backend has options the others do not read
    base = {"base_url": "http://127.0.0.1:9/v1"} if backend == "openai" else {}
    for name, f in foreign.items():
        with pytest.raises(ConfigError) as info:
            GenerateConfig(prompts="p", out="o", teacher="t", backend=backend, **base, **{name: off_default(f)})
        assert str(info.value).startswith(f"--{name.replace('_', '-')} only applies to --backend ")
        assert f"(got --backend {backend})" in str(info.value)
    # and each of the chosen backend's own options is accepted
    own = {f.name: off_default(f) for name, f in BACKEND_FIELDS if name in chosen}
    GenerateConfig(prompts="p", out="o", teacher="t", backend=backend, **{**own, **base})


def test_each_backend_is_built_from_its_own_options(tiny_models):
    cfg = GenerateConfig(prompts="p", out="o", teacher="t", backend="openai", base_url="http://127.0.0.1:9/v1",
                         concurrency=3, retry_backoff=0.25, n=2)
    backend = make_backend("served-name", cfg)
    assert type(backend.options) is OpenAIOptions
    assert backend.options == OpenAIOptions(base_url="http://127.0.0.1:9/v1", concurrency=3, retry_backoff=0.25)
    cfg = GenerateConfig(prompts="p", out="o", teacher="t", backend="hf", batch_size=3, dtype="float32")
    with make_backend(str(tiny_models["qwen"]), cfg) as backend:
        assert backend.options == HFOptions(batch_size=3, dtype="float32") and backend.name == "hf"
