"""Training speed per architecture: img/s and seconds per epoch, float32 vs bf16 vs XLA.

Each setting runs in its own process (Keras' precision policy is global), on generated
48x48 images through the real augmented tf.data pipeline.

    .venv/bin/python bench/train_speed.py [--images 3072] [--archs seed vgg]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import report

EPOCH_IMAGES = {"train_only": 28_709, "default_recipe": 28_709 + 4 * 2_297}
SETTINGS = {"float32": {}, "bf16": {"precision": "mixed_bfloat16"}, "xla": {"jit": True}}


def measure(arch: str, setting: str, images: int) -> dict:
    import time

    import keras
    import numpy as np

    from ferkit.training.batches import batches
    from ferkit.training.config import TrainConfig
    from ferkit.training.data import FaceSet
    from ferkit.training.nets import ARCHITECTURES

    opts = SETTINGS[setting]
    if "precision" in opts:
        keras.mixed_precision.set_global_policy(opts["precision"])
    model = ARCHITECTURES[arch]()
    model.compile(
        optimizer="adam",
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=opts.get("jit", False),
    )
    rng = np.random.default_rng(0)
    faces = FaceSet(
        rng.integers(0, 255, (images, 48, 48), dtype=np.uint8), rng.integers(0, 7, images), []
    )
    ds, _ = batches(faces, TrainConfig([], batch_size=64), 0, 1)
    model.fit(ds.take(5), epochs=1, verbose=0)  # warm-up: tracing, compilation
    start = time.perf_counter()
    model.fit(ds, epochs=1, verbose=0)
    rate = images / (time.perf_counter() - start)
    return {
        "arch": arch,
        "setting": setting,
        "img_per_s": rate,
        **{f"s_per_epoch_{k}": n / rate for k, n in EPOCH_IMAGES.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=3072)
    p.add_argument("--archs", nargs="+", default=["seed", "vgg"])
    p.add_argument("--one", nargs=2, metavar=("ARCH", "SETTING"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.images)))
        return
    rows = []
    for arch in args.archs:
        for setting in SETTINGS:
            cmd = [sys.executable, __file__, "--images", str(args.images), "--one", arch, setting]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(f"measured {arch} {setting}: {rows[-1]['img_per_s']:.0f} img/s", flush=True)
    report(
        "train_speed",
        ["arch", "setting", "img_per_s", "s_per_epoch_train_only", "s_per_epoch_default_recipe"],
        rows,
    )


if __name__ == "__main__":
    main()
