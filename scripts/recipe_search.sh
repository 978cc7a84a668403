#!/usr/bin/env bash
# Choose a built model's recipe without reading val (issue 17; MODEL=skyscout-small for that preset): every
# candidate is trained on a dataset's train split less the last 20% of each class in file-name order, and
# scored on that 20% (HOLDOUT=0.2 of scripts/finetune_eval.sh); scripts/prompt_eval.py then scores
# caption-vocabulary prompt ensembles on it.
#
#   scripts/recipe_search.sh eurosat "" "--mask-group-pairs --caption-groups 10"
#   scripts/recipe_search.sh ucm_captions ""
#
# Each argument after the dataset is one candidate: extra `skyscout train` options ("" is the recipe as it
# stands). OUT=DIR keeps the homes and the figures (default: a new temporary folder). Prints one table.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/recipe_search.sh ucm_captions|eurosat CANDIDATE_OPTIONS ...}
shift
[ $# -gt 0 ] || set -- ""
out=${OUT:-$(mktemp -d)}
mkdir -p "$out" && out=$(cd "$out" && pwd)
i=0
for candidate in "$@"; do
  i=$((i + 1))
  read -r -a opts <<< "$candidate"
  echo "== $name, candidate $i: ${candidate:-the recipe}" >&2
  line=$(HOLDOUT=0.2 SKYSCOUT_HOME="$out/$name-$i/home" scripts/finetune_eval.sh "$name" "${opts[@]}")
  echo "$line" > "$out/$name-$i.txt"
  mv=$(sed -n 's/.*(model \(mv-[^;]*\);.*/\1/p' <<< "$line")
  SKYSCOUT_HOME="$out/$name-$i/home" .venv/bin/python scripts/prompt_eval.py --model "$mv" --k 0 10 50 \
    --json "$out/$name-$i.json" > /dev/null
done

.venv/bin/python - "$out" "$name" "$@" <<'PY'
import json, re, sys
from pathlib import Path

out, name, candidates = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
print(f"\n{name}: zero-shot top-1 on a 20% holdout of train, the last of each class (val not read); figures in {out}")
print(f"{'candidate':<52}{'top-1':>8}{'+10 captions':>14}{'+50 captions':>14}{'train s':>9}")
for i, candidate in enumerate(candidates, 1):
    line = (out / f"{name}-{i}.txt").read_text()
    by_k = json.loads((out / f"{name}-{i}.json").read_text())["top1_by_k"]
    secs = re.search(r"took ([0-9]+) s", line).group(1)
    print(f"{candidate or '(the recipe)':<52}{by_k['0']:>8.3f}{by_k['10']:>14.3f}{by_k['50']:>14.3f}{secs:>9}")
PY
