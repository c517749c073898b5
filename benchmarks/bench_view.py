"""How `distill view` scales: index build rate, time to the first page, and memory, on 10k to 1M records,
against the peer every notebook uses: read the whole file into memory (`json.loads` on every line).

Input: synthetic filter outputs (kept.jsonl + kept.rejects.jsonl, 70 / 30), records of about 1.6 kB (a
prompt, 200-2,000 characters of reasoning, a boxed answer, verdicts and filter_details as the filter writes
them), 4 samples per prompt; written once into --dir and reused.

Measured, each in a fresh process:
- index: `Workspace.open` on an empty cache (the SQLite index built, every line checked); wall time, records
  per second, peak RSS, size of the index file.
- first page: the real CLI (`distill view kept.jsonl --port 0`, the index now cached) started, then the
  overview and page 1 of the list asked for over HTTP, as the page does; the time from starting the command
  to the list's answer, the list request alone, and the server's peak RSS (VmHWM) after them and after a
  full-text search over every record (its time too).
- peer: the whole file read into a list of dicts (`json.loads` per line); wall time and peak RSS. Run up to
  --peer-max records (the list of a million records needs several GB).

    python benchmarks/bench_view.py                          # 10k, 100k, 200k, 1M: ~6 min on 2 cores, 1.7 GB disk
    python benchmarks/bench_view.py --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("so", "the", "sum", "is", "then", "we", "check", "that", "this", "works", "because", "each", "term", "and",
         "the", "next", "one", "gives", "us", "wait", "let", "me", "verify", "again", "carefully")
CHECKS = ("format", "finish", "length", "language", "repetition", "correctness", "selection")


def make_filter_output(directory: Path, records: int, seed: int = 0) -> Path:
    """kept.jsonl and kept.rejects.jsonl with `records` records in all (written once, then reused)."""
    kept, rejects = directory / "kept.jsonl", directory / "kept.rejects.jsonl"
    done = directory / "complete"
    if done.exists() and done.read_text() == str(records):
        return kept
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with kept.open("w", encoding="utf-8") as kept_file, rejects.open("w", encoding="utf-8") as rejects_file:
        for i in range(records):
            prompt_id, sample = f"p{i // 4:07d}", i % 4
            reasoning = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 400)))
            answer = rng.randint(1, 999)
            tokens = len(reasoning) // 4 + 20
            rejected = rng.random() < 0.3
            reasons = [rng.choice(CHECKS)] if rejected else []
            verdicts = {check: check not in reasons for check in CHECKS}
            record = {
                "id": f"{prompt_id}:{sample}", "prompt_id": prompt_id, "sample": sample,
                "messages": [{"role": "user", "content": f"What is {answer - 7} + 7? Please reason step by step, "
                                                         "and put your final answer within \\boxed{}."}],
                "reference": str(answer),
                "completion": f"<think>\n{reasoning}\n</think>\n\nThe answer is $\\boxed{{{answer}}}$.",
                "finish_reason": "stop", "completion_tokens": tokens, "teacher": "deepseek-ai/DeepSeek-R1",
                "params": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768, "seed": 0},
                "source": {"level": rng.randint(1, 5)}, "verdicts": verdicts,
                "filter_details": {"tokens": tokens, "language": "en", "language_score": 1.0, "repeats": 1,
                                   "reference_kind": "math", "answer": str(answer), "correctness": "equal"}}
            if rejected:
                record["rejected_by"] = reasons
            (rejects_file if rejected else kept_file).write(json.dumps(record, ensure_ascii=False) + "\n")
    done.write_text(str(records))
    return kept


def _child(code: str, *args: str) -> dict:
    """Run `code` in a fresh Python; it prints one JSON line; peak RSS (MiB) of that process added."""
    wrapper = code + "\nimport resource\nRESULT['peak_rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n" \
                     "print(json.dumps(RESULT))"
    out = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True, check=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    return json.loads(out.stdout.strip().splitlines()[-1])


INDEX = """
import json, sys, time
from pathlib import Path
from distill.view.workspace import Workspace
started = time.perf_counter()
workspace = Workspace.open([sys.argv[1]], Path(sys.argv[2]))
RESULT = {"seconds": time.perf_counter() - started, "records": workspace.records,
          "index_mib": sum(p.stat().st_size for p in Path(sys.argv[2]).glob('*.sqlite')) / 2**20}
"""

PEER = """
import json, sys, time
started = time.perf_counter()
records = []
for path in sys.argv[1:]:
    with open(path, encoding='utf-8') as handle:
        records.extend(json.loads(line) for line in handle)
