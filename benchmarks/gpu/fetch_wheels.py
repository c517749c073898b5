"""Fetch vLLM, the GPU suite's own needs and every dependency the GPU machine's image lacks, as wheels, here.

The GPU machine reaches no package index, so vLLM (0.26.0 pins the image's
torch 2.11.0) and what the measurements need beside it (bitsandbytes, TRL,
datasets, math-verify, pebble, py3langid, liger-kernel) travel as wheels. This
walks the dependency tree from the wheels' own metadata (markers evaluated for
CPython 3.12 on Linux x86-64), skips what the image already holds (the package
list of the device tool's KINDS.md, 2026-11-17), downloads the rest with
`pip download --no-deps` (a wheel already in .whl/all that satisfies the
requirement is reused without asking the index), and packs them into batches
of at most 60 MiB (large wheels split into numbered parts) so each device call
can carry one batch beside the ~1 MiB working tree (64 MiB per call).

Three groups, packed in this order so the first calls can already train:
  suite     the training/filter needs (batch-01): installed by `wheels.py install suite`
  vllm      vLLM and its dependencies (the next batches): installed by `wheels.py install vllm`
  optional  what vLLM imports only for kernels a dense Qwen/Llama on Hopper never runs (CuTe-DSL
            libraries for FA4/Blackwell, TileLang + z3): opt-NN batches, carried only if vLLM
            fails on a missing module of theirs (3 more calls: see README.md).

Members stripped from wheels (RECORD rewritten to match, so pip installs them as usual):
  vllm          vllm_flash_attn/_vllm_fa2_C.abi3.so (123 MiB packed): on Hopper vLLM picks FA3
                (v1/attention/backends/fa_utils.py) and imports FA2 inside a try/except; if FA3
                failed too, VLLM_ATTENTION_BACKEND=TRITON_ATTN needs no kernel library at all
  bitsandbytes  the CUDA 11/12, ROCm and XPU builds (the image's torch is cu130)

A requirement on a package the image already has is checked against the image's version where
KINDS.md gives one (IMAGE_VERSIONS); a mismatch is printed and kept in the manifest (the device
self-check reports what actually imports). Every batch folder holds manifest.json (group, batch,
size and sha256 of every wheel and part), which wheels.py checks on the machine.

    python benchmarks/gpu/fetch_wheels.py            # -> .whl/batch-NN/, .whl/opt-NN/ (git-ignored)

Then see benchmarks/gpu/README.md for the calls that carry and install them.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = ["manylinux_2_39_x86_64", "manylinux_2_35_x86_64", "manylinux_2_34_x86_64", "manylinux_2_31_x86_64",
             "manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64", "linux_x86_64", "any"]
# the image's packages (device tool KINDS.md, "Python packages already there", read 2026-11-17)
IMAGE = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec
patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio
torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp"""
# The versions KINDS.md's pip list gives for some of them (a session's reading, 2026-11)
IMAGE_VERSIONS = {"accelerate": "1.15.0", "huggingface-hub": "1.33.0", "numpy": "2.5.2", "safetensors": "0.8.0",
                  "tokenizers": "0.23.2", "torch": "2.11.0", "torchaudio": "2.11.0", "torchvision": "0.26.0",
                  "transformers": "5.17.0", "triton": "3.6.0", "sentencepiece": "0.2.2", "tiktoken": "0.14.0"}
# What the suite needs beside vLLM, pinned to the versions distill's tests pass with (/work/venv, 2026-11-21).
SUITE = ["bitsandbytes==0.50.2", "trl==1.16.0", "datasets==5.2.0", "math-verify==0.9.0", "pebble==5.2.3",
         "py3langid==0.4.0", "liger-kernel==0.8.5"]
# Not needed to run an offline LLM or `vllm serve` on a dense Qwen/Llama model: video decoding,
# kernels for other architectures (MLA, ...) that vLLM imports lazily, and CUDA 12 builds (the image is CUDA 13).
SKIP = {"pynvvideocodec", "torchcodec", "tokenspeed-mla", "humming-kernels", "nvidia-cutlass-dsl-libs-cu12"}
# Imported by vLLM only inside kernels for other models or GPUs (TileLang: DeepSeek-V4 mHC; CuTe-DSL: FA4 on
# Blackwell, Mamba, MoE routers): carried in opt-NN batches, for the case the self-check proves otherwise.
OPTIONAL = {"tilelang", "z3-solver", "nvidia-cutlass-dsl-libs-cu13"}
STRIP = {
    "vllm": ("vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so",),
    "bitsandbytes": ("bitsandbytes/libbitsandbytes_cuda11*", "bitsandbytes/libbitsandbytes_cuda12*",
                     "bitsandbytes/libbitsandbytes_rocm*", "bitsandbytes/libbitsandbytes_xpu*"),
}
BATCH_BYTES = 60 * 1024 * 1024


