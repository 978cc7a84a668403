#!/usr/bin/env bash
# Every figure of the offline model in one command: skyscout-tiny (MODEL=skyscout-small: that preset, with its
# own recipe) fine-tuned on UC Merced and on EuroSAT
# (one fresh SKYSCOUT_HOME per seed), the joint model on both, and the transductive option with and without on
# each (same model), then one table with the mean and the spread over the seeds.
#
#   scripts/model_figures.sh [SEED ...]                 # default seeds 0 1 2 (skyscout-small: 89 min on 2 cores)
#   TRAIN="--max-steps 20" scripts/model_figures.sh 0   # a smoke run: the plumbing, not the figures
#
# UCM, EUROSAT: each dataset's own `skyscout train` options, chosen on a holdout of train by
# scripts/recipe_search.sh (UC Merced: the recipe as it is; EuroSAT: 10 caption clusters, pairs of one cluster
# masked in the loss).
# TRAIN: extra `skyscout train` options for every run. JOINT: the joint run's options (default: UC Merced
# visited 8 times per epoch, 32 caption clusters; skyscout-tiny: 500 EuroSAT images per class, 6 epochs, the
# README's row; skyscout-small: all 1,000 per class with pairs of one cluster masked, one epoch by its recipe).
# OUT: where the homes, logs and figures go (default: a new temporary folder). Val is read once per figure;
# nothing here is tuned on it.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)
out=${OUT:-$(mktemp -d)}
mkdir -p "$out" && out=$(cd "$out" && pwd)
read -r -a train <<< "${TRAIN:-}"
declare -A own=([ucm_captions]="${UCM:-}" [eurosat]="${EUROSAT:---mask-group-pairs --caption-groups 10}")
if [ "${MODEL:-skyscout-tiny}" = skyscout-tiny ]; then
  joint_default="500 --source-repeat ucm_captions=8 --caption-groups 32 --epochs 6"
else  # skyscout-small: all EuroSAT train images, EuroSAT's masked pairs; one epoch by its sample budget
  joint_default="1000 --source-repeat ucm_captions=8 --caption-groups 32 --mask-group-pairs"
fi
read -r -a joint <<< "${JOINT:-$joint_default}"

for name in ucm_captions eurosat; do
  read -r -a opts <<< "${own[$name]}"
  for seed in "${seeds[@]}"; do
    echo "== $name, seed $seed" >&2
    SKYSCOUT_HOME="$out/$name-$seed/home" TRANSDUCTIVE="$out/$name-$seed.json" \
      scripts/finetune_eval.sh "$name" --seed "$seed" "${opts[@]}" "${train[@]}" | tee "$out/$name-$seed.txt"
  done
done
echo "== joint" >&2
SKYSCOUT_HOME="$out/joint/home" TRANSDUCTIVE="$out/joint-" scripts/joint_eval.sh "${joint[@]}" "${train[@]}" \
  | tee "$out/joint.txt"

.venv/bin/python - "$out" "${seeds[@]}" <<'PY'
import json, os, re, statistics, sys
from pathlib import Path

out, seeds = Path(sys.argv[1]), sys.argv[2:]
base = os.environ.get("MODEL", "skyscout-tiny")


def spread(values, digits=3):
    mean = statistics.fmean(values)
    return (f"{mean:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})" if len(values) > 1
            else f"{mean:.{digits}f}")


print(f"\nzero-shot top-1 on val, mean (min-max) over seeds {', '.join(seeds)}; figures in {out}")
print(f"{'model':<28}{'dataset':<14}{'plain':>22}{'transductive':>22}{'train s':>16}")
for name in ("ucm_captions", "eurosat"):
    plain, trans, secs = [], [], []
    for seed in seeds:
        line = (out / f"{name}-{seed}.txt").read_text()
        plain.append(float(re.search(r"after ([0-9.]+)", line).group(1)))
        secs.append(float(re.search(r"took ([0-9]+) s", line).group(1)))
        trans.append(json.loads((out / f"{name}-{seed}.json").read_text())["val"]["defaults"])
    print(f"{'per-dataset ' + base:<28}{name:<14}{spread(plain):>22}{spread(trans):>22}{spread(secs, 0):>16}")
text = (out / "joint.txt").read_text()
for name in ("ucm_captions", "eurosat"):
    plain = float(re.search(rf"on {name} val: zero-shot top-1 ([0-9.]+)", text).group(1))
    trans = json.loads((out / f"joint-{name}.json").read_text())["val"]["defaults"]
    print(f"{'joint ' + base:<28}{name:<14}{plain:>22.3f}{trans:>22.3f}")
PY
