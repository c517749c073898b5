"""`distill view` in a real browser (Debian's chromium driven by Playwright) on a filter output made by the real
filter and an eval result graded by eval's own grading; its index, its sources, and bad input through the CLI.

The server is the real CLI in a subprocess (`distill view … --port 0`, the URL read from its stdout). Every page
is waited for (the page sets body[data-ready] when it has rendered), never slept for. Screenshots go to
tests/artifacts/view/ (ignored by git; DISTILL_TEST_ARTIFACTS moves them).
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from distill.filter import FilterConfig, filter_traces
from tests.conftest import ROOT, assert_user_error, read_jsonl, run_cli, write_jsonl

CHROMIUM = os.environ.get("DISTILL_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("DISTILL_TEST_ARTIFACTS", ROOT / "tests" / "artifacts")) / "view"
THINK = "<think>\n{reasoning}\n</think>\n\n{answer}"
REASONING = "Okay, five plus seven: I count up from five, six, seven, eight, and so on, to twelve. So $5 + 7 = 12$."
LOOP = "Let me add the two numbers again to be completely sure that the total is right. " * 8
HOSTILE = ('<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> '
           '$\\href{javascript:window.pwned=3}{click}$ $\\htmlId{x}{y}$')
CODE = "```python\ndef add(a, b):\n    return a + b\n```"


def record(prompt_id: str, sample: int, completion: str, *, reference="12", finish="stop",
           prompt="What is $5 + 7$?", tokens: int | None = None) -> dict:
    """A trace exactly as `distill generate` writes it."""
    return {"id": f"{prompt_id}:{sample}", "prompt_id": prompt_id, "sample": sample,
            "messages": [{"role": "user", "content": prompt + "\nPlease reason step by step, and put your final "
                                                           "answer within \\boxed{}."}],
            "reference": reference, "completion": completion, "finish_reason": finish,
            "completion_tokens": tokens if tokens is not None else len(completion) // 4,
            "teacher": "deepseek-ai/DeepSeek-R1", "params": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 64,
                                                             "seed": 0}, "source": {"level": 1}}


def good(answer: str = "$\\boxed{12}$", reasoning: str = REASONING) -> str:
    return THINK.format(reasoning=reasoning, answer=f"The answer is {answer}.")


TRACES = [
    record("a", 0, good()),
    record("a", 1, good()),  # a duplicate of a:0: selection
    record("a", 2, good("$\\boxed{13}$")),  # wrong
    record("a", 3, good(reasoning=REASONING + " 所以答案是十二，我们再检查一遍。")),  # mixed language
    record("b", 0, good(reasoning=REASONING + " " + LOOP), tokens=90),  # a loop
    record("b", 1, "<think>\nFive plus seven is twel", finish="length"),  # cut off
    record("b", 2, good() + "<|im_end|>"),  # a leftover template token
    record("b", 3, good(), tokens=500),  # too long
    record("c", 0, good("$\\boxed{\\frac{1}{2}}$"), reference="0.5", prompt="Half of one?"),
    record("e", 0, THINK.format(reasoning="Write the function.", answer=CODE), reference=None,
           prompt="Write add(a, b)."),
    record("h", 0, good("$\\boxed{12}$ " + HOSTILE, reasoning=REASONING + " " + HOSTILE), prompt="Hostile " + HOSTILE,
           tokens=60),  # kept
    record("h", 1, good("$\\boxed{99}$ " + HOSTILE, reasoning=REASONING + " " + HOSTILE), prompt="Hostile " + HOSTILE,
           tokens=60),  # wrong
]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    """A filter output made by the real filter, and an eval result graded by eval's own grading."""
    root = tmp_path_factory.mktemp("view")
    traces = write_jsonl(root / "traces.jsonl", TRACES)
    filter_traces(FilterConfig(traces=str(traces), out=str(root / "kept.jsonl"), workers=1, max_tokens=100))
    return {"root": root, "traces": traces, "kept": root / "kept.jsonl", "rejects": root / "kept.rejects.jsonl",
            "results": _eval_result(root / "eval")}