def environment() -> dict[str, str]:
    env = default_environment()
    env.update(python_version="3.12", python_full_version="3.12.3", sys_platform="linux", platform_system="Linux",
               platform_machine="x86_64", os_name="posix", implementation_name="cpython",
               platform_python_implementation="CPython")
    return env


def wheel_name(path: Path) -> str:
    return canonicalize_name(str(parse_wheel_filename(path.name)[0]))


def cached(requirement: Requirement, into: Path) -> Path | None:
    """A wheel already in `into` for this project whose version satisfies the requirement."""
    name = canonicalize_name(requirement.name)
    for path in sorted(into.glob("*.whl")):
        project, version, *_ = parse_wheel_filename(path.name)
        if canonicalize_name(str(project)) == name and requirement.specifier.contains(version, prereleases=True):
            return path
    return None


def download(requirement: Requirement, into: Path) -> Path:
    found = cached(requirement, into)
    if found is not None:
        return found
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
               "3.12", "--implementation", "cp", "--abi", "cp312", "--abi", "abi3", "--abi", "none", "-d",
               str(into), "-q"]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run([*command, str(requirement).split(";")[0]], check=True)
    found = cached(requirement, into)
    if found is None:
        raise SystemExit(f"pip downloaded no wheel for {requirement}")
    return found


def requirements_of(wheel: Path, extras: set[str]) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(metadata).decode())
    found = []
    for line in message.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if requirement.marker is None or any(
                requirement.marker.evaluate({**environment(), "extra": extra}) for extra in extras | {""}):
            found.append(requirement)
    return found


def strip_wheel(wheel: Path, patterns: tuple[str, ...], into: Path) -> Path:
    """A copy of `wheel` without the members matching `patterns` and their RECORD lines (the kept
    files' hashes are unchanged, so pip installs it as usual)."""
    into.mkdir(parents=True, exist_ok=True)
    target = into / wheel.name
    if target.exists():
        return target
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        drop = {n for n in source.namelist() if any(fnmatch.fnmatch(n, p) for p in patterns)}
        if not drop:
            raise SystemExit(f"{wheel.name}: nothing matched {patterns}; update STRIP")
        for info in source.infolist():
            if info.filename in drop:
                continue
            data = source.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(line for line in lines if line.split(",")[0] not in drop).encode()
            out.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
    print(f"  stripped {len(drop)} members from {wheel.name}", flush=True)
    return target


def image_conflict(requirement: Requirement) -> str | None:
    """'transformers>=5.18 (image: 5.17.0)' when the image's known version misses the requirement."""
    version = IMAGE_VERSIONS.get(canonicalize_name(requirement.name))
    if version is None or requirement.specifier.contains(version, prereleases=True):
        return None
    return f"{requirement.name}{requirement.specifier} (image: {version})"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(*groups: list[tuple[str, bytes]]) -> list[list[tuple[str, bytes]]]:
    """First-fit decreasing into batches of at most BATCH_BYTES, a group's pieces placed before the next
    group's (so the first group lands in the first batches); items over the limit are split into parts."""
    pieces: list[tuple[str, bytes]] = []
    for items in groups:
        for name, data in sorted(items, key=lambda item: -len(item[1])):
            if len(data) <= BATCH_BYTES:
                pieces.append((name, data))
            else:
                pieces += [(f"{name}.part{i:03d}", data[o:o + BATCH_BYTES])
                           for i, o in enumerate(range(0, len(data), BATCH_BYTES))]
    batches: list[list[tuple[str, bytes]]] = []
    sizes: list[int] = []
    for piece in pieces:
        target = next((i for i, size in enumerate(sizes) if size + len(piece[1]) <= BATCH_BYTES), None)
        if target is None:
            batches.append([])
            sizes.append(0)
            target = len(batches) - 1
        batches[target].append(piece)
        sizes[target] += len(piece[1])
    return batches


