#!/usr/bin/env bash
# Train the default and seed recipes (plus a no-blur ablation) side by side on a lent GPU
# machine (Keras on JAX), as the shipped model was trained. Expects the FER2013 folders
# packed in .devdata/fer.tgz (never committed) and the keras, namex and optree wheels in .whl/.
# Each run comes back as a tarball split into 15 MB parts (the device returns 8 files at most).
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:src KERAS_BACKEND=jax FERKIT_CACHE=/tmp/cache PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false
mkdir -p /tmp/d /tmp/runs && tar xzf .devdata/fer.tgz -C /tmp/d
nvidia-smi -L
data=/tmp/d/fer2013
run() {  # name, then ferkit train flags
  local name=$1; shift
  python3 -m ferkit train $data/train --val $data/publictest --quiet --out /tmp/runs/$name "$@" \
    > /tmp/runs/$name.log 2>&1 || echo "$name failed" >> /tmp/runs/$name.log
  cp /tmp/runs/$name.log /tmp/runs/$name/ 2>/dev/null || true
  tar czf - -C /tmp/runs --exclude=backup --exclude=best.weights.h5 --exclude=train_files.txt $name \
    | split -b 15M - "$OUT/$name.tgz.part-"
}
run default --recipe default --max-minutes 7 &
run seed --recipe seed --max-minutes 7 &
run noblur --recipe default --blur-prob 0 --max-minutes 7 &
wait
tail -n 3 /tmp/runs/*.log
