#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (see the project's device notes):
#   ../shared/tools/gpu-wheels.sh            # here, once: wheels for Ray + Optuna into .whl/
#   mkdir -p .data && cp -r ../shared/data/multiconer2 .data/   # git-ignored; carry it too
#   device run (carry .whl and .data):  bash benchmarks/gpu_check.sh
# Prints the JSON lines of every benchmark on CUDA and writes them to $OUT (or ./gpu-results).
# About 7-9 minutes on one H100/H200 (the first run, on an H200: 5.5 without the MPS step); each step is independent, so a failure does not stop the rest.
set -uo pipefail
out=${OUT:-gpu-results}; mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export DISTNER_DATA=${DISTNER_DATA:-$PWD/.data/multiconer2} RAY_AUTH_MODE=disabled PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
step() { echo "== $*" >&2; timeout 240 "$@" || echo "{\"failed\": \"$*\", \"rc\": $?}"; }
{
  # distner's trainer against a bare loop, seed config, batch 35 (target ratio >= 0.9); then bf16
  step python3 benchmarks/train_throughput.py --lang hi --device cuda --epochs 2
  step python3 benchmarks/train_throughput.py --lang hi --device cuda --epochs 2 --set precision=bf16-mixed
  # the levers winner against the seed config through distner's own path, full Hindi train
  step python3 benchmarks/train_throughput.py --levers --device cuda --max-train-sentences 7410
} | tee "$out/throughput.jsonl"
# 16 seed-size trials on full Hindi, 4 per GPU, against the same trials one after another without
# Ray (target speedup >= 2); also the checkpoint's size and cost per epoch (target <= 5%)
pack=(benchmarks/tune_overhead.py --trials 16 --dims 520 --sentences 7410 --epochs 2
  --gpus-per-trial 0.25 --cpus-per-trial 1 --no-serial)
step python3 "${pack[@]}" | tee "$out/tune_overhead.jsonl"
# The same study under NVIDIA MPS, which lets kernels of several processes share the GPU at once
# instead of taking turns (the first H200 run: 4 trials per GPU no faster than one after another).
# The daemon is user-space and quit right after; the GPU's compute mode is left as it is.
if command -v nvidia-cuda-mps-control >/dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  if nvidia-cuda-mps-control -d; then
    step python3 "${pack[@]}" | sed 's/^{/{"mps": true, /' | tee -a "$out/tune_overhead.jsonl"
    echo quit | nvidia-cuda-mps-control
  fi
fi
