#!/usr/bin/env bash
# Ship a model as the embedded one, only if it beats the embedded model (the shipping rule):
#   bash scripts/ship_model.sh CANDIDATE [SHARP_FACES]
# CANDIDATE is a finished K-fold run (scored out of fold: each face by the fold model that never
# trained on it), a model folder, or an ensemble folder ('ferkit ensemble'). It is compared face
# by face with the embedded model on the sharp faces neither trained on (McNemar in the
# output); unless it is right on more of them by more than chance (p < 0.05), nothing is
# shipped (exit 1). A K-fold run is exported to ONNX and int8 first, must also beat the
# shipped recipe's folds (SHIPPED_FOLDS, kept in docs/model/folds/) out of fold on every
# face of the same split, by more than chance, and its out-of-fold figures are written to
# docs/model; keep its folds there too (scripts/kfold_next.sh's files) and make them the
# next SHIPPED_FOLDS.
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
fi
"$bin/ferkit" evaluate "$data" --model "$run" "${fold[@]}" --against "$embedded" --require-better \
  || { echo "$run: does not beat $embedded on the same faces: not shipped" >&2; exit 1; }
staging=$(mktemp -d "$(dirname "$embedded")/.ship.XXXXXX")
cp -r "$run"/. "$staging/"
rm -rf "$staging"/{backup,epochs,fold-*,final} "$staging"/*.csv "$staging"/*.png "$staging"/*.txt
rm -rf "$embedded.old" && mv "$embedded" "$embedded.old" && mv "$staging" "$embedded" && rm -rf "$embedded.old"
echo "shipped $run into $embedded"
