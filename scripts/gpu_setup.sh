# Sourced by scripts/gpu_train.sh and scripts/gpu_sweep.sh on a lent GPU machine: Keras on
# JAX from the wheels in .whl/ (keras, namex, optree), ferkit from src/, and the FER2013
# folders unpacked from .devdata/fer.tgz (never committed) into $data.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:src KERAS_BACKEND=jax FERKIT_CACHE=/tmp/cache PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false
mkdir -p /tmp/d /tmp/runs && tar xzf .devdata/fer.tgz -C /tmp/d
nvidia-smi -L
data=/tmp/d/fer2013
