#!/usr/bin/env bash
# The K-fold sweep of issue 13 on a lent GPU machine (Keras on JAX), as one command that fits
# the device's 10-minute limit: every fold of every recipe as its own process at once (the
# small net leaves the GPU mostly idle; each process's augmentation has its own CPU core),
# then each recipe's final model on all sharp faces for the epoch count its folds chose.
# Each argument is NAME=FLAGS for `ferkit train` (--folds and --fold are added), e.g.
#   FOLDS=5 bash scripts/gpu_sweep.sh "base=--recipe default --epochs 30" \
#     "consist=--recipe default --epochs 30 --consistency 1 --erase 0.25"
# FOLD_MINUTES caps each fold's run (default 5; the out-of-fold scores use the epochs every
# fold reached); the final run always trains the chosen epoch count.
# Needs what scripts/gpu_train.sh needs: .devdata/fer.tgz and the keras, namex and optree
# wheels in .whl/ (docs/experiments.md, "Reproducing the GPU runs"). Each recipe comes back
# as $OUT/NAME.tgz (folds.json, every fold's history and predictions, the final model at the
# top; its copy in final/ is left out) and $OUT/NAME.txt (the out-of-fold line). A dry run
# of this flow (2 folds, tiny data, Keras on JAX on a CPU) took 128 s.
set -euo pipefail
folds=${FOLDS:-5}
minutes=${FOLD_MINUTES:-5}
source "$(dirname "$0")/gpu_setup.sh"  # sets $data
python3 -c "from ferkit import data; data.load('$data/train'); data.load('$data/publictest')"  # one decode, cached
started=$SECONDS
for spec in "$@"; do
  name=${spec%%=*}
  for i in $(seq 1 "$folds"); do
    # shellcheck disable=SC2086  # the flags are meant to split
    python3 -m ferkit train $data/train --val $data/publictest --quiet --folds "$folds" --fold "$i" \
      --max-minutes "$minutes" --out /tmp/runs/$name ${spec#*=} > /tmp/runs/$name-fold$i.log 2>&1 \
      || echo "$name fold $i failed" >> /tmp/runs/$name-fold$i.log &
    sleep 1  # the first process writes the run's config; the others find it
  done
done
wait
echo "folds done after $((SECONDS - started)) s"
for spec in "$@"; do
  name=${spec%%=*}
  python3 -m ferkit train --resume --quiet --out /tmp/runs/$name > /tmp/runs/$name-final.log 2>&1 \
    || echo "$name final failed" >> /tmp/runs/$name-final.log &
done
wait
echo "finals done after $((SECONDS - started)) s"
for spec in "$@"; do
  name=${spec%%=*}
  cp /tmp/runs/$name-*.log /tmp/runs/$name/ 2>/dev/null || true
  tail -n 1 /tmp/runs/$name-final.log | tee "$OUT/$name.txt"
  tar czf "$OUT/$name.tgz" -C /tmp/runs --exclude=backup --exclude=epochs --exclude=best.weights.h5 \
    --exclude=train_files.txt --exclude='fold-*/model.weights.h5' --exclude='final/model.weights.h5' "$name"
done
