"""distill: generate → filter → train → eval."""

from __future__ import annotations

import logging
import os
import sys

import typer

from distill import __version__
from distill.demo import DemoConfig, run_demo
from distill.eval import EvalConfig, evaluate
from distill.filter import FilterConfig, filter_traces
from distill.generate import GenerateConfig, generate
from distill.progress import is_main_process
from distill.rl import RLConfig, rl
from distill.train import TrainConfig, train
from distill.view import ViewConfig, view

from .stage import add_stage_command

app = typer.Typer(
    name="distill", add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True, rich_markup_mode=None,
    help="Distill a reasoning teacher into small dense students: generate → filter → train → eval.")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # the libraries underneath are chatty at INFO (every HTTP request, every download check)
    for name in ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "urllib3", "filelock", "datasets", "fsspec",
                 "matplotlib", "asyncio"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # before transformers is imported: errors only, and no bars of its own beside ours
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@app.callback(invoke_without_command=True)
def _main(ctx: typer.Context, verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
          version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        typer.echo(f"distill {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    _setup_logging(verbose)


add_stage_command(
    app, "generate", GenerateConfig, generate, positional="prompts",
    help="Sample long chain-of-thought traces from a teacher into a JSONL file, resumably.",
    present=lambda summary: typer.echo(summary.format()))
add_stage_command(
    app, "filter", FilterConfig, filter_traces, positional="traces",
    help="Drop wrong, mixed-language, overlong, truncated, malformed and looping traces; report every reason.",
    present=lambda report: typer.echo(report.format()))
add_stage_command(
    app, "train", TrainConfig, train, positional="kept",
    help="Fine-tune a student on kept traces (full, LoRA or QLoRA); --preflight shows what is trained.",
    present=lambda result: typer.echo(result.format()) if is_main_process() else None)
add_stage_command(
    app, "rl", RLConfig, rl, positional="prompts",
    help="Improve a student on prompts with references: GRPO with the filter's rule rewards, or on-policy "
         "distillation from a teacher (--objective on-policy --teacher MODEL).",
    present=lambda result: typer.echo(result.format()) if is_main_process() else None)
add_stage_command(
    app, "eval", EvalConfig, evaluate, positional=None,
    help="Sample benchmark problems from one or more models; pass@1, pass@k, cons@n side by side.",
    present=lambda result: typer.echo(result.format()))
add_stage_command(
    app, "view", ViewConfig, lambda cfg: view(cfg, ready=lambda url: typer.echo(f"distill view: {url} (Ctrl-C stops)")),
    positional="paths",
    help="Look at traces, rejects and eval results in the browser: a local web page over trace files, filter "
         "outputs, eval results and run directories (--export report.html writes one self-contained file instead).",
    present=lambda result: typer.echo(result.format()))
add_stage_command(
    app, "demo", DemoConfig, run_demo, positional=None,
    help="The whole pipeline offline on a CPU in a few minutes: train a tiny faulty teacher, then generate → "
         "filter → train two students (kept / all traces) → eval, with one table.",
    present=lambda result: typer.echo(result.format()))


OPTIONAL_VALUES = {"--ray": "local"}
"""Flags whose value may be left out, and what they then mean: a bare `--ray` runs on a Ray started for the run."""


def with_optional_values(args: list[str]) -> list[str]:
    """`args` with the implied value after each flag of OPTIONAL_VALUES given without one (last, or before
    another flag); click options take a value or none, never either."""
    filled: list[str] = []
    for index, arg in enumerate(args):
        filled.append(arg)
        if arg in OPTIONAL_VALUES and (index + 1 == len(args) or args[index + 1].startswith("-")):
            filled.append(OPTIONAL_VALUES[arg])
    return filled


def main() -> None:
    app(args=with_optional_values(sys.argv[1:]))


if __name__ == "__main__":
    main()
