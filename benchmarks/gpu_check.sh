#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (see the project's device notes):
#   ../shared/tools/gpu-wheels.sh            # here, once: wheels for Ray + Optuna into .whl/
#   mkdir -p .data && cp -r ../shared/data/multiconer2 .data/   # git-ignored; carry it too
#   device run (carry .whl and .data, timeout_s 600):  bash benchmarks/gpu_check.sh
# Prints the JSON lines of every benchmark on CUDA, then the table of docs/performance.md's targets
# (benchmarks/gpu_table.py), and writes them to $OUT (or ./gpu-results). About 5 minutes on one
# H200 (each step is capped, and a failure does not stop the rest; 4 minutes on 2026-11-30,
# before the graph probe was added).
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
{
  # full Hindi train, seed config, batch 35: bare loop / Lightning's fit / the lean trial loop
  step 120 python3 benchmarks/train_throughput.py --lang hi --device cuda --epochs 2
  # the levers winner against the seed config, through fit and through the lean trial loop
  step 120 python3 benchmarks/train_throughput.py --levers --device cuda --max-train-sentences 7410
  # 8 seed-config members side by side in one process (one packer, no Ray) against the bare loop
  step 90 python3 benchmarks/train_throughput.py --lang hi --device cuda --epochs 2 --pack 8
} | tee "$out/throughput.jsonl"
# 16 seed-size trials x 2 epochs on full Hindi as one study with 8 trials per packer, against the
# same 16 fits one after another in one process (study/sequential target >= 3; aggregate >= 5)
step 240 python3 benchmarks/tune_overhead.py --trials 16 --dims 520 --sentences 7410 --epochs 2 \
  --gpus-per-trial 1 --cpus-per-trial 4 --pack 8 --no-serial | tee "$out/tune_overhead.jsonl"
# the seed model's whole step as CUDA graphs (1 and 8 members), eager beside it: the next lever's ceiling
step 120 python3 benchmarks/graph_probe.py --members 1,8 | tee "$out/graph_probe.jsonl"
python3 benchmarks/gpu_table.py "$out"/throughput.jsonl "$out"/tune_overhead.jsonl "$out"/graph_probe.jsonl \
  | tee "$out/table.md"
