# Sourced by scripts/gpu_train.sh and scripts/gpu_sweep.sh on a lent GPU machine: Keras on
# JAX from the wheels in .whl/ (keras, namex, optree), ferkit from src/, and the FER2013
# folders unpacked from .devdata/fer.tgz (never committed) into $data.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:src KERAS_BACKEND=jax FERKIT_CACHE=/tmp/cache PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false
# every compiled program cached on disk: processes training the same graph (the folds of a
# recipe) load what the first compiled instead of compiling it again (on a CPU: 44 s -> 12 s
# for a tiny run, the first epoch 26 s -> 4 s)
export JAX_COMPILATION_CACHE_DIR=/tmp/jaxcache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
export JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0
mkdir -p /tmp/d /tmp/runs && tar xzf .devdata/fer.tgz -C /tmp/d
nvidia-smi -L
data=/tmp/d/fer2013
