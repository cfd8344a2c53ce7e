"""Per-face latency (batch 1) and throughput (batch 64) for each engine, in one run,
and the time from CLI start to the first prediction.

    .venv/bin/python bench/infer_speed.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from common import report
from media import astronaut

from ferkit.recognizer import FacialExpressionModel


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def cli_first_prediction(engine: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "astronaut.png"
        cv2.imwrite(str(image), astronaut())
        ferkit = Path(sys.executable).parent / "ferkit"
        start = time.perf_counter()
        subprocess.run(
            [str(ferkit), "predict", str(image), "--engine", engine],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=200)
    args = p.parse_args()
    faces = np.random.default_rng(0).integers(0, 255, (64, 48, 48), dtype=np.uint8)
    rows = []
    for engine in ("keras", "onnx"):
        model = FacialExpressionModel.load(engine=engine, tta=False)
        rows.append(
            {
                "engine": engine,
                "batch1_ms": 1000
                * timed(lambda m=model: m.predict_scores(faces[:1]), args.repeats),
                "batch64_faces_per_s": 64
                / timed(lambda m=model: m.predict_scores(faces), max(10, args.repeats // 10)),
                "cli_to_first_prediction_s": cli_first_prediction(engine),
            }
        )
        if engine == "keras":
            batch = faces[:1, ..., None].astype("float32")
            rows.append(
                {
                    "engine": "keras model.predict (for contrast)",
                    "batch1_ms": 1000
                    * timed(lambda m=model: m.keras_model.predict(batch, verbose=0), 30),
                }
            )
    report(
        "infer_speed",
        ["engine", "batch1_ms", "batch64_faces_per_s", "cli_to_first_prediction_s"],
        rows,
    )


if __name__ == "__main__":
    main()
