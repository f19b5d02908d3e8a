#!/usr/bin/env bash
# The pretrained levers' ablation (issue 21, docs/pretrained.md): a cell's pretrained winner
# (results/pretrained/best/<cell>.yaml) retrained with one lever off at a time, on the retrain's
# seeds (1, 2, 3), scored on test like the retrain. The full winner's own runs are the retrain's
# (runs/pretrained/retrain/<cell>/tuned); this adds, per lever:
#   runs/pretrained/ablation/<cell>/no-<lever>/seed-N    (git-ignored run folders)
#   results/pretrained/ablation/<cell>.json               (test entity macro-F1 per seed, mean, std)
# The JSON is rewritten and committed (COMMIT=0: not committed) after every seed, and a seed it
# records is not trained again: the run folders are git-ignored and can be lost with the machine,
# the committed scores are not. Run after run_pretrained.sh has made best/<cell>.yaml.
#   DISTNER_DATA=/path/to/multiconer2 nice -n 10 bash results/run_ablation.sh [CELL ...]
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DISTNER_DATA:?set DISTNER_DATA to the MultiCoNER II data root}"
export PYTHONUNBUFFERED=1
cells=("$@")
[ ${#cells[@]} -gt 0 ] || cells=(hi-fine en-fine)
best=results/pretrained/best
runs=runs/pretrained/ablation
out=results/pretrained/ablation
commit=${COMMIT:-1}
mkdir -p "$out"

# record(cell): rewrite $out/<cell>.json from the finished run folders and what it already recorded
record() {
  python - "$1" "$runs/$1" "$out/$1.json" <<'PY'
import json, statistics, sys
from pathlib import Path
cell, root, dest = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
old = json.loads(dest.read_text()) if dest.is_file() else {}
result = {"cell": cell, "config": f"results/pretrained/best/{cell}.yaml", "metric": "test entity_macro_f1"}
for lever in ("encoder_features", "subword_vectors"):
    key = f"no-{lever}"
    had = old.get(key) or {"seeds": [], "scores": [], "runs": []}
    by_seed = {s: (score, run) for s, score, run in zip(had["seeds"], had["scores"], had["runs"])}
    for p in (root / key).glob("seed-*/metrics.json"):  # relative to the project root
        m = json.loads(p.read_text())
        by_seed[m["seed"]] = (m["test"]["entity_macro_f1"], str(p.parent))
    seeds = sorted(by_seed)
    scores = [by_seed[s][0] for s in seeds]
    result[key] = {
        "seeds": seeds,
        "scores": scores,
        "mean": statistics.fmean(scores) if scores else None,
        "std": statistics.stdev(scores) if len(scores) > 1 else None,
        "runs": [by_seed[s][1] for s in seeds],
    }
dest.write_text(json.dumps(result, indent=2) + "\n")
print(f"{dest}: " + ", ".join(f"{k} {v['mean']:.4f} ({len(v['seeds'])} seeds)" for k, v in result.items() if isinstance(v, dict) and v["mean"] is not None))
PY
  if [ "$commit" = 1 ] && [ -n "$(git status --porcelain -- "$out/$1.json")" ]; then
    for try in 1 2 3 4 5; do
      git add "$out/$1.json" && git commit -q -m "results/pretrained/ablation: $1 ($2)" -- "$out/$1.json" \
        && break || sleep 20
    done
  fi
}

# recorded(cell, lever, seed): whether the committed JSON already holds that seed's score
recorded() {
  [ -f "$out/$1.json" ] && python -c 'import json,sys; d=json.load(open(sys.argv[1])).get(f"no-{sys.argv[2]}") or {}; sys.exit(int(sys.argv[3]) not in d.get("seeds", []))' "$out/$1.json" "$2" "$3"
}

for cell in "${cells[@]}"; do
  lang=${cell%-*} gran=${cell#*-}
  [ -f "$best/$cell.yaml" ] || { echo "== $cell: no $best/$cell.yaml yet"; continue; }
  for lever in encoder_features subword_vectors; do
    for seed in 1 2 3; do
      run=$runs/$cell/no-$lever/seed-$seed
      if [ -f "$run/metrics.json" ] || recorded "$cell" "$lever" "$seed"; then echo "== $run: done"; continue; fi
      echo "== $run ($(date -u +%FT%TZ))"
      python -m distner train --lang "$lang" --granularity "$gran" --config "$best/$cell.yaml" \
        --set "$lever=" --set "seed=$seed" --out "$run" --quiet
      record "$cell" "no-$lever seed $seed"
    done
  done
  record "$cell" "all seeds"
done