def _eval_result(directory: Path) -> Path:
    """results.json, results.problems.jsonl and a traces file per model, as `distill eval` writes them (the
    sampling aside: the samples are written here, then graded by eval's grading)."""
    from distill.eval.run import EvalConfig, EvalResult, _grade
    from distill.traces import JsonlWriter, write_json

    directory.mkdir()
    answers = {"base": ["11", "13", "12", "9"], "student": ["12", "12", "12", "13"], "teacher": ["12", "12", "12", "12"]}
    cfg = EvalConfig(model=[f"{label}=models/{label}" for label in answers], data="bench.jsonl", n=2, workers=1,
                     out=str(directory / "results.json"))
    result = EvalResult(output=cfg.out, benchmark="bench.jsonl", n=2)
    problems = []
    for label, path in cfg.models:
        rows = [record(f"q{i // 2}", i % 2, good(f"$\\boxed{{{answer}}}$")) for i, answer in enumerate(answers[label])]
        traces = write_jsonl(directory / f"results.{label}.traces.jsonl", rows)
        scores, graded = _grade(cfg, label, path, traces)
        result.scores.append(scores)
        problems.extend(graded)
    with JsonlWriter(directory / "results.problems.jsonl") as writer:
        writer.write(problems)
    write_json(directory / "results.json", result.to_dict())
    return directory / "results.json"


def _read_url(process: subprocess.Popen, timeout: float = 120) -> str:
    """The URL `distill view` prints once it serves (waiting for the line, not for a fixed time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            line = process.stdout.readline()
            found = re.search(r"http://\S+/", line)
            if found:
                return found.group(0)
        if process.poll() is not None:
            raise AssertionError(f"distill view exited with {process.returncode}")
    raise AssertionError("distill view printed no URL")


@pytest.fixture(scope="module")
def server(outputs, tmp_path_factory):
    """`distill view kept.jsonl results.json --port 0` as a real process: source 0 the filter output, 1 the eval."""
    log = tmp_path_factory.mktemp("server") / "stderr.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "view", str(outputs["kept"]), str(outputs["results"]), "--port", "0",
             "--cache-dir", str(outputs["root"] / "cache")], cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr,
            text=True)
    try:
        yield _read_url(process)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            out, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, log.read_text()
    assert "distill view stopped" in out


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda message: page.errors.append(message.text) if message.type == "error" else None)
    yield page
    context.close()


def wait_ready(page, path: str) -> None:
    page.wait_for_function("path => document.body.dataset.ready === path && !document.querySelector('.loading')",
                           arg=path)


def open_page(page, url: str, fragment: str, path: str) -> None:
    page.goto(url + fragment)
    wait_ready(page, path)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ignore = ARTIFACTS.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# screenshots written by tests/test_view.py\n*\n")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def list_ids(page) -> list[str]:
    return page.eval_on_selector_all("#records tr[data-id]", "rows => rows.map(r => r.dataset.id)")


# ---------------------------------------------------------------- in the browser


def test_overview_charts_the_filter_report_and_a_bar_filters_the_list(server, outputs, page):
    from playwright.sync_api import expect

    rejected = read_jsonl(outputs["rejects"])
    open_page(page, server, "#/overview?src=0", "/overview")
    expect(page.locator(".tile").first).to_contain_text(str(len(TRACES)))
    charts = page.locator("#charts .panel h2").all_inner_texts()
    for title in ("Kept, and rejected by reason", "Completion length", "Per-prompt pass rate", "Finish reason"):
        assert title in charts
    report = json.loads(outputs["kept"].with_name("kept.report.json").read_text(encoding="utf-8"))
    bars = page.eval_on_selector_all("#charts .panel:first-child a.bar", "bars => bars.map(b => b.dataset.label)")
    assert bars == ["kept", *[check for check, counts in report["checks"].items() if counts["rejected"]]]
    expect(page.locator("#charts")).to_contain_text("filter --max-tokens 100")  # on the length histogram
    shot(page, "overview")

    page.click("#charts a.bar[data-label='language']")
    wait_ready(page, "/records")
    assert list_ids(page) == [r["id"] for r in rejected if "language" in r["rejected_by"]]
    expect(page.locator("select[name=rejected_by]")).to_have_value("language")
    shot(page, "records-language")
    assert not page.errors


def test_filters_combine_sort_search_and_page(server, outputs, page):
    rejected = read_jsonl(outputs["rejects"])
    open_page(page, server, "#/records?src=0", "/records")
    assert len(list_ids(page)) == len(TRACES)

    page.select_option("select[name=status]", "rejected")
    wait_ready(page, "/records")
    assert list_ids(page) == [r["id"] for r in rejected]
    page.fill("input[name=min_tokens]", "40")
    page.press("input[name=min_tokens]", "Enter")
    wait_ready(page, "/records")
    long_rejected = [r for r in rejected if r["filter_details"]["tokens"] >= 40]
    assert list_ids(page) == [r["id"] for r in long_rejected]
    page.select_option("select[name=sort]", "-tokens")
    wait_ready(page, "/records")
    assert list_ids(page) == [r["id"] for r in sorted(long_rejected, key=lambda r: -r["filter_details"]["tokens"])]

    page.goto(server + "#/records?src=0")
    wait_ready(page, "/records")
    page.fill("input[name=q]", "我们再检查")  # full text, in the reasoning
    page.press("input[name=q]", "Enter")
    wait_ready(page, "/records")
    assert list_ids(page) == ["a:3"]
    page.select_option("select[name=q_in]", "prompt")
    wait_ready(page, "/records")
    assert list_ids(page) == []

    open_page(page, server, "#/records?src=0&verdict=correctness:null", "/records")
    assert list_ids(page) == ["e:0"]  # no reference: correctness could not tell
    open_page(page, server, "#/records?src=0&per_page=5", "/records")
    first = list_ids(page)
    page.click(".pager a.next >> nth=0")
    wait_ready(page, "/records")
    assert len(first) == 5 and list_ids(page) == [r["id"] for r in in_file_order(outputs)][5:10]
    assert not page.errors


def in_file_order(outputs) -> list[dict]:
    """The filter output's records in the order the viewer numbers them: the kept file, then the rejects."""
    return read_jsonl(outputs["kept"]) + read_jsonl(outputs["rejects"])