def working_tree_bytes() -> int:
    """What travels with every device call besides the carried batch: tracked and untracked, not ignored files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return sum((ROOT / name).stat().st_size for name in set(listed) if name and (ROOT / name).is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vllm", default="vllm==0.26.0")
    parser.add_argument("--extra", action="append", default=[], help="more requirements for the suite group")
    parser.add_argument("--out", type=Path, default=ROOT / ".whl")
    args = parser.parse_args()

    present = {canonicalize_name(n) for n in IMAGE.split()}
    store = args.out / "all"
    store.mkdir(parents=True, exist_ok=True)
    seen: dict[str, tuple[Path, str]] = {}  # name -> (wheel, group)
    conflicts: list[str] = []
    for group, roots in (("suite", [*SUITE, *args.extra]), ("vllm", [args.vllm])):
        queue = [(Requirement(r), "the suite" if group == "suite" else "distill") for r in roots]
        while queue:
            requirement, wanted_by = queue.pop(0)
            name = canonicalize_name(requirement.name)
            if name in present and (conflict := image_conflict(requirement)):
                conflicts.append(f"{conflict}, wanted by {wanted_by}")
            if name in present or name in SKIP or name in seen:
                continue
            wheel = download(requirement, store)
            seen[name] = (wheel, "optional" if name in OPTIONAL else group)
            print(f"{wheel.stat().st_size / 2**20:8.1f} MiB  {seen[name][1]:8s}  {wheel.name}", flush=True)
            queue.extend((r, wheel.name) for r in requirements_of(wheel, set(requirement.extras)))

    groups: dict[str, list[tuple[str, bytes]]] = {"suite": [], "vllm": [], "optional": []}
    wheels = []
    for name, (wheel, group) in sorted(seen.items()):
        if name in STRIP:
            wheel = strip_wheel(wheel, STRIP[name], args.out / "stripped")
        data = wheel.read_bytes()
        groups[group].append((wheel.name, data))
        wheels.append({"file": wheel.name, "project": name, "group": group, "bytes": len(data),
                       "sha256": sha256(data)})

    for old in [*args.out.glob("batch-*"), *args.out.glob("opt-*")]:
        shutil.rmtree(old)
    # the suite's pieces first: all of batch-01 that training needs (vLLM pieces fill the rest of it)
    layout: dict[str, list[tuple[str, bytes]]] = {}
    for i, batch in enumerate(pack(groups["suite"], groups["vllm"]), start=1):
        layout[f"batch-{i:02d}"] = batch
    for i, batch in enumerate(pack(groups["optional"]), start=1):
        layout[f"opt-{i:02d}"] = batch
    suite_files = {name for name, _ in groups["suite"]}
    if any(name in suite_files for folder, batch in layout.items() if folder != "batch-01" for name, _ in batch):
        raise SystemExit("the suite group no longer fits in batch-01; the README's call sequence assumes it does")
    by_file = {w["file"]: w for w in wheels}
    for folder, batch in layout.items():
        for piece_name, piece in batch:
            base = piece_name.split(".part")[0] if ".part" in piece_name else piece_name
            by_file[base].setdefault("pieces", []).append(
                {"file": piece_name, "batch": folder, "bytes": len(piece), "sha256": sha256(piece)})
    for entry in wheels:
        entry["pieces"].sort(key=lambda p: p["file"])
    manifest = {"vllm": args.vllm, "suite": [*SUITE, *args.extra], "skipped": sorted(SKIP),
                "stripped": {k: list(v) for k, v in STRIP.items()}, "image_conflicts": sorted(set(conflicts)),
                "batches": {folder: sorted(n for n, _ in batch) for folder, batch in layout.items()},
                "wheels": wheels}
    text = json.dumps(manifest, indent=1) + "\n"
    for folder, batch in layout.items():
        target = args.out / folder
        target.mkdir()
        for piece_name, piece in batch:
            (target / piece_name).write_bytes(piece)
        (target / "manifest.json").write_text(text)
    (args.out / "manifest.json").write_text(text)

    for folder, batch in layout.items():
        size = sum(len(p) for _, p in batch)
        groups_in = sorted({by_file[(n.split('.part')[0])]["group"] for n, _ in batch})
        print(f"{folder}: {size / 2**20:5.1f} MiB, {len(batch):3d} files ({', '.join(groups_in)})")
    for group in ("suite", "vllm", "optional"):
        total = sum(len(d) for _, d in groups[group])
        print(f"{group:8s} {len(groups[group]):3d} files, {total / 2**20:6.1f} MiB")
    tree = working_tree_bytes()
    largest = max(sum(len(p) for _, p in batch) + len(text) for batch in layout.values())
    verdict = "fits" if tree + largest <= 64 * 2**20 else "DOES NOT FIT: make the working tree smaller"
    print(f"one call carries at most {(tree + largest) / 2**20:.1f} MiB (working tree {tree / 2**20:.1f} MiB + "
          f"largest batch {largest / 2**20:.1f} MiB) of the device tool's 64 MiB: {verdict}")
    for conflict in sorted(set(conflicts)):
        print(f"image version mismatch: {conflict}")
    print(f"manifest: {args.out / 'manifest.json'} (a copy in every batch folder)")


if __name__ == "__main__":
    main()
