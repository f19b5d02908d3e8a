#!/usr/bin/env bash
# Second GPU script of 2026-11-30 (after gpu_check.sh; issue 20): where a packed study's wall time
# goes, and what CUDA graphs would buy a step. Same setup as gpu_check.sh (carry .whl and .data).
# Its caps sum to 630 s, over one device call's 600: drop a step to fit. As run then, its two
# studies had 170 s caps and both ran past them (cause not confirmed; results/performance/README.md).
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh"
# the seed model's step eager and as CUDA graphs, 1, 4 and 8 members in threads
step 150 python3 benchmarks/graph_probe.py --members 1,4,8 | tee "$out/graph_probe.jsonl"
# the packed study of gpu_check.sh again, now with its driver's phases and its trials' timeline
step 240 python3 benchmarks/tune_overhead.py --trials 16 --dims 520 --sentences 7410 --epochs 2 \
  --gpus-per-trial 1 --cpus-per-trial 4 --pack 8 --no-serial | tee "$out/tune_overhead.jsonl"
# the same at 10 epochs (the seed config's) on 3,000 sentences: the fixed costs spread over more work
step 240 python3 benchmarks/tune_overhead.py --trials 16 --dims 520 --sentences 3000 --epochs 10 \
  --gpus-per-trial 1 --cpus-per-trial 4 --pack 8 --no-serial | tee -a "$out/tune_overhead.jsonl"
