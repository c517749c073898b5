"""The CPU-checkable logic of the GPU validation suite (benchmarks/gpu): the FLOPs/MFU formula, the model
shapes, the QLoRA length search, exact-length traces, the wheel batches and the device-call plan."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import zipfile

import pytest
import torch

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))

import bench_qlora
import fetch_wheels
import make_models
import traces
import wheels
from flops import Shape, palm_flops, step_flops
from measure import sequence_lengths, trained_tokens

GIB = 2**30
GPU = ROOT / "benchmarks" / "gpu"


def meta_model(name: str):
    from transformers import AutoModelForCausalLM

    from distill.tiny import synthetic_tokenizer

    spec = make_models.SHAPES[name]
    config = make_models.make_config(name, synthetic_tokenizer(600, spec["family"]), kind="train")
    with torch.device("meta"):
        return config, AutoModelForCausalLM.from_config(config)


# ------------------------------------------------------------------------------------------- FLOPs


def test_qwen2_5_1_5b_flops_by_hand():
    shape = Shape.of(make_models.SHAPES["qwen2.5-1.5b"])
    # per layer: q 1536·1536, k and v 1536·256 each, o 1536·1536, gate/up/down 1536·8960 each
    assert shape.layer_matmul_params == 2 * 1536 * 1536 + 2 * 1536 * 256 + 3 * 1536 * 8960 == 46_792_704
    assert shape.body_matmul_params == 28 * 46_792_704
    assert shape.head_params == 151_936 * 1536
    flops = step_flops(shape, [3, 5], trained_tokens=6)
    assert flops["dense"] == 6 * 1_310_195_712 * 8
    assert flops["head"] == 6 * 233_373_696 * 6
    # causal pairs: 3·4/2 + 5·6/2 = 21; 2 matmuls · 2 FLOPs · h·dh per pair, ×3 with the backward
    assert flops["attention"] == 28 * 21 * 2 * 2 * 12 * 128 * 3
    assert flops["total"] == flops["dense"] + flops["head"] + flops["attention"]
    # PaLM appendix B / nanoGPT's estimate_mfu: 6N + 12·L·H·Q·T per token, N with the (tied) head
    assert palm_flops(shape, 16384, 16384) == 16384 * (6 * (1_310_195_712 + 233_373_696) + 12 * 28 * 1536 * 16384)


@pytest.mark.parametrize("family", ["qwen", "llama"])
def test_flop_formula_matches_torch_flop_counter_on_a_real_step(family):
    """What torch counts in a real forward + backward (eager attention computes the full s×s scores, so
    it matches the PaLM form exactly); the causal count is the same with only the s(s+1)/2 pairs."""
    from torch.utils.flop_counter import FlopCounterMode

    from distill.tiny import build_model, build_tokenizer

    tokenizer = build_tokenizer(family)
    model = build_model(tokenizer, family, hidden_size=64, layers=2, heads=4, kv_heads=2, intermediate_size=96)
    model.set_attn_implementation("eager")
    length = 37
    ids = torch.randint(0, len(tokenizer), (1, length), generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    shape = Shape.of(model.config)
    measured = counter.get_total_flops()
    full = palm_flops(shape, length, length)
    # the rotary frequencies (a tiny forward-only matmul in some transformers versions) at most
    assert 0 <= measured - full <= shape.head_dim * length
    causal = step_flops(shape, [length], trained_tokens=length)
    full_attention = 12 * shape.layers * shape.heads * shape.head_dim * length**2
    assert causal["dense"] + causal["head"] == full - full_attention
    assert causal["attention"] * 2 * length == full_attention * (length + 1)


def test_causal_attention_term_tends_to_half_of_palms():
    shape = Shape.of(make_models.SHAPES["llama3.1-8b"])
    s = 32768
    causal = step_flops(shape, [s], trained_tokens=s)["attention"]
    palm = palm_flops(shape, s, s) - 6 * (shape.body_matmul_params + shape.head_params) * s
    assert causal / palm == pytest.approx(0.5, rel=1e-4)


def test_sequence_lengths_and_trained_tokens_of_a_packed_row():
    assert sequence_lengths(torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])) == [3, 2, 4]
    assert trained_tokens(torch.tensor([[-100, -100, 5, 6, -100, 7]])) == 3


# ------------------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("name", list(make_models.SHAPES))
def test_shapes_are_the_real_models_and_their_matmul_weights(name):
    config, model = meta_model(name)
    shape = Shape.of(config)
    linear = sum(m.weight.numel() for n, m in model.named_modules()
                 if isinstance(m, torch.nn.Linear) and n != "lm_head")
    assert linear == shape.body_matmul_params
    assert model.lm_head.weight.numel() == shape.head_params
    total = sum(p.numel() for p in model.parameters())
    # the published parameter counts (the model cards' 1.54B, 7.61B, 8.03B; tied embeddings counted once)
    assert total == {"qwen2.5-1.5b": 1_543_714_304, "qwen2.5-7b": 7_615_616_512, "llama3.1-8b": 8_030_261_248}[name]


def test_lora_parameter_count_matches_peft():
    from distill.tiny import build_model, build_tokenizer
    from distill.train import TrainConfig
    from distill.train.modeling import add_adapters, count_parameters

    tokenizer = build_tokenizer("qwen")
    model = build_model(tokenizer, "qwen", hidden_size=64, layers=2, heads=4, kv_heads=2, intermediate_size=96)
    cfg = TrainConfig(kept="k.jsonl", student="s", out="o", method="lora", lora_r=8)
    trainable, _ = count_parameters(add_adapters(model, cfg))
    assert bench_qlora.lora_parameters(model.config.to_dict(), 8) == trainable


# ------------------------------------------------------------------------------------ QLoRA search


def fake_probe(limit: int, cap: int = int(22 * GIB), base: int = 6 * GIB):
    """Reserved memory linear in the length, OOM above `limit` tokens; one list per process."""
    processes: list[list[int]] = []

    def run(lengths):
        processes.append(list(lengths))
        found = []
        for length in lengths:
            reserved = base + (cap - base) * length // limit
            fits = length <= limit
            found.append(bench_qlora.Attempt(length=length, fits=fits, reserved=reserved if fits else None, cap=cap))
            if not fits:
                break
        return found

    return run, processes


@pytest.mark.parametrize("limit", [5_000, 12_000, 37_000, 70_000])
def test_qlora_search_brackets_the_limit_to_one_step(limit):
    run, processes = fake_probe(limit)
    result = bench_qlora.search(run, cap=int(22 * GIB), calibration=(8192, 16384), step=2048, longest=131072)
    assert result["resolved_to_tokens"] == 2048
    assert result["longest_fitting"] <= limit < result["shortest_failing"]
    assert result["shortest_failing"] - result["longest_fitting"] == 2048
    assert len(processes) <= 4
    # every process after the calibration tries one length; a failure after a success is re-tried fresh
    assert all(len(p) == 1 for p in processes[1:])
    for failure in (a for a in result["attempts"] if a["fits"] is False and not a["fresh"]):
        assert any(a["length"] == failure["length"] and a["fresh"] for a in result["attempts"])


def test_qlora_search_stops_at_the_longest_and_on_errors():
    run, _ = fake_probe(10**6)
    assert bench_qlora.search(run, cap=int(22 * GIB), calibration=(8192, 16384), step=2048,
                              longest=65536)["longest_fitting"] == 65536

    def broken(lengths):
        return [bench_qlora.Attempt(length=lengths[0], fits=None, error="ImportError: no bitsandbytes")]

    result = bench_qlora.search(broken, cap=int(22 * GIB), calibration=(8192, 16384), step=2048, longest=65536)
    assert result["error"] == "ImportError: no bitsandbytes" and result["longest_fitting"] is None


# ------------------------------------------------------------------------------------------ traces


@pytest.mark.parametrize("tokenizer_kind", ["trained", "synthetic-qwen-vocabulary"])
def test_traces_render_to_exact_lengths(tokenizer_kind):
    from distill.tiny import build_tokenizer, synthetic_tokenizer

    tokenizer = build_tokenizer("qwen", vocab_size=400) if tokenizer_kind == "trained" else \
        synthetic_tokenizer(151936, "qwen")
    costs = traces.word_costs(tokenizer)
    rng = random.Random(0)
    for length in (120, 777, 2048):
        assert traces.rendered_length(traces.exact_record(1, length, tokenizer, costs, rng), tokenizer) == length


# ------------------------------------------------------------------------------------------ wheels


def test_wheel_packing_puts_the_suite_first_and_splits_big_wheels(monkeypatch):
    monkeypatch.setattr(fetch_wheels, "BATCH_BYTES", 100)
    suite = [("a.whl", b"x" * 30), ("b.whl", b"x" * 20)]
    rest = [("big.whl", b"y" * 250), ("c.whl", b"z" * 40)]
    batches = fetch_wheels.pack(suite, rest)
    assert {name for name, _ in batches[0]} >= {"a.whl", "b.whl"}
    assert all(sum(len(d) for _, d in batch) <= 100 for batch in batches)
    parts = sorted(name for batch in batches for name, _ in batch if name.startswith("big.whl.part"))
    assert parts == ["big.whl.part000", "big.whl.part001", "big.whl.part002"]
    joined = b"".join(d for name in parts for batch in batches for n, d in batch if n == name)
    assert joined == b"y" * 250


def test_stripped_wheel_loses_the_members_and_their_record_lines(tmp_path):
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/__init__.py", "x = 1\n")
        archive.writestr("pkg/_fa2_C.so", b"\0" * 1000)
        archive.writestr("pkg-1.0.dist-info/RECORD", "pkg/__init__.py,sha256=a,6\npkg/_fa2_C.so,sha256=b,1000\n"
                                                     "pkg-1.0.dist-info/RECORD,,\n")
    stripped = fetch_wheels.strip_wheel(wheel, ("pkg/_fa2_*",), tmp_path / "out")
    with zipfile.ZipFile(stripped) as archive:
        assert sorted(archive.namelist()) == ["pkg-1.0.dist-info/RECORD", "pkg/__init__.py"]
        assert archive.read("pkg/__init__.py") == b"x = 1\n"
        assert "_fa2_C" not in archive.read("pkg-1.0.dist-info/RECORD").decode()


def test_image_version_conflicts_are_named():
    from packaging.requirements import Requirement

    assert fetch_wheels.image_conflict(Requirement("numpy<2.4,>=1.25")) == "numpy<2.4,>=1.25 (image: 2.5.2)"
    assert fetch_wheels.image_conflict(Requirement("transformers>=5.5.3")) is None
    assert fetch_wheels.image_conflict(Requirement("pydantic>=2")) is None  # not on the image: carried


def test_parts_are_joined_and_checked_on_the_machine(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setattr(wheels, "GPU_HOME", tmp_path)
    store = tmp_path / "wheels"
    store.mkdir()
    data = bytes(range(256)) * 10
    (store / "w.whl.part000").write_bytes(data[:1000])
    (store / "w.whl.part001").write_bytes(data[1000:])
    entry = {"file": "w.whl", "sha256": hashlib.sha256(data).hexdigest(),
             "pieces": [{"file": "w.whl.part001"}, {"file": "w.whl.part000"}]}
    assert wheels.join(entry).read_bytes() == data
    bad = {**entry, "file": "v.whl", "pieces": [{"file": "w.whl.part000"}]}
    with pytest.raises(SystemExit, match="sha256"):
        wheels.join(bad)


# ------------------------------------------------------------------------------- the device plan


def test_readme_call_plan_fits_each_call_and_the_lease():
    """Every call of benchmarks/gpu/README.md's table names known steps whose expected seconds fit the
    suite's per-call budget, and the whole lease (machine start + calls + a turnaround each) fits 30 min."""
    listed = subprocess.run(["bash", str(GPU / "run_suite.sh"), "--expect"], capture_output=True, text=True,
                            check=True).stdout.split("\n")
    expect = {name: int(seconds) for name, seconds, _ in (line.split() for line in listed if line.strip())}
    rows = re.findall(r"^\| (\d+) \| `\[([^]]*)\]` \| `bash benchmarks/gpu/run_suite.sh ([^`]+)` \| ~(\d+) s \|",
                      (GPU / "README.md").read_text(), flags=re.M)
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    carried = [json.loads(f"[{r[1]}]") for r in rows]
    # the five batches, one per call, in order, before vLLM is installed
    assert [c for c in carried if c] == [[f".whl/batch-0{i}"] for i in range(1, 6)]
    total = 0
    for number, _, steps, stated in rows:
        seconds = sum(expect[step] for step in steps.split())  # KeyError: a step run_suite.sh does not know
        assert seconds == int(stated), f"call {number}: the README says ~{stated} s, the steps add up to {seconds}"
        assert seconds <= 560, f"call {number} expects {seconds} s, over the suite's 560 s per call"
        total += seconds
    order = [step for r in rows for step in r[2].split()]
    batch_05_call = carried.index([".whl/batch-05"])
    assert order.index("install-vllm") > sum(len(r[2].split()) for r in rows[:batch_05_call])
    for needs_vllm in ("gen-qwen1.5b", "gen-qwen7b", "openai", "test-vllm"):
        assert order.index(needs_vllm) > order.index("install-vllm")
    for needs_suite in ("sft", "qlora-qwen7b", "qlora-llama8b", "test-train"):
        assert order.index(needs_suite) > order.index("install-suite")
    assert order.index("qlora-qwen7b") > order.index("weights-qwen7b")
    assert order.index("qlora-llama8b") > order.index("weights-llama8b")
    start, per_call = 90, 20  # machine start; transfer, reply and the next call's turnaround
    assert start + total + per_call * len(rows) <= 28 * 60, "the lease needs at least 2 minutes of margin"
