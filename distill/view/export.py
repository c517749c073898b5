"""`distill view --export report.html`: the overview and a few records of each kind in one HTML file that
opens with no server and no network (to attach to a pull request or a model card).

The file is the served page with everything inlined: the same app.js (answering from the data embedded in
the page instead of the server), KaTeX with its fonts as data: URLs, highlight.js, and the data as a JSON
block. Its own Content-Security-Policy runs only these scripts, named by their hashes, so model text that
somehow became markup could still run nothing; the JSON block is escaped so no text in it can end it.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from distill.errors import OutputError
from distill.view.index import RecordQuery
from distill.view.records import preview
from distill.view.server import STATIC
from distill.view.sources import EVAL, FILTER
from distill.view.workspace import Workspace

SCRIPTS = ("vendor/katex/katex.min.js", "vendor/katex/contrib/auto-render.min.js",
           "vendor/highlight/highlight.min.js", "app.js")
STYLES = ("vendor/katex/katex.min.css", "vendor/highlight/github.min.css", "app.css")
_FONT = re.compile(r'src:url\(fonts/(?P<name>[\w-]+)\.woff2\) format\("woff2"\)(?:,url\([^)]*\) format\("[a-z]+"\))*')
MAX_PROMPTS = 10
"""Prompts (problems, for an eval) whose samples are shown side by side in the file, per source."""


def _script_text(text: str) -> str:
    """Script source that cannot end or confuse its <script> element: '<' of '</script', '<script' and '<!--'
    written as \\x3C, which every string and regex literal (where they occur) reads the same."""
    return re.sub(r"<(?=/?script|!--)", r"\\x3C", text, flags=re.IGNORECASE)


def _json_text(data: Any) -> str:
    """JSON that is inert inside <script type="application/json">: no '<', '>' or '&' as such."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                         ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _inline_fonts(css: str) -> str:
    def data_url(match: re.Match[str]) -> str:
        font = (STATIC / "vendor" / "katex" / "fonts" / f"{match['name']}.woff2").read_bytes()
        return f'src:url(data:font/woff2;base64,{base64.b64encode(font).decode()}) format("woff2")'
    return _FONT.sub(data_url, css)


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def _picks(workspace: Workspace, src: int, per_kind: int) -> list[RecordQuery]:
    """What goes into the file: per_kind records of each reject reason and of the kept (filter), of each
    model's right and wrong answers (eval), or the first, the longest and the cut-off (traces)."""
    index = workspace.index(src)
    if index.source.kind == FILTER:
        return [RecordQuery(status="kept", per_page=per_kind),
                *(RecordQuery(status="rejected", rejected_by=check, per_page=per_kind) for check in index.checks)]
    if index.source.kind == EVAL:
        return [RecordQuery(model=segment.role, status=grade, per_page=per_kind)
                for segment in index.source.segments for grade in ("wrong", "right", "ungraded")]
    return [RecordQuery(per_page=per_kind), RecordQuery(sort="-tokens", per_page=per_kind),
            RecordQuery(finish="length", per_page=per_kind)]


def export_data(workspace: Workspace, per_kind: int) -> dict[str, Any]:
    """The page's answers for every source: its overview, and the rows, records and prompts the file holds."""
    data: dict[str, Any] = {"generated": datetime.date.today().isoformat(), "per_kind": per_kind,
                            "sources": workspace.sources(), "overviews": {}, "rows": {}, "records": {}, "prompts": {}}
    for src, index in enumerate(workspace.indexes):
        data["overviews"][src] = workspace.overview(src)
        picked: dict[int, dict[str, Any]] = {}
        for query in _picks(workspace, src, per_kind):
            for row in index.query(query)[1]:
                picked.setdefault(row["n"], row)
        for prompt_id in list(dict.fromkeys(row["prompt_id"] for row in picked.values()))[:MAX_PROMPTS]:
            group = workspace.prompt(src, prompt_id)
            data["prompts"][f"{src}:{prompt_id}"] = group
            for card in (card for column in group["groups"] for card in column["cards"]):
                picked.setdefault(card["row"]["n"], dict(card["row"]))
        rows = [picked[n] for n in sorted(picked)]
        for row, record in zip(rows, index.read_many(rows)):
            row.update(preview(record))
            row["pass_rate"] = index.prompt_rate(row)
            data["records"][f"{src}:{row['n']}"] = workspace.record_answer(src, row, record)
        data["rows"][src] = rows
    return data


def export_html(workspace: Workspace, path: str | Path, *, per_kind: int) -> int:
    """Write the self-contained page to `path`; return how many records it holds."""
    data = export_data(workspace, per_kind)
    scripts = [_script_text((STATIC / name).read_text(encoding="utf-8")) for name in SCRIPTS]
    style = "\n".join(_inline_fonts((STATIC / name).read_text(encoding="utf-8")) for name in STYLES)
    csp = (f"default-src 'none'; script-src {' '.join(_hash(s) for s in scripts)}; style-src {_hash(style)}; "
           "font-src data:; img-src data:; base-uri 'none'; form-action 'none'")
    title = "distill view: " + ", ".join(source["name"] for source in data["sources"])
    page = "\n".join([
        "<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_escape(title)}</title>", f"<style>{style}</style>", "</head>", "<body>",
        '<header id="top"></header>', '<main id="main"><p class="loading">Loading…</p></main>',
        f'<script type="application/json" id="distill-data">{_json_text(data)}</script>',
        *(f"<script>{script}</script>" for script in scripts), "</body>", "</html>", ""])
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror}; choose another --export path") from None
    return sum(len(rows) for rows in data["rows"].values())


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
