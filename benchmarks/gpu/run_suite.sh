#!/usr/bin/env bash
# The GPU validation suite of issue 7, one step after another, inside one device call.
#
#   bash benchmarks/gpu/run_suite.sh STEP [STEP ...]
#
# Steps (expected seconds on an H100 / hard limit; README.md gives the call sequence and budget):
#   receive                  5 /  60  copy the carried .whl/batch-NN into $GPU_HOME/wheels, say what is still missing
#   install-suite           25 / 120  install the suite group (bitsandbytes, trl, datasets, ...) + self-check
#   install-vllm            50 / 180  install vLLM + self-check of both groups
#   install-optional        40 / 180  the opt-NN wheels (only if vLLM fails on a missing CuTe-DSL/TileLang module)
#   models                  30 / 240  gen dirs of Qwen2.5-1.5B and 7B (no weights) + Qwen2.5-1.5B random bf16 weights
#   weights-qwen7b          45 / 240  Qwen2.5-7B random bf16 weights (15 GB), for QLoRA
#   weights-llama8b         50 / 240  Llama-3.1-8B random bf16 weights (16 GB), for QLoRA
#   sft                    130 / 420  full SFT, Qwen2.5-1.5B: distill vs TRL
#   qlora-qwen7b           160 / 360  QLoRA longest sequence in 24 GiB, Qwen2.5-7B, chunked loss
#   qlora-llama8b          170 / 360  QLoRA longest sequence in 24 GiB, Llama-3.1-8B, chunked loss
#   qlora-qwen7b-unchunked 120 / 300  the same as qlora-qwen7b without the chunked loss (optional)
#   test-train              90 / 300  pytest -m gpu tests/test_train_gpu.py
#   gen-qwen1.5b           290 / 540  distill generate --backend vllm vs plain vLLM, 4k and 16k new tokens
#   gen-qwen7b             190 / 480  the same on Qwen2.5-7B, 4k new tokens
#   openai                 125 / 300  distill --backend openai vs a plain async client, against vllm serve
#   test-vllm               70 / 300  pytest -m gpu tests/test_gpu_vllm.py
#   filter                 150 / 300  filter length check, 100k traces, all CPU cores (optional: CPU-only)
#   collect                  5 /  60  every result so far, from $GPU_HOME/results, as $OUT/all-results.tar.gz
#
# A step that would not finish inside this call's budget (SUITE_BUDGET seconds from the start,
# default 560: the device tool stops a command at 600) is skipped and says so: run it in the next
# call. Results: $OUT/<step>.json and $OUT/<step>.log (setup steps share $OUT/setup.log), a copy
# in $GPU_HOME/results, and $OUT/suite.json with every step's status and time.
set -uo pipefail
cd "$(dirname "$0")/../.."
G=benchmarks/gpu

# --- the environment: offline, quiet, the carried packages before the image's, then distill itself
export GPU_HOME="${GPU_HOME:-/root/gpu}"
export PYTHONPATH="$GPU_HOME/site-suite:$GPU_HOME/site-vllm:$GPU_HOME/site-optional:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$GPU_HOME/site-vllm/bin:$GPU_HOME/site-suite/bin:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HOME="$GPU_HOME/hf"
export VLLM_NO_USAGE_STATS=1 VLLM_DO_NOT_TRACK=1 DO_NOT_TRACK=1
# FlashInfer's top-p sampler is JIT-compiled with nvcc on first use (no cubin package is carried):
# minutes of the lease. vLLM's torch sampler serves every side of every comparison instead.
export VLLM_USE_FLASHINFER_SAMPLER=0
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error HF_HUB_DISABLE_PROGRESS_BARS=1
export MODELS="$GPU_HOME/models" WORK="$GPU_HOME/work" RESULTS="$GPU_HOME/results"
export OUT="${OUT:-$GPU_HOME/out}"
mkdir -p "$MODELS" "$WORK" "$RESULTS" "$OUT"

