#!/usr/bin/env bash
# Ablation on Hindi fine: the tuned winner (results/best/hi-fine.yaml) minus one lever at a time,
# one seed each (seed 1, as the retrain's tuned seed-1 run, which is the "winner" row), full data.
# Writes results/ablation/hi-fine.tsv (dev and test entity macro-F1, change against the winner) and
# commits it when COMMIT=1 (the default). Resumable: finished variants are skipped.
#   DISTNER_DATA=/path/to/multiconer2 nice -n 10 bash results/ablation.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DISTNER_DATA:?set DISTNER_DATA to the MultiCoNER II data root}"
export PYTHONUNBUFFERED=1
runs=runs/results/ablation/hi-fine
winner=runs/results/retrain/hi-fine/tuned/seed-1
[ -f "$winner/metrics.json" ] || { echo "ablation: $winner not found; run results/run_cells.sh hi-fine first" >&2; exit 2; }
declare -A variants=(
  [no-char-cnn]="char_features=false"
  [no-crf]="crf=false"
  [unidirectional]="bidirectional=false"
  [truncate-25]="seq_len=25"
  [no-word-dropout]="word_dropout=0.0"
)
for name in no-char-cnn no-crf unidirectional truncate-25 no-word-dropout; do
  [ -f "$runs/$name/metrics.json" ] && { echo "== $name: done"; continue; }
  echo "== $name: ${variants[$name]} ($(date -u +%FT%TZ))"
  python -m distner train --lang hi --granularity fine --config results/best/hi-fine.yaml \
    --set seed=1 --set "${variants[$name]}" --out "$runs/$name" --overwrite --quiet
done
mkdir -p results/ablation
python - "$winner" "$runs" <<'EOF' > results/ablation/hi-fine.tsv
import json, sys
from pathlib import Path
winner, runs = Path(sys.argv[1]), Path(sys.argv[2])
rows = [("winner (results/best/hi-fine.yaml)", winner)] + [(d.name, d) for d in sorted(runs.iterdir())]
w = json.loads((winner / "metrics.json").read_text())
print("variant\tchange\tdev_macro_f1\ttest_macro_f1\tdelta_test\ttrain_minutes")
for name, d in rows:
    m = json.loads((d / "metrics.json").read_text())
    change = {k: v for k, v in m["config"].items() if v != w["config"].get(k)}
    dev, test = (100 * m[s]["entity_macro_f1"] for s in ("dev", "test"))
    delta = test - 100 * w["test"]["entity_macro_f1"]
    print(f"{name}\t{change or '-'}\t{dev:.2f}\t{test:.2f}\t{delta:+.2f}\t{m['train_seconds'] / 60:.1f}")
EOF
cat results/ablation/hi-fine.tsv
if [ "${COMMIT:-1}" = 1 ]; then
  for try in 1 2 3 4 5; do
    git add results/ablation && git commit -q -m "results: Hindi fine ablation (one lever off at a time, seed 1)" -- results/ablation \
      && break || sleep 20
  done
fi