RESULT = {"seconds": time.perf_counter() - started, "records": len(records)}
"""


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=600) as response:
        return response.read()


def _vm_hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def first_page(kept: Path, cache: Path) -> dict:
    """The real CLI on a cached index: seconds from starting it to page 1 of the list, and its memory."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "view", str(kept), "--port", "0", "--cache-dir",
                                str(cache)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / '.shim'}"})
    try:
        url = None
        while url is None:
            ready, _, _ = select.select([process.stdout], [], [], 1.0)
            if ready:
                found = re.search(r"http://\S+/", process.stdout.readline())
                url = found.group(0) if found else None
            if process.poll() is not None:
                raise RuntimeError("distill view exited")
        serving = time.perf_counter()
        _get(url + "api/sources")
        _get(url + "api/overview?src=0")
        before_page = time.perf_counter()
        page = json.loads(_get(url + "api/records?src=0&page=1"))
        done = time.perf_counter()
        assert len(page["rows"]) == 50
        hwm_page = _vm_hwm(process.pid)
        search_started = time.perf_counter()
        found = json.loads(_get(url + "api/records?src=0&q=verify%20again%20carefully&sort=-tokens"))["total"]
        search = time.perf_counter() - search_started
        return {"to_url": serving - started, "to_first_page": done - started, "page_request": done - before_page,
                "overview_and_page": done - serving,
                "server_rss_mib": hwm_page, "search_s": search, "search_matches": found,
                "server_rss_after_search_mib": _vm_hwm(process.pid)}
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def cli_start() -> float:
    """Seconds to start the CLI and exit (`distill --version`): Python, typer and every stage's imports."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cli.main", "--version"], cwd=ROOT, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / '.shim'}"})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,200000,1000000")
    parser.add_argument("--dir", default=str(Path(tempfile.gettempdir()) / "distill-bench-view"))
    parser.add_argument("--peer-max", type=int, default=200_000)
    parser.add_argument("--keep", action="store_true", help="keep the synthetic files for another run")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows = []
    for size in sizes:
        data = Path(args.dir) / f"n{size}"
        started = time.perf_counter()
        kept = make_filter_output(data, size)
        written = time.perf_counter() - started
        file_mib = sum(p.stat().st_size for p in data.glob("*.jsonl")) / 2**20
        cache = data / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        index = _child(INDEX, str(kept), str(cache))
        page = first_page(kept, cache)
        page["cli_start"] = cli_start()
        peer = _child(PEER, str(kept), str(kept.with_name("kept.rejects.jsonl"))) if size <= args.peer_max else None
        rows.append((size, file_mib, index, page, peer))
        print(f"{size:,} records ({file_mib:,.0f} MiB, written in {written:.0f} s): index {index['seconds']:.1f} s, "
              f"first page {page['to_first_page']:.2f} s, search {page['search_s']:.1f} s", file=sys.stderr)
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)

    print(f"\n## `distill view` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()}-core CPU container, "
          f"{platform.python_implementation()} {platform.python_version()})\n")
    print("    python benchmarks/bench_view.py --sizes " + args.sizes + "\n")
    print("| records | file | index build (once) | index rate | index peak RSS | index file "
          "| command start → first page (cached index) | `distill --version` alone | sources + overview + page 1 "
          "| server peak RSS | full-text search, every record (server RSS after) "
          "| peer: load whole file (peak RSS) | peak RSS, view server / peer |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, file_mib, index, page, peer in rows:
        peer_text = (f"{peer['seconds']:.1f} s ({peer['peak_rss_mib']:,.0f} MiB)" if peer else "not run")
        ratio = f"{page['server_rss_after_search_mib'] / peer['peak_rss_mib']:.2f}" if peer else "–"
        print(f"| {size:,} | {file_mib:,.0f} MiB | {index['seconds']:.1f} s | {size / index['seconds']:,.0f} rec/s "
              f"| {index['peak_rss_mib']:,.0f} MiB | {index['index_mib']:,.0f} MiB | {page['to_first_page']:.2f} s "
              f"| {page['cli_start']:.2f} s | {page['overview_and_page'] * 1000:,.0f} ms | {page['server_rss_mib']:,.0f} MiB "
              f"| {page['search_s']:.1f} s ({page['server_rss_after_search_mib']:,.0f} MiB) | {peer_text} | {ratio} |")
    load = os.getloadavg()[0]
    print(f"\nLoad average at the end: {load:.1f} on {os.cpu_count()} cores (other work on the machine slows every "
          "column alike).")


if __name__ == "__main__":
    main()
