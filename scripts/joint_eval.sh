#!/usr/bin/env bash
# One skyscout-tiny for a mixed catalog: fine-tune on UC Merced (human captions) and EuroSAT (template
# captions) together, then score zero-shot top-1 on each val split, with the real CLI on a fresh SKYSCOUT_HOME.
#
#   scripts/joint_eval.sh [EUROSAT_PER_CLASS] [TRAIN OPTIONS]
#
# EUROSAT_PER_CLASS (default 250) EuroSAT train images per class go in beside UC Merced's 1,282, so that
# neither source drowns the other (10,000 EuroSAT images would be 89% of every epoch). TRAIN OPTIONS go
# to `skyscout train` (default here: --epochs 16, about as many samples as the recipe's UC Merced run).
# DATA (default ../shared/data) holds ucm_captions/ and eurosat/. Prints one summary line. With TRANSDUCTIVE=PREFIX
# it also runs scripts/transductive_eval.py on each val split and writes PREFIX<source>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
per_class=${1:-250}
shift || true
data=$(cd "${DATA:-../shared/data}" && pwd)
export SKYSCOUT_HOME=${SKYSCOUT_HOME:-$(mktemp -d)/home}
work=$(mkdir -p "$SKYSCOUT_HOME/../joint-manifests/eurosat" && cd "$SKYSCOUT_HOME/../joint-manifests" && pwd)
export SKYSCOUT_DATA_ROOTS=$data:$work
sky() { .venv/bin/skyscout "$@"; }
field() { .venv/bin/python -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# the first EUROSAT_PER_CLASS train rows of each class, with absolute image paths
.venv/bin/python - "$data/eurosat/train.jsonl" "$work/eurosat/train.jsonl" "$per_class" <<'PY'
import json, sys
from pathlib import Path
src, out, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
taken, rows = {}, []
for line in src.read_text().splitlines():
    row = json.loads(line)
    if taken.get(row["label"], 0) < n:
        taken[row["label"]] = taken.get(row["label"], 0) + 1
        rows.append({**row, "image": str((src.parent / row["image"]).resolve())})
out.write_text("".join(json.dumps(r) + "\n" for r in rows))
PY
for manifest in "$data/ucm_captions/train.jsonl" "$data/ucm_captions/val.jsonl" "$work/eurosat/train.jsonl" \
                "$data/eurosat/val.jsonl"; do
  sky ingest --manifest "$manifest" --source "$(basename "$(dirname "$manifest")")" --json --no-progress | field 'd["added"], "added from '"$(basename "$(dirname "$manifest")")/$(basename "$manifest")"'"'
done
sky caption --captioner template --only-uncaptioned --json --no-progress | field 'd["captioned"], "template-captioned"'
ds=$(sky dataset create --val 0 --test 0 --json | field 'd["id"]')
[ $# -gt 0 ] || set -- --epochs 16
start=$(date +%s)
train=$(sky train --model "${MODEL:-skyscout-tiny}" --dataset "$ds" --json --no-progress "$@")
seconds=$(( $(date +%s) - start ))
mv=$(echo "$train" | field 'd["model_version"]')
for source in ucm_captions eurosat; do
  ds_src=$(sky dataset create --source "$source" --val 0 --test 0 --json | field 'd["id"]')
  top1=$(sky eval --model "$mv" --dataset "$ds_src" --split val --json | field 'd["zeroshot"]["top1"]')
  echo "joint model $mv on $source val: zero-shot top-1 $top1"
  if [ -n "${TRANSDUCTIVE:-}" ]; then
    .venv/bin/python scripts/transductive_eval.py --model "$mv" --dataset "$ds_src" --json "$TRANSDUCTIVE$source.json"
  fi
done
echo "joint: trained in ${seconds} s on dataset $ds (UC Merced train + $per_class EuroSAT train images per class); home $SKYSCOUT_HOME"
