#!/usr/bin/env bash
# The six-cell results under results/: for each cell, `distner pipeline` (tune -> retrain -> report)
# on the full data, then its small outputs are copied into results/ and committed. Resumable: run it
# again after an interruption; finished cells are skipped, an unfinished study is resumed and
# retraining skips seed runs that finished (see docs/tuning.md).
#   DISTNER_DATA=/path/to/multiconer2 nice -n 10 bash results/run_cells.sh [CELL ...]
# Big outputs (trial folders, checkpoints, weights) stay under runs/results/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DISTNER_DATA:?set DISTNER_DATA to the MultiCoNER II data root}"
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled} PYTHONUNBUFFERED=1
cells=("$@")
[ ${#cells[@]} -gt 0 ] || cells=(hi-fine bn-fine hi-coarse bn-coarse en-fine en-coarse)
runs=runs/results
commit=${COMMIT:-1}

for cell in "${cells[@]}"; do
  lang=${cell%-*} gran=${cell#*-}
  if [ -f "results/studies/$cell/summary.json" ] && [ -f "$runs/retrain/$cell/retrain.json" ]; then
    echo "== $cell: done"; continue
  fi
  # warm starts: the Hindi levers winner, then every finished cell's winner (fixed when the study
  # starts; a resumed study finds the same files, since later cells are not done yet)
  starts=(--start-from results/configs/hi-fine-levers.yaml)
  for prev in results/best/*.yaml; do
    [ -f "$prev" ] && [ "$prev" != "results/best/$cell.yaml" ] && starts+=(--start-from "$prev")
  done
  echo "== $cell: pipeline ($(date -u +%FT%TZ))"
  t0=$(date +%s)
  python -m distner pipeline --langs "$lang" --granularities "$gran" \
    --space tune_spaces/extended.yaml "${starts[@]}" \
    --num-samples 16 --max-concurrent 2 --cpus-per-trial 1 --grace-period 3 \
    --seeds 3 --storage "$runs" --best-dir results/best --retrain-dir "$runs/retrain" \
    --report-dir "$runs/report-$cell" --verbose 1
  t1=$(date +%s)
  mkdir -p "results/studies/$cell"
  cp "$runs/$cell/trials.csv" "$runs/$cell/summary.json" "results/studies/$cell/"
  printf '%s\t%s\t%s\t%s\n' "$cell" "$(hostname)" "$((t1 - t0))" "$(nproc)" >> results/timings.tsv
  # the report of every cell finished so far
  python -m distner report --finished-only --retrain-dir "$runs/retrain" --report-dir results
  if [ "$commit" = 1 ]; then
    for try in 1 2 3 4 5; do
      git add results && git commit -q -m "results: $cell (study, 3-seed retrain, report)" -- results \
        && break || sleep 20
    done
  fi
done
