"""Turn a stage's config dataclass into a typer command.

The flags, their help text and the YAML schema all come from the dataclass (its
fields and the docstring under each), so they cannot drift apart. Every flag
defaults to None, meaning "not given": build_config then layers defaults < YAML
recipe < --set KEY=VALUE / --unset KEY < the flags actually given.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import sys
import types
import typing
from collections.abc import Callable, Collection
from typing import Any, Optional

import typer

from distill.config import build_config, field_docs, field_types, flag, recipe_hint, required_fields
from distill.errors import DistillError

log = logging.getLogger("distill")


def _cli_type(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _cli_type(inner[0])
    if origin in (list, tuple):
        return Optional[list[str]]  # noqa: UP045 - typer needs typing.Optional here
    return Optional[tp]  # noqa: UP045


def _default_text(cfg_cls: type, name: str) -> str:
    for f in dataclasses.fields(cfg_cls):
        if f.name == name:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                return "required"
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if default is None or default == "" or default == [] or default == ():
                return ""
            if isinstance(default, (list, tuple)):
                default = ",".join(default)
            return f"default: {default}"
    return ""


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def run_stage(action: Callable[[], Any], *, recipe: str | None = None, given: Collection[str] = ()) -> Any:
    """Run library code, turning a DistillError into one line on stderr and its exit status (1).

    `recipe` (the --config YAML) and `given` (the fields set on the command line): an error that asks to
    'drop --x' where x came from the recipe says how (remove the key, or --unset it)."""
    try:
        return action()
    except DistillError as exc:
        if os.environ.get("DISTILL_DEBUG"):
            raise
        message = str(exc) if recipe is None else recipe_hint(str(exc), recipe, given)
        raise fail(message.replace("\n", " "), exc.exit_code) from None
    except KeyboardInterrupt:
        raise fail("interrupted; rerun the same command to resume where it stopped", 130) from None
    finally:
        _end_process_group()


def _end_process_group() -> None:
    """Tear down torch.distributed (a run under `accelerate launch`) before the interpreter exits: gloo's
    threads, left to the exit, can abort a worker that finished ("terminate called without an active
    exception")."""
    parallel_state = sys.modules.get("vllm.distributed.parallel_state")
    if parallel_state is not None:
        # vLLM's own groups first: its engine's finalizer destroys them after this function otherwise, on a
        # default group that is gone ("ValueError: Invalid process group specified" after a finished run)
        try:
            parallel_state.destroy_model_parallel()
            parallel_state.destroy_distributed_environment()
        except Exception:
            log.debug("vLLM's process groups could not be torn down", exc_info=True)
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _panel_of(cfg_cls: type) -> dict[str, str]:
    """Field -> help panel: the stage's own fields first ('Options'), then each shared option group's."""
    panels: dict[str, str] = {}
    for klass in cfg_cls.__mro__:
        if not dataclasses.is_dataclass(klass):
            continue
        title = "Options" if klass is cfg_cls else getattr(klass, "panel", "Options")
        for name in getattr(klass, "__annotations__", {}):
            panels.setdefault(name, title)
    return panels


def add_stage_command(app: typer.Typer, name: str, cfg_cls: type, run: Callable[[Any], Any], *,
                      positional: str | None, help: str, present: Callable[[Any], None]) -> None:
    docs = field_docs(cfg_cls)
    kinds = field_types(cfg_cls)
    required = set(required_fields(cfg_cls))
    list_fields = {n for n, tp in kinds.items() if typing.get_origin(tp) in (list, tuple)
                   or any(typing.get_origin(a) in (list, tuple) for a in typing.get_args(tp))}
    panels = _panel_of(cfg_cls)
    order = list(panels)
    params = []
    if positional is not None:
        # a list field takes every remaining argument (distill view PATH…), each one whole (no comma splitting)
        many = positional in list_fields
        params.append(inspect.Parameter(
            positional, inspect.Parameter.KEYWORD_ONLY,
            annotation=Optional[list[str]] if many else Optional[str],  # noqa: UP045
            default=typer.Argument(None, help=docs.get(positional, ""), show_default=False)))
    for field_name, tp in sorted(kinds.items(), key=lambda item: order.index(item[0])):
        if field_name == positional:
            continue
        text = docs.get(field_name, "")
        default = _default_text(cfg_cls, field_name)
        if default and field_name not in required:
            text = f"{text} ({default})"
        elif field_name in required:
            text = f"{text} (required)"
        option = flag(field_name)
        if _cli_type(tp) == Optional[bool]:  # noqa: UP045
            option = f"{option}/--no-{option[2:]}"
        params.append(inspect.Parameter(
            field_name, inspect.Parameter.KEYWORD_ONLY, annotation=_cli_type(tp),
            default=typer.Option(None, option, help=text, show_default=False,
                                 rich_help_panel=panels.get(field_name, "Options"))))
    params.append(inspect.Parameter(
        "config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],  # noqa: UP045
        default=typer.Option(None, "--config", help="YAML recipe; flags given here override its values.",
                             show_default=False)))
    params.append(inspect.Parameter(
        "set_values", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[list[str]],  # noqa: UP045
        default=typer.Option(None, "--set", metavar="KEY=VALUE", show_default=False,
                             help="Set any option over the --config recipe, its value written as in the recipe "
                                  "(repeatable): --set max_model_len=8192, --set max_model_len=null.")))
    params.append(inspect.Parameter(
        "unset_keys", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[list[str]],  # noqa: UP045
        default=typer.Option(None, "--unset", metavar="KEY", show_default=False,
                             help="Take a key of the --config recipe back to its default (repeatable): "
                                  "--unset gpu_memory_utilization.")))

    def command(**given: Any) -> None:
        config_path = given.pop("config")
        set_values, unset = given.pop("set_values") or [], given.pop("unset_keys") or []
        for list_name in list_fields - {positional}:
            if given.get(list_name) is not None:
                given[list_name] = [part.strip() for value in given[list_name]
                                    for part in value.split(",") if part.strip()]
        on_command_line = {name for name, value in given.items() if value is not None} | {
            spec.partition("=")[0].strip().replace("-", "_") for spec in [*set_values, *unset]}
        result = run_stage(lambda: run(build_config(cfg_cls, yaml_path=config_path, overrides=given,
                                                    set_values=set_values, unset=unset)),
                           recipe=config_path, given=on_command_line)
        present(result)
        # a run that went on past failed prompts: its result first, then why it is not complete
        failure = getattr(result, "failure", None)
        if failure is not None:
            raise fail(str(failure).replace("\n", " "), failure.exit_code)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__name__ = name
    app.command(name, help=help, no_args_is_help=False)(command)
