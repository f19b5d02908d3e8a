# The steps results/run_pretrained.sh and results/run_pretrained_focus.sh share, sourced by both.
# They read the caller's $out (committed outputs), $runs (git-ignored run folders) and $commit.

commit_cell() {  # commit_cell CELL WHAT: what $out holds now (COMMIT=0: nothing)
  [ "$commit" = 1 ] && [ -n "$(git status --porcelain -- "$out")" ] || return 0
  for try in 1 2 3 4 5; do
    git add "$out" && git commit -q -m "$out: $1 ($2)" -- "$out" && break || sleep 20
  done
}

# study_step CELL WHAT TUNE-ARGS...: the cell's study (resumed if its folder is here), its outputs
# copied to $out/studies/CELL (optuna.db too, a few hundred kB: the report's importances read it),
# its time to $out/timings.tsv, then committed before any retrain starts
study_step() {
  local cell=$1 what=$2 resume=() t0 t1
  shift 2
  [ -f "$runs/$cell/distner.json" ] && resume=(--resume)
  echo "== $cell: study ${resume[*]} ($(date -u +%FT%TZ))"
  t0=$(date +%s)
  python -m distner tune --lang "${cell%-*}" --granularity "${cell#*-}" "${resume[@]}" "$@" \
    --max-concurrent 2 --cpus-per-trial 1 --grace-period 3 \
    --storage "$runs" --best-dir "$out/best" --verbose 1
  t1=$(date +%s)
  mkdir -p "$out/studies/$cell"
  cp "$runs/$cell/trials.csv" "$runs/$cell/summary.json" "$runs/$cell/optuna.db" "$out/studies/$cell/"
  printf '%s\t%s\t%s\t%s\n' "$cell" "$(hostname)" "$((t1 - t0))" "$(nproc)" >> "$out/timings.tsv"
  commit_cell "$cell" "$what, its winner best/$cell.yaml"
}

# retrain_step CELL: $out/best/CELL.yaml and the reference baseline, 3 seeds each (finished seed runs
# are skipped), then the report against results/report.json, committed. Where the study's folder
# (git-ignored) is gone, as on a new machine, its committed outputs stand in for it: the report
# reads the trials from there.
retrain_step() {
  local cell=$1
  [ -e "$runs/$cell" ] || { mkdir -p "$runs" && ln -s "../../$out/studies/$cell" "$runs/$cell"; }
  echo "== $cell: retrain ($(date -u +%FT%TZ))"
  python -m distner retrain --lang "${cell%-*}" --granularity "${cell#*-}" --config "$out/best/$cell.yaml" \
    --seeds 3 --retrain-dir "$runs/retrain"
  python -m distner report --finished-only --retrain-dir "$runs/retrain" --report-dir "$out" \
    --against results/report.json --keep-reported
  commit_cell "$cell" "3-seed retrain, report"
}
