#!/usr/bin/env bash
# The six cells again with the pretrained levers (issue 21, docs/pretrained.md): for each cell,
# `distner tune` over tune_spaces/pretrained.yaml, warm-started from today's tuned winner
# (results/best/<cell>.yaml, no levers) and that winner with encoder_features=e5 and with both
# levers, 16 trials; then `distner retrain` (3 seeds) and `distner report`. Its outputs go to
# results/pretrained/, beside today's results/ (which it only reads). Resumable like run_cells.sh: run it again after an interruption.
# Each finished step is committed (COMMIT=0: not): the study's outputs as soon as it ends, then the
# retrain's report; a new machine without runs/ goes on from the committed study.
#   DISTNER_DATA=/path/to/multiconer2 nice -n 10 bash results/run_pretrained.sh [CELL ...]
# Needs the pretrained extra. The encoder's feature caches live in $DISTNER_CACHE (default
# ~/.cache/distner): each study's driver builds what its space can ask for before its trials run.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DISTNER_DATA:?set DISTNER_DATA to the MultiCoNER II data root}"
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled} PYTHONUNBUFFERED=1
cells=("$@")
[ ${#cells[@]} -gt 0 ] || cells=(hi-fine en-fine bn-fine hi-coarse bn-coarse en-coarse)
out=results/pretrained
runs=runs/pretrained
commit=${COMMIT:-1}
mkdir -p "$out/starts"

source results/pretrained_steps.sh  # commit_cell, study_step, retrain_step

for cell in "${cells[@]}"; do
  if [ -f "$out/studies/$cell/summary.json" ] && python -c 'import json, sys
sys.exit(sys.argv[2] not in json.load(open(sys.argv[1]))["cells"])' "$out/report.json" "$cell" 2>/dev/null; then
    echo "== $cell: done ($out/report.json has it)"; continue
  fi
  # warm starts, written once (committed with the results: they shape the study)
  for lever in none encoder both; do
    f=$out/starts/$cell-$lever.yaml
    [ -f "$f" ] && continue
    case $lever in
      none) sets=() ;;
      encoder) sets=(encoder_features=e5) ;;
      both) sets=(encoder_features=e5 subword_vectors=e5) ;;
    esac
    python - "results/best/$cell.yaml" "$f" "${sets[@]}" <<'PY'
import sys, yaml
from distner.config import load_config
src, dst, sets = sys.argv[1], sys.argv[2], sys.argv[3:]
cfg = load_config(src, ["embedding_dim=384", *sets]).to_flat()
with open(dst, "w") as fh:
    fh.write(f"# warm start: {src} with {' '.join(sets) or 'no lever'} (embedding_dim 384, as the space fixes it)\n")
    yaml.safe_dump(cfg, fh, sort_keys=False)
PY
  done
  if ! [ -f "$out/studies/$cell/summary.json" ] || ! [ -f "$out/best/$cell.yaml" ]; then
    study_step "$cell" "16-trial study" --space tune_spaces/pretrained.yaml \
      --start-from "$out/starts/$cell-none.yaml" --start-from "$out/starts/$cell-encoder.yaml" \
      --start-from "$out/starts/$cell-both.yaml" --num-samples 16
  fi
  # the winner and the reference baseline, 3 seeds each
  retrain_step "$cell"
done
