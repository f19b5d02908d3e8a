#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (see the project's device notes):
#   ../shared/tools/gpu-wheels.sh            # here, once: wheels for Ray + Optuna into .whl/
#   device run (carry .whl and a copy of the data under .data/):  bash benchmarks/gpu_check.sh
# Prints the JSON lines of both benchmarks on CUDA; writes them to $OUT (or ./gpu-results).
set -euo pipefail
out=${OUT:-gpu-results}; mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export DISTNER_DATA=${DISTNER_DATA:-$PWD/.data/multiconer2} RAY_AUTH_MODE=disabled PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
# training path vs a bare loop, seed config, batch 35; then with the CRF and char encoder on
python3 benchmarks/train_throughput.py --lang hi --device cuda --epochs 2 | tee "$out/throughput.jsonl"
python3 benchmarks/train_throughput.py --lang hi --device cuda --epochs 2 --set crf=true --set char_features=true | tee -a "$out/throughput.jsonl"
# what Ray costs: 8 seed-sized trials, 4 per GPU, against the same trials run one after another
python3 benchmarks/tune_overhead.py --trials 8 --dims 520 --sentences 7410 --epochs 3 --gpus-per-trial 0.25 | tee "$out/tune_overhead.jsonl"
