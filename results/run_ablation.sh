#!/usr/bin/env bash
# The pretrained levers' ablation (issue 21, docs/pretrained.md): a cell's pretrained winner
# (results/pretrained/best/<cell>.yaml) retrained with one lever off at a time, on the retrain's
# seeds (1, 2, 3), scored on test like the retrain. The full winner's own runs are the retrain's
# (runs/pretrained/retrain/<cell>/tuned); this adds, per lever:
#   runs/pretrained/ablation/<cell>/no-<lever>/seed-N    (git-ignored run folders)
#   results/pretrained/ablation/<cell>.json               (test entity macro-F1 per seed, mean, std)
# Resumable: a finished seed run is skipped. Run after run_pretrained.sh has made best/<cell>.yaml.
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
mkdir -p "$out"

for cell in "${cells[@]}"; do
  lang=${cell%-*} gran=${cell#*-}
  [ -f "$best/$cell.yaml" ] || { echo "== $cell: no $best/$cell.yaml yet"; continue; }
  for lever in encoder_features subword_vectors; do
    for seed in 1 2 3; do
      run=$runs/$cell/no-$lever/seed-$seed
      if [ -f "$run/metrics.json" ]; then echo "== $run: done"; continue; fi
      echo "== $run ($(date -u +%FT%TZ))"
      python -m distner train --lang "$lang" --granularity "$gran" --config "$best/$cell.yaml" \
        --set "$lever=" --set "seed=$seed" --out "$run" --quiet
    done
  done
  python - "$cell" "$runs/$cell" "$out/$cell.json" <<'PY'
import json, statistics, sys
from pathlib import Path
cell, root, dest = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
result = {"cell": cell, "config": f"results/pretrained/best/{cell}.yaml", "metric": "test entity_macro_f1"}
for lever in ("encoder_features", "subword_vectors"):
    runs = sorted((root / f"no-{lever}").glob("seed-*/metrics.json"))
    scores = [json.loads(p.read_text())["test"]["entity_macro_f1"] for p in runs]
    result[f"no-{lever}"] = {
        "seeds": [json.loads(p.read_text())["seed"] for p in runs],
        "scores": scores,
        "mean": statistics.fmean(scores) if scores else None,
        "std": statistics.stdev(scores) if len(scores) > 1 else None,
        "runs": [str(p.parent) for p in runs],  # relative to the project root
    }
dest.write_text(json.dumps(result, indent=2) + "\n")
print(f"{dest}: " + ", ".join(f"{k} {v['mean']:.4f}" for k, v in result.items() if isinstance(v, dict) and v["mean"] is not None))
PY
done
