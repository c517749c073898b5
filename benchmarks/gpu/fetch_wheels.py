"""Fetch vLLM and every dependency the GPU machine's image lacks, as wheels, here.

The GPU machine reaches no package index, so vLLM (0.26.0 pins the image's
torch 2.11.0) travels as wheels. This walks the dependency tree from the
wheels' own metadata (markers evaluated for CPython 3.12 on Linux x86-64),
skips what the image already holds (the package list of the device tool's
KINDS.md, 2026-11-17), downloads the rest with `pip download --no-deps`, and
packs them into batches of at most 60 MiB (large wheels split into parts) so
each device call can carry one batch.

    python benchmarks/gpu/fetch_wheels.py            # -> .whl/batch-NN/ (git-ignored)

Then see benchmarks/gpu/README.md for the calls that carry and install them.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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
# Not needed to run an offline LLM or `vllm serve` on a dense Qwen/Llama model: video decoding,
# kernels for other architectures (MLA, ...) that vLLM imports lazily, and CUDA 12 builds (the image is CUDA 13).
SKIP = {"pynvvideocodec", "torchcodec", "tokenspeed-mla", "humming-kernels", "nvidia-cutlass-dsl-libs-cu12"}
BATCH_BYTES = 60 * 1024 * 1024


def environment() -> dict[str, str]:
    env = default_environment()
    env.update(python_version="3.12", python_full_version="3.12.3", sys_platform="linux", platform_system="Linux",
               platform_machine="x86_64", os_name="posix", implementation_name="cpython",
               platform_python_implementation="CPython")
    return env


def download(requirement: str, into: Path) -> Path:
    before = set(into.glob("*.whl"))
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
               "3.12", "--implementation", "cp", "--abi", "cp312", "--abi", "abi3", "--abi", "none", "-d",
               str(into), "-q"]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run([*command, requirement], check=True)
    new = set(into.glob("*.whl")) - before
    if new:
        return new.pop()
    name = canonicalize_name(Requirement(requirement).name).replace("-", "_")
    return next(p for p in into.glob("*.whl") if canonicalize_name(p.name.split("-")[0]).replace("-", "_") == name)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vllm", default="vllm==0.26.0")
    parser.add_argument("--extra", action="append", default=[], help="more requirements to bring (e.g. trl)")
    parser.add_argument("--out", type=Path, default=ROOT / ".whl")
    args = parser.parse_args()

    present = {canonicalize_name(n) for n in IMAGE.split()}
    store = args.out / "all"
    store.mkdir(parents=True, exist_ok=True)
    queue = [Requirement(r) for r in [args.vllm, *args.extra]]
    seen: dict[str, Path] = {}
    while queue:
        requirement = queue.pop(0)
        name = canonicalize_name(requirement.name)
        if name in present or name in SKIP or name in seen:
            continue
        wheel = download(str(requirement).split(";")[0], store)
        seen[name] = wheel
        print(f"{wheel.stat().st_size / 2**20:8.1f} MiB  {wheel.name}", flush=True)
        queue.extend(requirements_of(wheel, set(requirement.extras)))

    # pack into batches of at most 60 MiB, splitting big wheels into numbered parts
    for old in args.out.glob("batch-*"):
        shutil.rmtree(old)
    batches: list[list[tuple[str, bytes]]] = [[]]
    sizes = [0]
    for wheel in sorted(seen.values(), key=lambda p: -p.stat().st_size):
        data = wheel.read_bytes()
        pieces = [(wheel.name, data)] if len(data) <= BATCH_BYTES else [
            (f"{wheel.name}.part{i:03d}", data[o:o + BATCH_BYTES]) for i, o in
            enumerate(range(0, len(data), BATCH_BYTES))]
        for piece_name, piece in pieces:
            target = next((i for i, size in enumerate(sizes) if size + len(piece) <= BATCH_BYTES), None)
            if target is None:
                batches.append([])
                sizes.append(0)
                target = len(batches) - 1
            batches[target].append((piece_name, piece))
            sizes[target] += len(piece)
    for number, batch in enumerate(batches, start=1):
        folder = args.out / f"batch-{number:02d}"
        folder.mkdir()
        for piece_name, piece in batch:
            (folder / piece_name).write_bytes(piece)
    total = sum(p.stat().st_size for p in seen.values())
    print(f"{len(seen)} wheels, {total / 2**20:.0f} MiB in {len(batches)} batches under {args.out}/batch-NN")


if __name__ == "__main__":
    main()
