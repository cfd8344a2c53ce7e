#!/usr/bin/env bash
# Train several runs side by side on a lent GPU machine (Keras on JAX), as the shipped
# model was trained. Each argument is NAME=FLAGS for `ferkit train`, e.g.
#   bash scripts/gpu_train.sh "default=--recipe default" "seed=--recipe seed"
# Expects the FER2013 folders packed in .devdata/fer.tgz (never committed) and the keras,
# namex and optree wheels in .whl/. Each run comes back as one tarball under $OUT.
set -euo pipefail
source "$(dirname "$0")/gpu_setup.sh"  # sets $data
run() {  # NAME, then ferkit train flags
  local name=$1; shift
  python3 -m ferkit train $data/train --val $data/publictest --quiet --out /tmp/runs/$name "$@" \
    > /tmp/runs/$name.log 2>&1 || echo "$name failed" >> /tmp/runs/$name.log
  cp /tmp/runs/$name.log /tmp/runs/$name/ 2>/dev/null || true
  tar czf "$OUT/$name.tgz" -C /tmp/runs --exclude=backup --exclude=best.weights.h5 --exclude=train_files.txt $name
}
for spec in "$@"; do
  # shellcheck disable=SC2086  # the flags are meant to split
  run "${spec%%=*}" ${spec#*=} &
done
wait
tail -n 2 /tmp/runs/*.log