def test_record_view_reasoning_collapsed_answer_beside_reference_and_each_checks_details(server, outputs, page):
    from playwright.sync_api import expect

    wrong = next(r for r in read_jsonl(outputs["rejects"]) if r["id"] == "a:2")
    open_page(page, server, "#/records?src=0&rejected_by=correctness", "/records")
    page.click("#records tr[data-id='a:2']")
    wait_ready(page, "/record")
    reasoning = page.locator("#reasoning details")
    expect(reasoning).not_to_have_attribute("open", "")
    expect(reasoning.locator("summary")).to_contain_text(f"{len(REASONING)} characters")
    expect(page.locator("#reasoning .reasoning-body")).to_be_hidden()
    page.click("#reasoning summary")
    expect(page.locator("#reasoning .reasoning-body")).to_contain_text("five plus seven")
    expect(page.locator("#extracted")).to_contain_text("13")
    expect(page.locator("#reference")).to_contain_text("12")
    expect(page.locator("#answer .katex").first).to_be_visible()  # \boxed{13} typeset
    correctness = page.locator("#checks tr[data-check='correctness']")
    expect(correctness).to_contain_text("fail")
    expect(correctness).to_contain_text(wrong["filter_details"]["correctness"])  # why the grader said wrong
    shot(page, "record")
    page.click("#back")  # to the list as it was filtered
    wait_ready(page, "/records")
    expect(page.locator("select[name=rejected_by]")).to_have_value("correctness")

    open_page(page, server, f"#/record?src=0&n={_number(outputs, 'a:3')}", "/record")
    expect(page.locator("#checks tr[data-check='language']")).to_contain_text("foreign_text")
    open_page(page, server, f"#/record?src=0&n={_number(outputs, 'e:0')}", "/record")
    expect(page.locator("#answer pre code.hljs .hljs-keyword").first).to_have_text("def")  # code highlighted
    assert not page.errors