step() {
  local py=python3
  case "$1" in
    receive) $py $G/wheels.py receive ;;
    install-suite) $py $G/wheels.py install suite && $py $G/selfcheck.py --groups suite --out "$OUT/selfcheck.json" ;;
    install-vllm) $py $G/wheels.py install vllm && $py $G/selfcheck.py --groups suite,vllm --out "$OUT/selfcheck.json" ;;
    install-optional) $py $G/wheels.py install optional && $py $G/selfcheck.py --groups suite,vllm --out "$OUT/selfcheck.json" ;;
    models) $py $G/make_models.py --out "$MODELS" qwen2.5-1.5b:gen qwen2.5-7b:gen qwen2.5-1.5b:train ;;
    weights-qwen7b) $py $G/make_models.py --out "$MODELS" qwen2.5-7b:train ;;
    weights-llama8b) $py $G/make_models.py --out "$MODELS" llama3.1-8b:train ;;
    sft) $py $G/bench_sft.py --model "$MODELS/qwen2.5-1.5b" --work "$WORK/sft" --out "$OUT/sft.json" --log "$OUT/sft-sides.log" ;;
    qlora-qwen7b) $py $G/bench_qlora.py --model "$MODELS/qwen2.5-7b" --recipe recipes/train/qwen2.5-7b-qlora-24gb.yaml \
        --variants chunked --work "$WORK/qlora" --out "$OUT/qlora-qwen7b.json" --log "$OUT/qlora-qwen7b-attempts.log" ;;
    qlora-llama8b) $py $G/bench_qlora.py --model "$MODELS/llama3.1-8b" --recipe recipes/train/llama3.1-8b-qlora-24gb.yaml \
        --variants chunked --work "$WORK/qlora" --out "$OUT/qlora-llama8b.json" --log "$OUT/qlora-llama8b-attempts.log" ;;
    qlora-qwen7b-unchunked) $py $G/make_models.py --out "$MODELS" qwen2.5-7b:train && \
      $py $G/bench_qlora.py --model "$MODELS/qwen2.5-7b" --recipe recipes/train/qwen2.5-7b-qlora-24gb.yaml \
        --variants unchunked --work "$WORK/qlora" --out "$OUT/qlora-qwen7b-unchunked.json" \
        --log "$OUT/qlora-qwen7b-unchunked-attempts.log" ;;
    test-train) $py -m pytest -q -m gpu tests/test_train_gpu.py -p no:cacheprovider --junitxml "$OUT/test-train.xml" ;;
    gen-qwen1.5b) $py $G/bench_vllm.py offline --model "$MODELS/qwen2.5-1.5b-gen" --cases 4096:48,16384:4 \
        --work "$WORK/gen" --out "$OUT/gen-qwen1.5b.json" ;;
    gen-qwen7b) $py $G/bench_vllm.py offline --model "$MODELS/qwen2.5-7b-gen" --cases 4096:32 --seeded-up-to 0 \
        --work "$WORK/gen" --out "$OUT/gen-qwen7b.json" ;;
    openai) $py $G/bench_vllm.py server --model "$MODELS/qwen2.5-1.5b-gen" --cases 4096:32 --seeded-up-to 0 --max-model-len 16896 \
        --work "$WORK/openai" --out "$OUT/openai.json" --log "$OUT/openai-server.log" ;;
    test-vllm) $py -m pytest -q -m gpu tests/test_gpu_vllm.py -p no:cacheprovider --junitxml "$OUT/test-vllm.xml" ;;
    filter) $py $G/bench_filter_length.py --records 100000 --loop-records 5000 --work "$WORK/filter" --out "$OUT/filter.json" ;;
    collect) tar -czf "$OUT/all-results.tar.gz" -C "$GPU_HOME" results ;;
    *) echo "unknown step $1"; return 2 ;;
  esac
}

# `timeout` needs a process to run and end as a group: this script again, for one step
if [ "${1:-}" = "--step" ]; then step "$2"; exit $?; fi

declare -A EXPECT=([receive]=5 [install-suite]=25 [install-vllm]=50 [install-optional]=40 [models]=30
  [weights-qwen7b]=45 [weights-llama8b]=50 [sft]=130 [qlora-qwen7b]=160 [qlora-llama8b]=170
  [qlora-qwen7b-unchunked]=120 [test-train]=90 [gen-qwen1.5b]=290 [gen-qwen7b]=190 [openai]=125 [test-vllm]=70
  [filter]=150 [collect]=5)
