#!/usr/bin/env bash
# The next fold of a K-fold run that spans sessions (a CPU fold takes 75-100 min), kept in
# docs/model/folds/ without its weights (docs/model/folds/README.md):
#   bash scripts/kfold_next.sh [KEPT]
# KEPT (default docs/model/folds/prev-40) holds the finished folds and `recipe`, the training
# options they share. The first fold missing there is trained in runs/<name of KEPT> (resumed
# if an earlier try was cut off) and its held-out scores are copied in; a commit keeps them.
set -euo pipefail
kept=${1:-docs/model/folds/prev-40}
run=runs/$(basename "$kept")
bin=$(dirname "$0")/../.venv/bin
[ -f "$kept/recipe" ] || { echo "$kept/recipe: missing (the run's training options)" >&2; exit 2; }
read -r -a recipe < "$kept/recipe"
folds=$(grep -oP -- '--folds \K[0-9]+' "$kept/recipe") \
  || { echo "$kept/recipe: no --folds K" >&2; exit 2; }
for n in $(seq 1 "$folds"); do
  [ -f "$kept/fold-$n/val_scores.npy" ] && continue
  "$bin/ferkit" train "${recipe[@]}" --fold "$n" --out "$run" --quiet  # resumes a cut-off fold
  mkdir -p "$kept/fold-$n"
  cp "$run/fold-$n"/{metadata.json,val_files.txt,val_scores.npy,history.csv} "$kept/fold-$n/"
  echo "fold $n of $folds kept in $kept/fold-$n"
  exit 0
done
echo "$kept: all $folds folds are done" >&2
