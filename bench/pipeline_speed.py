"""Frame pipeline speed against the `fer` package, in one run, on the same 640x480 frames.

Per stage (decode, detect, classify, draw) in ms, end-to-end FPS for ferkit and for
`fer`'s `FER().detect_emotions` (Haar, its default), and the speed of `ferkit video` on a
30 fps 640x480 clip as a multiple of real time. ferkit is measured twice: on a lone photo
(a full-frame CenterFace search) and on a stream of frames (video, webcam), where its
`Stream` searches near the faces it already follows.

    .venv/bin/python bench/pipeline_speed.py [--repeats 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from common import median_ms, report
from media import astronaut, astronaut_frames, one_face, three_faces, write_video

from ferkit.jobs.video import VideoOutputs, process_video
from ferkit.vision.overlay import draw
from ferkit.vision.pipeline import Pipeline


def stages(pipeline: Pipeline, frame: np.ndarray, repeats: int, stream: bool) -> dict:
    """Per-stage times; with `stream`, detection follows the faces as in a video."""
    jpeg = cv2.imencode(".jpg", frame)[1]
    run = pipeline.stream() if stream else pipeline
    detect = run.detect if stream else pipeline.detector.detect
    found = detect(frame)
    faces = run(frame)
    return {
        "faces": len(found),
        "decode_ms": median_ms(lambda: cv2.imdecode(jpeg, cv2.IMREAD_COLOR), repeats),
        "detect_ms": median_ms(lambda: detect(frame), repeats),
        "classify_ms": median_ms(lambda: pipeline.classify(frame, found), repeats),
        "draw_ms": median_ms(lambda: draw(frame, faces), repeats),
        "end_to_end_ms": median_ms(
            lambda: draw(frame, run(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))), repeats
        ),
    }


def peer(frame: np.ndarray, repeats: int) -> dict | None:
    try:
        from fer.fer import FER
    except ImportError:
        print("the fer package is not installed: pip install --no-deps fer")
        return None
    detector = FER()
    jpeg = cv2.imencode(".jpg", frame)[1]
    return {
        "faces": len(detector.detect_emotions(frame)),
        "end_to_end_ms": median_ms(
            lambda: detector.detect_emotions(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)), repeats
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=100)
    args = p.parse_args()
    pipeline = Pipeline()
    rows = []
    for name, frame in (("one face", one_face()), ("three faces", three_faces())):
        ours = [
            {"tool": "ferkit photo", "frame": name, **stages(pipeline, frame, args.repeats, False)},
            {"tool": "ferkit stream", "frame": name, **stages(pipeline, frame, args.repeats, True)},
        ]
        rows += ours
        theirs = peer(frame, args.repeats)
        if theirs:
            rows.append({"tool": "fer (peer)", "frame": name, **theirs})
            for row in ours:
                row["speedup_vs_fer"] = theirs["end_to_end_ms"] / row["end_to_end_ms"]
    for r in rows:
        r["fps"] = 1000 / r["end_to_end_ms"]
    realtime = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = write_video(Path(tmp) / "clip.mp4", astronaut_frames(astronaut(), 90))  # 3 s
        for every in (1, 2):
            start = time.perf_counter()
            out = VideoOutputs(Path(tmp) / "out.mp4")
            summary = process_video(src, out, pipeline.stream(), every=every, show_bar=False)
            elapsed = time.perf_counter() - start
            realtime[f"every_{every}"] = summary["frames"] / summary["fps"] / elapsed
            print(
                f"ferkit video --every {every}: {summary['frames']} frames of 640x480 at "
                f"{summary['fps']:.0f} fps in {elapsed:.2f} s = {realtime[f'every_{every}']:.1f}x real time"
            )
    columns = [
        "tool",
        "frame",
        "faces",
        "decode_ms",
        "detect_ms",
        "classify_ms",
        "draw_ms",
        "end_to_end_ms",
        "fps",
        "speedup_vs_fer",
    ]
    print()
    report("pipeline_speed", columns, rows, {"video_realtime_multiple": realtime})


if __name__ == "__main__":
    main()
