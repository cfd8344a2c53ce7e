#!/usr/bin/env bash
# The K-fold of issue 13 on a lent GPU machine (Keras on JAX), as one command that fits the
# device's 10-minute limit: every fold and the final model (`--fold final`, every epoch kept)
# as their own processes at once (the small net leaves the GPU mostly idle; each process
# augments on its own CPU cores), then `--resume` keeps the epoch the folds chose.
# Each argument is NAME=FLAGS for `ferkit train` (--folds and --fold are added), e.g.
#   FOLDS=5 FOLD_MINUTES=7 bash scripts/gpu_sweep.sh "base=--recipe default --epochs 30"
# Measured on an H200 (docs/experiments.md): the first epoch of each process is mostly XLA
# compilation, ~85 s alone and ~200 s when ten processes compile at once; later epochs take
# 5-7 s alone, 9-13 s with ten processes. So one recipe (six processes) a call, and its
# fold 1 and final start first: once fold 1's first epoch is done, the other folds find its
# compiled programs in the on-disk cache (gpu_setup.sh) instead of compiling them again.
# FOLD_MINUTES caps each process (default 7; the out-of-fold scores use the epochs every fold
# reached; a final stopped before that epoch is trained again by the resume).
# Needs .devdata/fer.tgz and the keras, namex and optree wheels in .whl/ (docs/experiments.md,
# "Reproducing the GPU runs"). Each recipe comes back as $OUT/NAME.tgz (folds.json, every
# fold's history and predictions, the logs, the final model at the top; per-epoch weights
# left out), $OUT/NAME-fold-N.tgz (each fold's weights, for `evaluate --out-of-fold` and the
# benches: unpack them over the first) and $OUT/NAME.txt (the out-of-fold line): 7 files for
# one recipe of 5 folds, within the device's 8. Whatever is done when the script is stopped
# (SIGTERM, e.g. by `timeout`) is packed all the same.
set -euo pipefail
folds=${FOLDS:-5}
minutes=${FOLD_MINUTES:-7}
source "$(dirname "$0")/gpu_setup.sh"  # sets $data

pack() {
  set +e  # pack what can be packed, whatever fails
  for spec in "$@"; do
    name=${spec%%=*}
    [ -d "/tmp/runs/$name" ] || continue
    cp /tmp/runs/$name-*.log /tmp/runs/$name/ 2>/dev/null || true
    tail -n 1 /tmp/runs/$name-final.log > "$OUT/$name.txt" 2>/dev/null || true
    tar czf "$OUT/$name.tgz" -C /tmp/runs --exclude=backup --exclude=epochs \
      --exclude=best.weights.h5 --exclude=train_files.txt --exclude='fold-*/model.weights.h5' \
      --exclude='final/model.weights.h5' "$name"
    for fold in /tmp/runs/$name/fold-*/model.weights.h5; do  # one file each (16 MiB a file)
      [ -f "$fold" ] || continue
      n=$(basename "$(dirname "$fold")")
      tar czf "$OUT/$name-$n.tgz" -C /tmp/runs "$name/$n/model.weights.h5"
    done
  done
}
trap 'pack "$@"; cat "$OUT"/*.txt 2>/dev/null || true' EXIT
trap 'pkill -f -- "--out /tmp/runs/"; wait; exit 143' TERM  # each unwinds (Ctrl-C-like) first

python3 -c "from ferkit.training import data; data.load('$data/train'); data.load('$data/publictest')"  # one decode, cached
started=$SECONDS
start() {  # NAME=FLAGS FOLD: one process of the run, in the background
  # shellcheck disable=SC2086  # the flags are meant to split
  python3 -m ferkit train $data/train --val $data/publictest --quiet --folds "$folds" --fold "$2" \
    --max-minutes "$minutes" --out /tmp/runs/${1%%=*} ${1#*=} > /tmp/runs/${1%%=*}-fold-$2.log 2>&1 \
    || echo "${1%%=*} fold $2 failed" >> /tmp/runs/${1%%=*}-fold-$2.log &
}
for spec in "$@"; do
  start "$spec" 1  # compiles first (and writes the run's config)
  sleep 1
  start "$spec" final  # a graph of its own (no validation): compiles beside it
done
for spec in "$@"; do  # until its first epoch is done (or it failed), at most 5 minutes
  name=${spec%%=*}
  for _ in $(seq 150); do
    [ -f /tmp/runs/$name/fold-1/history.csv ] || grep -qs failed /tmp/runs/$name-fold-1.log && break
    sleep 2
  done
done
echo "fold 1 compiled after $((SECONDS - started)) s"
for spec in "$@"; do
  for i in $(seq 2 "$folds"); do
    start "$spec" "$i"
  done
done
wait
echo "folds and finals done after $((SECONDS - started)) s"
for spec in "$@"; do
  name=${spec%%=*}
  python3 -m ferkit train --resume --quiet --out /tmp/runs/$name > /tmp/runs/$name-final.log 2>&1 \
    || echo "$name resume failed" >> /tmp/runs/$name-final.log &
done
wait
echo "resumes done after $((SECONDS - started)) s"
