#!/usr/bin/env bash
# Ship a finished K-fold run (e.g. the lent GPU's, unpacked into runs/) as the embedded model:
#   bash scripts/ship_model.sh runs/base [../shared/data/fer2013/publictest]
# exports ONNX and int8 ONNX (calibrated on faces the final model trained on), writes the
# out-of-fold confusion matrix and metrics (every face scored by the fold model that never
# trained on it) into docs/model, and copies the model files into src/ferkit/embedded.
# EMBEDDED and DOCS move the last two (a dry run). The figures in README.md and MODEL.md are
# then edited from docs/model/metrics.json by hand, and `make test` run again (the astronaut
# must still be happy).
set -euo pipefail
run=${1:?usage: ship_model.sh RUN [SHARP_FACES]}
data=${2:-../shared/data/fer2013/publictest}
embedded=${EMBEDDED:-src/ferkit/embedded}
docs=${DOCS:-docs/model}
bin=$(dirname "$0")/../.venv/bin
[ -f "$run/folds.json" ] || { echo "$run: not a finished K-fold run (no folds.json)" >&2; exit 2; }
"$bin/ferkit" export "$run" --int8 "$data"
"$bin/ferkit" evaluate "$data" --model "$run" --out-of-fold --out "$docs"
mkdir -p "$embedded"
for name in model.json model.weights.h5 model.onnx model.int8.onnx metadata.json; do
  cp "$run/$name" "$embedded/.$name.tmp" && mv "$embedded/.$name.tmp" "$embedded/$name"
done
echo "shipped $run into $embedded; out-of-fold figures in $docs/metrics.json"
