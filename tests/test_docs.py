"""The README and docs/ stay true to the repository: every relative link reaches a file (and its
#anchor a heading), every flag written after `distill <command>` is one that command's --help
lists, the README stays a five-minute read, and its two set-up commands stay as CI runs them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
COMMANDS = ("generate", "filter", "train", "rl", "eval", "demo", "view")
README_MAX_WORDS = 2000

DEMO_COMMAND = ("pip install torch --index-url https://download.pytorch.org/whl/cpu && pip install -e . "
                "&& distill demo --out demo/")
TEST_COMMAND = 'pip install -e ".[dev]" && python -m pytest -q -m "not slow" -n auto --dist loadfile'

PENDING_PAGES: set[str] = set()
"""Pages another branch is writing: a link to one is checked once the page exists (drop it from here then)."""

FOREIGN_FLAGS = {"--no-enable-chunked-prefill", "--index-url"}
"""Flags the README names in prose that belong to other tools (vllm serve, pip), not to distill."""

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def split_code(text: str) -> tuple[list[str], list[str]]:
    """(prose lines, fenced code blocks) of a markdown page, fences as CommonMark reads them: up to three
    spaces, three or more backticks (an info string without backticks) or tildes; closed by a line of
    the same character, at least as many."""
    prose, blocks, block, fence = [], [], None, ""
    for line in text.splitlines():
        if block is None:
            opening = _FENCE.match(line)
            if opening and not (opening.group(1)[0] == "`" and "`" in opening.group(2)):
                block, fence = [], opening.group(1)
                continue
            prose.append(line)
        elif re.fullmatch(rf" {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*", line):
            blocks.append("\n".join(block))
            block = None
        else:
            block.append(line)
    return prose, blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: links reduced to their text, lowercased, punctuation dropped
    (letters, digits, '_', '-' and spaces stay), spaces made hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    prose, _ = split_code(page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for line in prose:
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def paragraphs(prose: list[str]) -> list[str]:
    """Prose split at blank lines: a code span may run over a line break, never over a paragraph."""
    return [p for p in re.split(r"\n\s*\n", "\n".join(prose)) if p.strip()]


def spans(prose: list[str]) -> list[str]:
    """The text of every inline code span, line breaks inside it read as spaces."""
    return [m.group(2).replace("\n", " ") for para in paragraphs(prose) for m in _SPAN.finditer(para)]


def links(page: Path) -> list[str]:
    prose, _ = split_code(page.read_text(encoding="utf-8"))
    text = "\n\n".join(_SPAN.sub("", para) for para in paragraphs(prose))
    return [a or b for a, b in _LINK.findall(text)]


def test_there_are_pages_and_links():
    assert len(PAGES) > 10
    assert sum(len(links(page)) for page in PAGES) > 100


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_reaches_a_file_and_its_anchor_a_heading(page):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        rel = dest.relative_to(ROOT).as_posix() if dest.is_relative_to(ROOT) else str(dest)
        if not dest.exists():
            if rel not in PENDING_PAGES:
                broken.append(f"{target}: no such file {rel}")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading '#{anchor}' in {rel}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_slugs_follow_github():
    assert slug("Backends (`--backend`)") == "backends---backend"
    assert slug("CPU / offline") == "cpu--offline"
    assert slug("Tiny CPU mode: `DISTILL_NOTEBOOK_TINY=1`") == "tiny-cpu-mode-distill_notebook_tiny1"
    assert slug("The same four commands on the demo's files") == "the-same-four-commands-on-the-demos-files"


# ---------------------------------------------------------------- flags


@pytest.fixture(scope="module")
def help_flags() -> dict[str, set[str]]:
    """Every flag each command's --help lists (`python -m cli.main CMD --help`, once per command)."""
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    procs = {cmd: subprocess.Popen([sys.executable, "-m", "cli.main", cmd, "--help"], cwd=ROOT, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for cmd in COMMANDS}
    flags = {}
    for cmd, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        if proc.returncode == 0:  # a command this checkout does not have yet (view) has no flags to check
            flags[cmd] = set(_FLAG.findall(out))
    return flags


def commands_in(text: str) -> list[tuple[str, list[str]]]:
    """(command, flags) of every `distill CMD …` in a shell text: lines joined at a trailing backslash,
    each command ending at a comment, a pipe, `&&` or `;`."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        line = re.split(r"\s#\s|\s#$|^#", line)[0]
        for segment in re.split(r"&&|\|\||[|;]", line):
            match = re.search(r"(?:^|\s)distill\s+([a-z]+)\b(.*)", segment)
            if match and match.group(1) in COMMANDS:
                found.append((match.group(1), _FLAG.findall(match.group(2))))
    return found


def mentions(page: Path) -> list[tuple[str, list[str]]]:
    prose, blocks = split_code(page.read_text(encoding="utf-8"))
    return [mention for text in [*blocks, *spans(prose)] for mention in commands_in(text)]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_flag_written_after_distill_command_is_in_its_help(page, help_flags):
    unknown = sorted({f"distill {cmd} {flag}" for cmd, flags in mentions(page) if cmd in help_flags
                      for flag in flags if flag not in help_flags[cmd]})
    assert not unknown, f"{page.relative_to(ROOT)} names flags the command does not have: {unknown}"


def test_every_flag_the_readme_names_belongs_to_some_command(help_flags):
    prose, _ = split_code(README.read_text(encoding="utf-8"))
    every = set().union(*help_flags.values())
    named = {flag for span in spans(prose) if not re.match(r"\s*(pip|python|vllm)\b", span)
             for flag in _FLAG.findall(span)}
    assert named, "the README names no flags in its prose?"
    assert not named - every - FOREIGN_FLAGS


def test_the_readme_commands_are_checked():
    # the four commands on the demo's files and the GPU quickstart are among the checked mentions
    checked = {cmd for cmd, _ in mentions(README)}
    assert {"generate", "filter", "train", "eval", "demo"} <= checked


# ---------------------------------------------------------------- the README itself


def test_the_readme_is_a_five_minute_read():
    words = len(README.read_text(encoding="utf-8").split())
    assert words < README_MAX_WORDS, f"README.md has {words} words; move reference material to docs/"


def test_the_two_set_up_commands_stay_verbatim():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert DEMO_COMMAND in lines
    # .ci/run executes the line two lines under the marker (the first is the code fence)
    marker = lines.index("<!-- test command -->")
    assert lines[marker + 2] == TEST_COMMAND
