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

commit_cell() {  # commit_cell CELL WHAT: what results/pretrained holds now (COMMIT=0: nothing)
  [ "$commit" = 1 ] && [ -n "$(git status --porcelain -- "$out")" ] || return 0
  for try in 1 2 3 4 5; do
    git add "$out" && git commit -q -m "results/pretrained: $1 ($2)" -- "$out" && break || sleep 20
  done
}

for cell in "${cells[@]}"; do
  lang=${cell%-*} gran=${cell#*-}
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
    # the study (resumed if its folder is here), its outputs committed before the retrain starts
    resume=(); [ -f "$runs/$cell/distner.json" ] && resume=(--resume)
    echo "== $cell: study ${resume[*]} ($(date -u +%FT%TZ))"
    t0=$(date +%s)
    python -m distner tune --lang "$lang" --granularity "$gran" "${resume[@]}" \
      --space tune_spaces/pretrained.yaml \
      --start-from "$out/starts/$cell-none.yaml" --start-from "$out/starts/$cell-encoder.yaml" \
      --start-from "$out/starts/$cell-both.yaml" \
      --num-samples 16 --max-concurrent 2 --cpus-per-trial 1 --grace-period 3 \
      --storage "$runs" --best-dir "$out/best" --verbose 1
    t1=$(date +%s)
    mkdir -p "$out/studies/$cell"
    # optuna.db too (a few hundred kB): the report's importances read it
    cp "$runs/$cell/trials.csv" "$runs/$cell/summary.json" "$runs/$cell/optuna.db" "$out/studies/$cell/"
    printf '%s\t%s\t%s\t%s\n' "$cell" "$(hostname)" "$((t1 - t0))" "$(nproc)" >> "$out/timings.tsv"
    commit_cell "$cell" "16-trial study, its winner best/$cell.yaml"
  fi
  # the winner and the reference baseline, 3 seeds each; finished seed runs are skipped. Where the
  # study's folder (git-ignored, under runs/) is gone, as on a new machine, its committed outputs
  # stand in for it: the report reads the trials from there.
  [ -e "$runs/$cell" ] || { mkdir -p "$runs" && ln -s "../../$out/studies/$cell" "$runs/$cell"; }
  echo "== $cell: retrain ($(date -u +%FT%TZ))"
  python -m distner retrain --lang "$lang" --granularity "$gran" --config "$out/best/$cell.yaml" \
    --seeds 3 --retrain-dir "$runs/retrain"
  python -m distner report --finished-only --retrain-dir "$runs/retrain" --report-dir "$out" \
    --against results/report.json --keep-reported
  commit_cell "$cell" "3-seed retrain, report"
done