def _number(outputs, record_id: str) -> int:
    return [r["id"] for r in in_file_order(outputs)].index(record_id)


def test_side_by_side_shows_a_prompts_samples_kept_beside_rejected(server, outputs, page):
    from playwright.sync_api import expect

    kept = [r["id"] for r in read_jsonl(outputs["kept"]) if r["prompt_id"] == "a"]
    rejected = [r["id"] for r in read_jsonl(outputs["rejects"]) if r["prompt_id"] == "a"]
    open_page(page, server, f"#/record?src=0&n={_number(outputs, 'a:2')}", "/record")
    page.click("#open-prompt")
    wait_ready(page, "/prompt")
    columns = page.eval_on_selector_all(".column", "cs => cs.map(c => [c.dataset.group, "
                                                   "[...c.querySelectorAll('.card')].map(x => x.dataset.id)])")
    assert columns == [["kept", kept], ["rejected", rejected]]
    card = page.locator(".card[data-id='a:3']")
    card.locator("summary").click()  # the reasoning is fetched when opened
    expect(card.locator(".reasoning-body")).to_contain_text("我们再检查一遍")
    shot(page, "prompt")
    assert not page.errors


def test_model_text_is_shown_as_text_and_runs_nothing(server, outputs, page):
    from playwright.sync_api import expect

    response = page.goto(server)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    for fragment, path in ((f"#/record?src=0&n={_number(outputs, 'h:0')}", "/record"),
                           (f"#/record?src=0&n={_number(outputs, 'h:1')}", "/record"),
                           ("#/records?src=0&prompt_id=h", "/records"), ("#/prompt?src=0&prompt_id=h", "/prompt")):
        open_page(page, server, fragment, path)
        for summary in page.locator("details.reasoning summary").all():
            summary.click()
        if path == "/prompt":
            expect(page.locator("details.reasoning[data-rendered]")).to_have_count(2)
        elif path == "/record":
            expect(page.locator("#reasoning details[data-rendered]")).to_have_count(1)
            expect(page.locator("#answer")).to_contain_text('<script>window.pwned = 1</script>')
            expect(page.locator("#reasoning")).to_contain_text('<img src=x onerror="window.pwned = 2">')
        expect(page.locator("main")).to_contain_text("window.pwned = 1")
        assert page.evaluate("() => window.pwned") is None
        assert page.locator("main img, main script, main iframe").count() == 0
        assert page.locator("main a[href^='javascript'], main [onerror]").count() == 0
    shot(page, "untrusted-text")
    assert not page.errors


def test_eval_result_shows_the_models_answers_to_one_problem_side_by_side(server, outputs, page):
    from playwright.sync_api import expect

    problems = {(p["model"], p["prompt_id"]): p for p in read_jsonl(outputs["results"].with_name("results.problems.jsonl"))}
    open_page(page, server, "#/overview?src=1", "/overview")
    expect(page.locator("#charts")).to_contain_text("pass@1 by model")
    assert page.eval_on_selector_all("#charts .panel:first-child a.bar", "bs => bs.map(b => b.dataset.label)") == \
        ["base", "student", "teacher"]
    open_page(page, server, "#/prompt?src=1&prompt_id=q1", "/prompt")
    columns = page.eval_on_selector_all(".column", "cs => cs.map(c => [c.dataset.group, "
                                                   "[...c.querySelectorAll('.card .badge')].map(b => b.textContent)])")
    grade = {True: "right", False: "wrong", None: "ungraded"}
    assert columns == [[model, [grade[v] for v in problems[(model, "q1")]["verdicts"]]]
                       for model in ("base", "student", "teacher")]
    shot(page, "eval")
    assert not page.errors


