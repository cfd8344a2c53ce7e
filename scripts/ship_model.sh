#!/usr/bin/env bash
# Ship a model as the embedded one, only if it beats the embedded model (the shipping rule,
# MODEL.md):
#   bash scripts/ship_model.sh CANDIDATE [SHARP_FACES]
# CANDIDATE is a finished K-fold run (scored out of fold: each face by the fold model that never
# trained on it), a model folder, or an ensemble folder ('ferkit ensemble'). It is compared face
# by face with the embedded model on the sharp faces neither trained on (McNemar in the
# output); unless it is right on more of them by more than chance (p < 0.05), nothing is
# shipped (exit 1). A K-fold run, or a folder given RECIPE (the scripts/kfold_progress.py
# arguments that measure its recipe out of fold, e.g. RECIPE="docs/model/folds/prev-40 --join
# docs/model/folds/wide-40 --with docs/model/folds/blurred-half" for an ensemble of those
# recipes), must first beat the shipped recipe's kept folds (SHIPPED_FOLDS) out of fold on
# every face of the same split, by more than chance. A K-fold run is exported to ONNX and int8
# first and its out-of-fold figures are written to docs/model. Keep the winning recipe's
# folds or answers in docs/model/folds/ and make them the next SHIPPED_FOLDS.
# EMBEDDED and DOCS move the last two (a dry run). The figures in README.md, MODEL.md and
# docs/experiments.md are then edited by hand, and `make test` run again.
set -euo pipefail
run=${1:?usage: ship_model.sh CANDIDATE [SHARP_FACES]}
data=${2:-../shared/data/fer2013/publictest}
embedded=${EMBEDDED:-src/ferkit/embedded}
docs=${DOCS:-docs/model}
shipped_folds=${SHIPPED_FOLDS:-docs/model/folds/prev-40}
bin=$(dirname "$0")/../.venv/bin
[ -f "$run/metadata.json" ] || { echo "$run: not a model folder (no metadata.json)" >&2; exit 2; }
fold=()
if [ -f "$run/folds.json" ]; then
  "$bin/ferkit" export "$run" --int8 "$data"
  fold=(--out-of-fold --out "$docs")
  "$bin/ferkit" evaluate "$data" --model "$run" --out-of-fold --against "$shipped_folds" \
    --require-better > /dev/null \
    || { echo "$run: its recipe does not beat $shipped_folds's: not shipped" >&2; exit 1; }
elif [ -n "${RECIPE:-}" ]; then
  read -r -a measure <<< "$RECIPE"
  "$bin/python" "$(dirname "$0")/kfold_progress.py" "${measure[0]}" "$data" "${measure[@]:1}" \
    --against "$shipped_folds" --require-better \
    || { echo "$run: its recipe does not beat $shipped_folds's: not shipped" >&2; exit 1; }
fi
"$bin/ferkit" evaluate "$data" --model "$run" "${fold[@]}" --against "$embedded" --require-better \
  || { echo "$run: does not beat $embedded on the same faces: not shipped" >&2; exit 1; }
staging=$(mktemp -d "$(dirname "$embedded")/.ship.XXXXXX")
cp -r "$run"/. "$staging/"
rm -rf "$staging"/{backup,epochs,fold-*,final} "$staging"/*.csv "$staging"/*.png "$staging"/*.txt
rm -rf "$embedded.old" && mv "$embedded" "$embedded.old" && mv "$staging" "$embedded" && rm -rf "$embedded.old"
echo "shipped $run into $embedded"
