"""Per-face latency (batch 1) and throughput (batch 64) for each engine (Keras, float32
ONNX, int8 ONNX), in one run, the time from CLI start to the first prediction, and ONNX
Runtime's thread setting (1 or 2 intra-op threads) at batch 1; with `--model`, other model
folders (an ensemble: each member's net and preprocessing) beside the embedded one.

    .venv/bin/python bench/infer_speed.py [--repeats 200] [--model runs/ensemble ...]
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
from common import median_ms, report
from media import astronaut

from ferkit.model.recognizer import FacialExpressionModel


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


def thread_rows(faces: np.ndarray, repeats: int) -> list[dict]:
    """Batch-1 latency of both ONNX files with 1 and 2 intra-op threads, interleaved so that
    load from other processes hits every setting alike (the app uses 1: its requests run in
    parallel threads already)."""
    import onnxruntime as ort

    from ferkit.model.folder import INT8_NAME, ONNX_NAME, first_net
    from ferkit.model.recognizer import embedded_model_dir

    sessions = {}
    for name in (ONNX_NAME, INT8_NAME):
        for threads in (1, 2):
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            session = ort.InferenceSession(
                str(first_net(embedded_model_dir()) / name),
                options,
                providers=["CPUExecutionProvider"],
            )
            sessions[f"{name}, {threads} thread(s)"] = session
    batch = faces[:1, ..., None].astype("float32")
    times = {key: [] for key in sessions}
    for _ in range(3):
        for key, session in sessions.items():
            feed = {session.get_inputs()[0].name: batch}
            times[key].append(median_ms(lambda s=session, f=feed: s.run(None, f), repeats))
    return [{"engine": key, "batch1_ms": min(t)} for key, t in times.items()]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--model", type=Path, action="append", default=[], help="more model folders")
    args = p.parse_args()
    faces = np.random.default_rng(0).integers(0, 255, (64, 48, 48), dtype=np.uint8)
    rows = []
    for engine in ("keras", "onnx", "int8"):
        model = FacialExpressionModel.load(engine=engine, tta=False)
        rows.append(
            {
                "engine": engine,
                "batch1_ms": median_ms(lambda m=model: m.predict_scores(faces[:1]), args.repeats),
                "batch64_faces_per_s": 64_000
                / median_ms(lambda m=model: m.predict_scores(faces), max(10, args.repeats // 10)),
                "cli_to_first_prediction_s": cli_first_prediction(engine),
            }
        )
        if engine == "keras":
            batch = faces[:1, ..., None].astype("float32")
            rows.append(
                {
                    "engine": "keras model.predict (for contrast)",
                    "batch1_ms": median_ms(
                        lambda m=model: m.keras_model.predict(batch, verbose=0), 30
                    ),
                }
            )
    for folder in args.model:
        model = FacialExpressionModel.load(folder)
        rows.append(
            {
                "engine": f"{folder} ({model.engine})",
                "batch1_ms": median_ms(lambda m=model: m.predict_scores(faces[:1]), args.repeats),
                "batch64_faces_per_s": 64_000
                / median_ms(lambda m=model: m.predict_scores(faces), max(10, args.repeats // 10)),
            }
        )
    rows += thread_rows(faces, args.repeats)
    report(
        "infer_speed",
        ["engine", "batch1_ms", "batch64_faces_per_s", "cli_to_first_prediction_s"],
        rows,
    )


if __name__ == "__main__":
    main()