def test_export_is_one_file_that_opens_without_network(outputs, browser, tmp_path):
    from playwright.sync_api import expect

    report = tmp_path / "report.html"
    result = run_cli("view", outputs["kept"], outputs["results"], "--export", report, "--export-records", "3",
                     "--cache-dir", outputs["root"] / "cache")
    assert result.returncode == 0, result.stderr
    assert f"wrote {report}" in result.stdout
    html = report.read_text(encoding="utf-8")
    assert _fetching_tags(html) == []  # no <script src>, <link href>, <img src>: nothing to fetch
    assert "url(http" not in html and "url(fonts/" not in html  # the fonts are inlined
    assert html.count("<script") == 5  # the data block and four inline scripts, each allowed by its hash
    assert "window.pwned = 1</script>" not in html  # the JSON block holds no markup

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    asked: list[str] = []
    context.route("**/*", lambda route: (asked.append(route.request.url),
                                        route.continue_() if route.request.url.startswith("file:") else route.abort()))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(report.as_uri())
    wait_ready(page, "/overview")
    expect(page.locator("#charts")).to_contain_text("Kept, and rejected by reason")
    page.click("#charts a.bar[data-label='correctness']")
    wait_ready(page, "/records")
    wrong = [r["id"] for r in read_jsonl(outputs["rejects"]) if "correctness" in r["rejected_by"]]
    shown = list_ids(page)  # the first 3 of each reason, and the samples of the prompts shown side by side
    assert shown[:3] == wrong[:3] and set(shown) <= set(wrong)
    page.evaluate("() => { location.hash = '#/prompt?src=0&prompt_id=h'; }")
    wait_ready(page, "/prompt")
    for summary in page.locator("details.reasoning summary").all():
        summary.click()
    expect(page.locator("details.reasoning[data-rendered]")).to_have_count(2)
    expect(page.locator("main")).to_contain_text("window.pwned = 1")
    assert page.evaluate("() => window.pwned") is None
    expect(page.locator(".katex").first).to_be_visible()
    shot(page, "export")
    context.close()
    assert asked == [report.as_uri()] and not errors


def _fetching_tags(html: str) -> list[tuple[str, list]]:
    from html.parser import HTMLParser

    found = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if any(name in ("src", "href", "srcset", "data") for name, _ in attrs):
                found.append((tag, attrs))

    Tags().feed(html)
    return found


# ---------------------------------------------------------------- the server, without a browser


def _get(url: str, host: str | None = None) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_server_reads_only_its_sources_and_answers_only_loopback_hosts(server):
    status, headers, body = _get(server + "api/records?src=0&status=rejected&rejected_by=length&per_page=3")
    assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"
    assert [row["id"] for row in json.loads(body)["rows"]] == ["b:3"]  # the one too long
    assert _get(server + "static/../index.py")[0] == 404
    assert _get(server + "static/%2e%2e/server.py")[0] == 404
    assert _get(server + "api/record?src=0&n=999")[0] == 404
    assert _get(server + "api/record?src=7&n=0")[0] == 404
    assert _get(server + "api/sources", host="attacker.example:80")[0] == 421  # DNS rebinding
    status, headers, _ = _get(server + "static/app.js")
    assert status == 200 and "script-src 'self'" in headers["Content-Security-Policy"]


# ---------------------------------------------------------------- sources and the index


def _workspace(paths, cache):
    from distill.view.workspace import Workspace

    return Workspace.open([str(p) for p in paths], Path(cache))


def test_index_is_built_once_and_found_again_by_content(outputs, tmp_path, caplog):
    from distill.view.index import RecordQuery

    cache = tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger="distill.view.index"):
        _workspace([outputs["traces"]], cache).close()
        assert "indexed" in caplog.text
        caplog.clear()
        copy = shutil.copy(outputs["traces"], tmp_path / "moved.jsonl")  # the same content elsewhere
        workspace = _workspace([copy], cache)
        assert "index from the cache" in caplog.text and "indexed" not in caplog.text
        workspace.close()
        assert len(list(cache.glob("*.sqlite"))) == 1
        caplog.clear()
        with open(copy, "a", encoding="utf-8") as handle:  # a resumed run appended a record
            handle.write(json.dumps(record("z", 0, good())) + "\n")
        workspace = _workspace([copy], cache)
        assert "indexed" in caplog.text
    assert workspace.records_page(0, RecordQuery(prompt_id="z"))["rows"][0]["id"] == "z:0"
    workspace.close()


