"""Every recipe loads into its stage's config, and starts with the command that runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.config import build_config, required_fields
from distill.filter import FilterConfig
from distill.generate import GenerateConfig

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
STAGES = {"generate": GenerateConfig, "filter": FilterConfig}
PLACEHOLDERS = {"prompts": "prompts.jsonl", "out": "out.jsonl", "teacher": "teacher", "kept": "kept.jsonl",
                "student": "student", "traces": "traces.jsonl"}


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

