"""On the GPU machine: collect the carried wheel batches, check them, install a group into its own dir.

    python3 benchmarks/gpu/wheels.py receive             # copy .whl/batch-NN|opt-NN here into $GPU_HOME/wheels
    python3 benchmarks/gpu/wheels.py status              # what is complete, per group and batch
    python3 benchmarks/gpu/wheels.py install suite       # -> $GPU_HOME/site-suite (then vllm -> site-vllm)
    python3 benchmarks/gpu/wheels.py install optional    # the opt-NN wheels, if vLLM fails without them

A wheel split into parts is joined once all its parts are there; every wheel's sha256 is checked
against manifest.json (written by fetch_wheels.py into every batch) before pip sees it. pip runs
`--no-index --no-deps --target`, so nothing is resolved or fetched here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GPU_HOME = Path(os.environ.get("GPU_HOME", "/root/gpu"))


def store() -> Path:
    return GPU_HOME / "wheels"


def manifest() -> dict:
    path = store() / "manifest.json"
    if not path.exists():
        raise SystemExit(f"no manifest in {store()}: no batch has been received on this machine yet (a fresh "
                         "machine?); carry .whl/batch-01 and run `wheels.py receive`")
    return json.loads(path.read_text())


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def receive() -> None:
    target = store()
    target.mkdir(parents=True, exist_ok=True)
    found = sorted([*ROOT.glob(".whl/batch-*"), *ROOT.glob(".whl/opt-*")])
    if not found:
        print("no .whl/batch-NN or .whl/opt-NN in this call's working tree (name one in `carry`)")
    for folder in found:
        files = [p for p in folder.iterdir() if p.is_file()]
        for path in files:
            shutil.copyfile(path, target / path.name)
        print(f"received {folder.name}: {len(files)} files, {sum(p.stat().st_size for p in files) / 2**20:.1f} MiB")


def wheel_state(entry: dict) -> str:
    """'ready' (joined, checked), 'missing N of M pieces' or 'parts here'."""
    joined = store() / "joined" / entry["file"]
    if joined.exists():
        return "ready"
    missing = [p["file"] for p in entry["pieces"] if not (store() / p["file"]).exists()]
    if missing:
        return f"missing {len(missing)} of {len(entry['pieces'])} pieces"
    return "parts here"


def join(entry: dict) -> Path:
    """The whole wheel, joined from its parts if needed, its sha256 checked."""
    joined = store() / "joined" / entry["file"]
    if joined.exists():
        return joined
    joined.parent.mkdir(parents=True, exist_ok=True)
    tmp = joined.with_suffix(".tmp")
    with tmp.open("wb") as out:
        for piece in sorted(entry["pieces"], key=lambda p: p["file"]):
            with (store() / piece["file"]).open("rb") as handle:
                shutil.copyfileobj(handle, out, 1 << 22)
    digest = sha256_of(tmp)
    if digest != entry["sha256"]:
        tmp.unlink()
        raise SystemExit(f"{entry['file']}: sha256 {digest} does not match the manifest's {entry['sha256']}; "
                         "carry its batch again")
    tmp.replace(joined)
    return joined


def status(quiet: bool = False) -> dict[str, bool]:
    data = manifest()
    complete = {}
    batches_here = {b for b, files in data["batches"].items()
                    if all((store() / f).exists() or (store() / "joined" / f).exists() for f in files)}
    for group in ("suite", "vllm", "optional"):
        entries = [w for w in data["wheels"] if w["group"] == group]
        states = {w["file"]: wheel_state(w) for w in entries}
        waiting = {f: s for f, s in states.items() if s.startswith("missing")}
        complete[group] = not waiting
        if not quiet:
            needed = sorted({p["batch"] for w in entries for p in w["pieces"] if w["file"] in waiting})
            print(f"{group:8s} {len(entries) - len(waiting)}/{len(entries)} wheels complete"
                  + (f"; still to carry: {' '.join(needed)}" if needed else "")
                  + ("; installed" if (GPU_HOME / f"site-{group}" / ".installed").exists() else ""))
    if not quiet:
        print("batches here:", " ".join(sorted(batches_here)) or "none")
    return complete


def install(group: str, *, cross: bool = False) -> None:
    data = manifest()
    entries = [w for w in data["wheels"] if w["group"] == group]
    if not status(quiet=True)[group]:
        status()
        raise SystemExit(f"the {group} group is incomplete; carry the batches listed above first")
    marker = GPU_HOME / f"site-{group}" / ".installed"
    if marker.exists():
        print(f"{group}: already installed in {marker.parent}")
        return
    paths = [join(w) for w in entries]
    target = GPU_HOME / f"site-{group}"
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--upgrade", "--target", str(target), *map(str, paths)]
    if cross:  # a dry run of the install on a machine that is not the GPU machine's CPython 3.12
        command[4:4] = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
                        "--abi", "cp312", "--abi", "abi3", "--abi", "none",
                        *[f"--platform=manylinux_2_{n}_x86_64" for n in (5, 17, 24, 26, 27, 28, 31, 34)],
                        "--platform=manylinux2014_x86_64", "--platform=manylinux1_x86_64", "--platform=any"]
    subprocess.run(command, check=True)
    target.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps([p.name for p in paths]))
    print(f"{group}: installed {len(paths)} wheels into {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["receive", "status", "install"])
    parser.add_argument("group", nargs="?", choices=["suite", "vllm", "optional"])
    parser.add_argument("--cross", action="store_true", help="install as for CPython 3.12 (a check off the machine)")
    args = parser.parse_args()
    if args.action == "receive":
        receive()
        status()
    elif args.action == "status":
        status()
    else:
        if not args.group:
            raise SystemExit("install needs a group: suite, vllm or optional")
        install(args.group, cross=args.cross)


if __name__ == "__main__":
    main()