def test_a_record_changed_in_place_after_indexing_is_reported_not_shown(outputs, tmp_path):
    from distill.view.index import StaleIndex

    path = shutil.copy(outputs["traces"], tmp_path / "t.jsonl")
    workspace = _workspace([path], tmp_path / "cache")
    lines = Path(path).read_text(encoding="utf-8").splitlines(keepends=True)
    Path(path).write_text(lines[1] + lines[0] + "".join(lines[2:]), encoding="utf-8")
    with pytest.raises(StaleIndex, match="changed since it was indexed"):
        workspace.record(0, 0)
    workspace.close()


def test_a_directory_of_shards_is_one_file_in_name_order_and_a_torn_tail_is_left_out(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    write_jsonl(shards / "traces.shard-1-of-2.jsonl", TRACES[6:])
    write_jsonl(shards / "traces.shard-0-of-2.jsonl", TRACES[:6])
    with open(shards / "traces.shard-1-of-2.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"id": "torn", "prompt')  # a shard still being written
    workspace = _workspace([shards], tmp_path / "cache")
    (source,) = workspace.sources()
    assert source["kind"] == "traces" and source["records"] == len(TRACES)
    from distill.view.index import RecordQuery

    page = workspace.records_page(0, RecordQuery(per_page=100))
    assert [row["id"] for row in page["rows"]] == [r["id"] for r in TRACES]
    workspace.close()


def test_a_run_directory_gives_every_stage_output_once(outputs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(outputs["root"], run, ignore=shutil.ignore_patterns("cache"))
    workspace = _workspace([run, run / "kept.rejects.jsonl"], tmp_path / "cache")  # a part stands for the whole
    found = [(s["kind"], Path(s["name"]).name, [f["name"] for f in s["files"]]) for s in workspace.sources()]
    assert found == [("traces", "traces.jsonl", ["traces.jsonl"]),
                     ("filter", "kept.jsonl", ["kept.jsonl", "kept.rejects.jsonl"]),
                     ("eval", "results.json", ["results.base.traces.jsonl", "results.student.traces.jsonl",
                                               "results.teacher.traces.jsonl"])]
    workspace.close()


def test_a_host_beyond_loopback_is_served_only_when_asked_and_with_a_warning(outputs, tmp_path, monkeypatch, caplog):
    from distill.view import ViewConfig, server, view
    from distill.view.config import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    assert ViewConfig(paths=["x"]).host == "127.0.0.1"
    served = []
    monkeypatch.setattr(server, "serve", lambda workspace, sock: served.append(sock.getsockname()))
    urls = []
    with caplog.at_level(logging.WARNING):
        view(ViewConfig(paths=[str(outputs["kept"])], host="0.0.0.0", cache_dir=str(tmp_path)), ready=urls.append)
    assert served[0][0] == "0.0.0.0" and urls
    assert "every machine that can reach this one can read these traces" in caplog.text


def test_the_judges_overturns_and_decontamination_hits_are_charted_and_filterable(tmp_path):
    from distill.view.index import RecordQuery, judge_outcome

    assert judge_outcome({"correctness": True, "judge": True}, {"correctness_by_rules": False}) == \
        "overturned (wrong → right)"
    assert judge_outcome({"correctness": False, "judge": False}, {"correctness_by_rules": False}) == "confirmed wrong"
    assert judge_outcome({"correctness": True, "judge": True}, {"correctness_by_rules": None}) == "decided right"
    assert judge_outcome({"correctness": None, "judge": None}, {"judge": "no reply"}) == "no verdict"
    assert judge_outcome({"correctness": True, "judge": None}, {"not_run": ["judge"]}) is None
    checks = ("correctness", "judge", "contamination")
    rows = [  # what filter writes with --judge and --decontaminate (see distill.filter.run and the checks)
        {**TRACES[0], "verdicts": dict.fromkeys(checks, True),
         "filter_details": {"correctness_by_rules": False, "correctness_decided_by": "judge", "judge": "same value"}},
        {**TRACES[1], "verdicts": {"correctness": True, "judge": None, "contamination": True},
         "filter_details": {"not_run": ["judge"]}},
        {**TRACES[2], "verdicts": {"correctness": True, "judge": None, "contamination": False},
         "filter_details": {"not_run": ["judge"], "contamination": {"benchmark": "math500", "problem": 17,
                                                                    "ngram": "five plus seven is twelve"}},
         "rejected_by": ["contamination"]}]
    kept = write_jsonl(tmp_path / "kept.jsonl", rows[:2])
    write_jsonl(tmp_path / "kept.rejects.jsonl", rows[2:])
    workspace = _workspace([kept], tmp_path / "cache")
    overview = workspace.overview(0)
    assert overview["judge"] == [{"value": "overturned (wrong → right)", "records": 1}]
    assert overview["contamination"] == [{"value": "math500", "records": 1}]
    assert [c["not_run"] for c in overview["checks"]] == [0, 2, 0]
    for query, ids in ((RecordQuery(judge="overturned (wrong → right)"), ["a:0"]),
                       (RecordQuery(contamination="math500"), ["a:2"]),
                       (RecordQuery(verdicts=[("judge", "not_run")]), ["a:1", "a:2"]),
                       (RecordQuery(verdicts=[("judge", "null")]), [])):
        assert [row["id"] for row in workspace.records_page(0, query)["rows"]] == ids
    checks_of = {c["check"]: c for c in workspace.record(0, 2)["record"]["checks"]}
    assert checks_of["contamination"]["details"]["contamination"]["ngram"] == "five plus seven is twelve"
    assert checks_of["contamination"]["rejected"] and not checks_of["judge"]["ran"]
    workspace.close()


def test_reasoning_and_answer_are_found_in_every_layout():
    from distill.view.records import Completion, split_completion

    assert split_completion({"completion": "<think>\nwhy\n</think>\n\n42"}) == Completion("why", "42", False)
    assert split_completion({"completion": "<think>\nstill thinking"}) == Completion("still thinking", "", True)
    assert split_completion({"completion": "42"}) == Completion(None, "42", False)
    assert split_completion({"completion": "42", "reasoning_content": "why"}) == Completion("why", "42", False)
    # malformed (two blocks): the answer is what grading reads, after the last </think>
    assert split_completion({"completion": "<think>a</think><think>b</think> 42"}) == \
        Completion("a</think><think>b", "42", False)


# ---------------------------------------------------------------- bad input, through the CLI


def test_bad_input_is_one_line_and_exit_1(outputs, tmp_path):
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert_user_error(run_cli("view", tmp_path / "nowhere.jsonl", *cache), "nowhere.jsonl", "no such file")
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"problem": "What is 1 + 1?", "answer": "2"}])
    assert_user_error(run_cli("view", prompts, *cache), "prompts.jsonl:1:", "field 'id'")
    bad_verdicts = write_jsonl(tmp_path / "bad.jsonl", [{**TRACES[0], "verdicts": ["format"]}])
    assert_user_error(run_cli("view", bad_verdicts, *cache), "bad.jsonl:1:", "field 'verdicts'")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(TRACES[0]) + "\n{not json\n" + json.dumps(TRACES[1]) + "\n", encoding="utf-8")
    assert_user_error(run_cli("view", broken, *cache), "broken.jsonl:2:", "malformed JSON")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n", encoding="utf-8")
    assert_user_error(run_cli("view", notes, *cache), "notes.txt", "not a .jsonl trace file")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert_user_error(run_cli("view", outputs["kept"], "--port", str(port), *cache), f"--port {port}", "in use")
