#!/usr/bin/env bash
# Reproduce a fine-tuning figure of the README: zero-shot top-1 on a val split before and after
# fine-tuning skyscout-tiny on the matching train split, with the real CLI on a fresh SKYSCOUT_HOME.
#
#   scripts/finetune_eval.sh ucm_captions [TRAIN OPTIONS]   # human captions (UCM-captions)
#   scripts/finetune_eval.sh eurosat [TRAIN OPTIONS]        # labels only: template captions first
#
# TRAIN OPTIONS go to `skyscout train` (e.g. --epochs 3); without them it uses skyscout-tiny's recipe.
# With TRANSDUCTIVE=FILE it also runs scripts/transductive_eval.py on the model and writes its figures to FILE.
# With HOLDOUT=FRACTION (e.g. 0.2) val is never read: only train.jsonl is ingested, without its split, a
# stratified FRACTION of it is held out of training, and the figure is measured on that holdout. This is
# how recipes are chosen (issue 17: tune without val).
#
# DATA (default ../shared/data) holds <name>/train.jsonl and <name>/val.jsonl. Prints a summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/finetune_eval.sh ucm_captions|eurosat [TRAIN OPTIONS]}
shift
data=$(cd "${DATA:-../shared/data}" && pwd)
export SKYSCOUT_HOME=${SKYSCOUT_HOME:-$(mktemp -d)/home}
export SKYSCOUT_DATA_ROOTS=$data
sky() { .venv/bin/skyscout "$@"; }
field() { .venv/bin/python -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

if [ -n "${HOLDOUT:-}" ]; then  # train rows only, split removed and paths made absolute, so the dataset splits them
  manifest=$(mktemp -d)/train-unsplit.jsonl
  export SKYSCOUT_DATA_ROOTS=$data:$(dirname "$manifest")
  .venv/bin/python - "$data/$name" "$manifest" <<'PY'
import json, sys
from pathlib import Path
root, dest = Path(sys.argv[1]), Path(sys.argv[2])
with open(root / "train.jsonl") as src, open(dest, "w") as out:
    for line in src:
        row = json.loads(line)
        row.pop("split", None)
        row["image"] = str(root / row["image"])
        out.write(json.dumps(row) + "\n")
PY
  sky ingest --manifest "$manifest" --source "$name" --json --no-progress | field 'd["added"], "added"'
  split=holdout
else
  sky ingest --manifest "$data/$name/train.jsonl" --json --no-progress | field 'd["added"], "added"'
  sky ingest --manifest "$data/$name/val.jsonl" --json --no-progress | field 'd["added"], "added"'
  split=val
fi
sky caption --captioner template --only-uncaptioned --json --no-progress | field 'd["captioned"], "template-captioned"'
ds=$(sky dataset create --source "$name" --val "${HOLDOUT:-0}" --test 0 --json | field 'd["id"]')
before=$(sky eval --model skyscout-tiny --dataset "$ds" --split val --json | field 'd["zeroshot"]["top1"]')
start=$(date +%s)
train=$(sky train --model skyscout-tiny --dataset "$ds" --json --no-progress "$@")
seconds=$(( $(date +%s) - start ))
mv=$(echo "$train" | field 'd["model_version"]')
after=$(sky eval --model "$mv" --dataset "$ds" --split val --json | field 'd["zeroshot"]["top1"]')
config=$(echo "$train" | field '", ".join(f"{k} {v}" for k, v in d["config"].items() if k in ("epochs", "batch_size", "lr", "freeze", "batch_order"))' 2>/dev/null || echo "")
echo "$name: zero-shot top-1 on $split: before $before, after $after (model $mv; ${config}; skyscout train took ${seconds} s; home $SKYSCOUT_HOME)"
if [ -n "${TRANSDUCTIVE:-}" ]; then
  .venv/bin/python scripts/transductive_eval.py --model "$mv" --dataset "$ds" --json "$TRANSDUCTIVE"
fi