declare -A LIMIT=([receive]=60 [install-suite]=120 [install-vllm]=180 [install-optional]=180 [models]=240
  [weights-qwen7b]=240 [weights-llama8b]=240 [sft]=420 [qlora-qwen7b]=360 [qlora-llama8b]=360
  [qlora-qwen7b-unchunked]=300 [test-train]=300 [gen-qwen1.5b]=540 [gen-qwen7b]=480 [openai]=300 [test-vllm]=300
  [filter]=300 [collect]=60)
if [ "${1:-}" = "--expect" ]; then for s in "${!EXPECT[@]}"; do echo "$s ${EXPECT[$s]} ${LIMIT[$s]}"; done; exit 0; fi

BUDGET="${SUITE_BUDGET:-560}"
START=$(date +%s)
STATUS=()
# a vllm serve left by an interrupted call on this machine holds the GPU: end it first
if [ -f "$WORK/vllm-serve.pid" ]; then kill -TERM -- "-$(cat "$WORK/vllm-serve.pid")" 2>/dev/null; rm -f "$WORK/vllm-serve.pid"; fi
fresh=no
[ -f "$GPU_HOME/wheels/manifest.json" ] || fresh=yes
echo "== $(date -u +%FT%TZ)  fresh machine: $fresh  $(nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null)  disk free $(df -h --output=avail "$GPU_HOME" | tail -1)"

for s in "$@"; do
  if [ -z "${LIMIT[$s]:-}" ]; then echo "!! unknown step: $s"; STATUS+=("$s unknown 0"); continue; fi
  left=$((BUDGET - ($(date +%s) - START)))
  if [ "${EXPECT[$s]}" -gt "$left" ]; then
    echo "!! $s SKIPPED: expects ~${EXPECT[$s]} s, ${left} s left in this call; run it in the next call"
    STATUS+=("$s skipped 0"); continue
  fi
  limit=${LIMIT[$s]}; [ "$limit" -gt "$left" ] && limit=$left
  case "$s" in receive|install-*|models|weights-*|collect) log="$OUT/setup.log" ;; *) log="$OUT/$s.log" ;; esac
  echo "== $s (expects ~${EXPECT[$s]} s, limit ${limit} s) -> $log"
  echo "== $s $(date -u +%FT%TZ)" >> "$log"
  t0=$(date +%s)
  timeout --kill-after=15 "$limit" bash "$G/run_suite.sh" --step "$s" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  dt=$(($(date +%s) - t0))
  state=ok; [ "$rc" -eq 124 ] && state="timed-out"; [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && state="failed(rc=$rc)"
  echo "== $s: $state in ${dt} s"
  STATUS+=("$s $state $dt")
  for f in "$OUT/$s".* "$OUT/$s"-*; do [ -f "$f" ] && cp -f "$f" "$RESULTS/"; done
  cp -f "$OUT/setup.log" "$OUT/selfcheck.json" "$RESULTS/" 2>/dev/null
done

# at most 8 files come back from a call: fold the logs into one archive when there are more
if [ "$(find "$OUT" -maxdepth 1 -type f | wc -l)" -gt 7 ]; then
  (cd "$OUT" && shopt -s nullglob && logs=(./*.log ./*.xml) && tar -czf logs.tar.gz --remove-files "${logs[@]}")
fi
{
  printf '{"finished": "%s", "seconds": %s, "steps": [' "$(date -u +%FT%TZ)" "$(($(date +%s) - START))"
  sep=""; for s in "${STATUS[@]}"; do read -r name state dt <<< "$s"
    printf '%s{"step": "%s", "status": "%s", "seconds": %s}' "$sep" "$name" "$state" "$dt"; sep=", "; done
  echo "]}"
} > "$OUT/suite.json"
cp -f "$OUT/suite.json" "$RESULTS/suite-$(date +%s).json"
echo "== summary ($(($(date +%s) - START)) s in this call)"
for s in "${STATUS[@]}"; do echo "   $s"; done
python3 $G/wheels.py status 2>/dev/null | sed 's/^/   wheels: /'
