#!/usr/bin/env bash
# The encoder's top layers trained (encoder_train_layers, docs/pretrained.md): a cell's pretrained
# winner (results/pretrained/best/<cell>.yaml, frozen encoder) retrained with its top N layers
# trained (N = the layers its encoder_layers reads: last4 -> 4), on the retrain's seeds (1, 2, 3).
# Dev decides whether the variant replaces the winner; test is scored as the retrain scores it.
# Bengali fine's published winner is the focus study's (focus/best/bn-fine.yaml), which mixes last8:
# eight trained layers would cost about twice four, so the first round's winner (last4) is the one
# trained here, and dev compares it with both frozen models (results/pretrained/README.md).
#   runs/pretrained/finetune/<cell>/seed-N      (git-ignored run folders)
#   results/pretrained/finetune/<cell>.json      (dev and test entity macro-F1 per seed, mean, std)
# A variant: VARIANT=NAME LABEL="what it is" EXTRA="KEY=VALUE ..." trains with more overrides, into
# runs/pretrained/finetune-NAME and results/pretrained/finetune-NAME; BEST=DIR takes the winners from
# DIR (e.g. results/pretrained/focus/best), LAYERS=N trains N layers (0: the encoder stays frozen).
#   VARIANT=linear LABEL="top 4 e5 layers trained, linear lr decay" EXTRA=lr_schedule=linear
# SEEDS="1 2" trains only those seeds (default 1 2 3): two chains on other seeds can share a machine.
# The JSON is rewritten and committed (COMMIT=0: not committed) after every seed, and a seed it
# records is not trained again: the run folders are git-ignored and can be lost with the machine.
#   DISTNER_DATA=/path/to/multiconer2 nice -n 10 bash results/run_finetune.sh [CELL ...]
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DISTNER_DATA:?set DISTNER_DATA to the MultiCoNER II data root}"
export PYTHONUNBUFFERED=1
cells=("$@")
[ ${#cells[@]} -gt 0 ] || cells=(en-fine)
best=${BEST:-results/pretrained/best}
variant=${VARIANT:+-$VARIANT}
read -r -a extra <<< "${EXTRA:-}"
if [ -n "$variant" ] && { [ ${#extra[@]} -eq 0 ] || [ -z "${LABEL:-}" ]; }; then
  echo "VARIANT=$VARIANT needs EXTRA overrides and a LABEL" >&2; exit 2
fi
runs=runs/pretrained/finetune$variant
out=results/pretrained/finetune$variant
commit=${COMMIT:-1}
mkdir -p "$out"
source results/pretrained_steps.sh  # commit_cell

# record(cell, layers, what): rewrite $out/<cell>.json from the finished run folders and what it recorded
record() {
  local label=${LABEL:-top $2 e5 layers trained}
  python - "$1" "$runs/$1" "$out/$1.json" "$2" "$best/$1.yaml" "$label" "${extra[@]}" <<'PY'
import json, statistics, sys
from pathlib import Path
cell, root, dest, layers = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
config, label, extra = sys.argv[5], sys.argv[6], sys.argv[7:]
old = json.loads(dest.read_text()) if dest.is_file() else {}
by_seed = {r["seed"]: r for r in old.get("runs", [])}
for p in root.glob("seed-*/metrics.json"):  # run folders relative to the project root
    m = json.loads(p.read_text())
    by_seed[m["seed"]] = {
        "seed": m["seed"],
        "dev": m["dev"]["entity_macro_f1"],
        "test": m["test"]["entity_macro_f1"],
        "test_micro": m["test"]["entity_micro_f1"],
        "best_epoch": m.get("best_epoch"),
        "train_seconds": m.get("train_seconds"),
        "run": str(p.parent),
    }
rows = [by_seed[s] for s in sorted(by_seed)]

def stats(key):
    v = [r[key] for r in rows]
    return {"mean": statistics.fmean(v) if v else None, "std": statistics.stdev(v) if len(v) > 1 else None}

result = {
    "cell": cell,
    "config": config,
    "label": label,
    "set": [f"encoder_train_layers={layers}", *extra],
    "metric": "entity_macro_f1",
    "runs": rows,
    "dev": stats("dev"),
    "test": stats("test"),
    "test_micro": stats("test_micro"),
}
dest.write_text(json.dumps(result, indent=2) + "\n")
print(f"{dest}: {len(rows)} seeds, dev {result['dev']['mean']}, test {result['test']['mean']}")
PY
  commit_cell "$1" "$3"
}

# recorded(cell, seed): whether the committed JSON already holds that seed
recorded() {
  [ -f "$out/$1.json" ] && python -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(int(sys.argv[2]) not in [r["seed"] for r in d["runs"]])' "$out/$1.json" "$2"
}

for cell in "${cells[@]}"; do
  lang=${cell%-*} gran=${cell#*-}
  [ -f "$best/$cell.yaml" ] || { echo "== $cell: no $best/$cell.yaml"; continue; }
  # N: as many trained layers as encoder_layers reads (last4 -> 4), so that every mixed layer is trained
  layers=${LAYERS:-$(python -c 'import sys, yaml; from distner.config import encoder_layer_ids as ids; print(13 - min(ids(yaml.safe_load(open(sys.argv[1]))["encoder_layers"])))' "$best/$cell.yaml")}
  for seed in ${SEEDS:-1 2 3}; do
    run=$runs/$cell/seed-$seed
    if [ -f "$run/metrics.json" ] || recorded "$cell" "$seed"; then echo "== $run: done"; continue; fi
    sets=(--set "encoder_train_layers=$layers" --set "seed=$seed")
    for kv in "${extra[@]}"; do sets+=(--set "$kv"); done
    echo "== $run: encoder_train_layers=$layers ${extra[*]} ($(date -u +%FT%TZ))"
    python -m distner train --lang "$lang" --granularity "$gran" --config "$best/$cell.yaml" \
      "${sets[@]}" --out "$run" --quiet
    record "$cell" "$layers" "encoder_train_layers=$layers ${extra[*]}, seed $seed"
  done
done
