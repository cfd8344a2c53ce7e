"""`ferkit batch` throughput against a plain shell loop, and the cost of chunking long videos.

On one generated corpus (astronaut clips, 640x480 at 30 fps, and photos), each run as a
user runs it, in a fresh process, timed from start to exit:

- plain loop: `ferkit video CLIP --out x.mp4 --csv x.csv` per clip, then one
  `ferkit predict PHOTOS/ --csv` (what people do today);
- `ferkit batch --engine local` (one worker per core);
- `ferkit batch --engine dask` on a local 2-worker cluster (`dask scheduler` + `dask worker
  --nworkers 2 --nthreads 1`), started before the timer, its start-up timed apart;
- `--engine local` again with every clip cut into chunks (`--chunk-frames`): the cost of
  chunking, and how many face rows come out the same as unchunked.

Each run's CPU seconds (user + system, its whole process tree, the Dask cluster's included)
are counted too: on a machine shared with other jobs the wall-clock ratios move with the
load, frames per CPU second much less.

    .venv/bin/python bench/batch.py                  # 8 clips of 10 s + 40 photos (~3 min)
    .venv/bin/python bench/batch.py --clips 40 --photos 200   # the issue's full size
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import psutil
import pyarrow.parquet as pq
from common import report
from media import astronaut, astronaut_frames, dask_cluster, three_faces, write_video

FERKIT = [sys.executable, "-m", "ferkit"]


def make_corpus(root: Path, clips: int, seconds: int, photos: int) -> tuple[int, int]:
    """Clips (a pan and zoom over the astronaut, every other one mirrored) and photos."""
    photo = astronaut()
    frames = list(astronaut_frames(photo, 30 * seconds))
    (root / "clips").mkdir(parents=True)
    for i in range(clips):
        write_video(
            root / "clips" / f"clip{i:03d}.mp4", (f[:, ::-1] if i % 2 else f for f in frames)
        )
    (root / "photos").mkdir()
    for i in range(photos):
        shifted = np.roll(three_faces(photo) if i % 3 == 0 else frames[i % len(frames)], 7 * i, 1)
        cv2.imwrite(str(root / "photos" / f"photo{i:03d}.jpg"), shifted)
    return clips * len(frames), photos


def cpu_seconds() -> float:
    """CPU time (user + system) of this process's finished children and live descendants:
    the batch runs are children, the Dask cluster's processes live descendants."""
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    live = 0.0
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            live += times.user + times.system
    return done.ru_utime + done.ru_stime + live


def timed(cmd: list) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one command."""
    start, cpu = time.perf_counter(), cpu_seconds()
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True)
    return time.perf_counter() - start, cpu_seconds() - cpu


def plain_loop(root: Path, work: Path) -> tuple[float, float]:
    runs = [
        timed([*FERKIT, "video", clip, "--out", work / "annotated.mp4", "--csv", work / "f.csv"])
        for clip in sorted((root / "clips").iterdir())
    ]
    runs.append(timed([*FERKIT, "predict", root / "photos", "--csv", work / "photos.csv"]))
    return sum(r[0] for r in runs), sum(r[1] for r in runs)


def batch(root: Path, out: Path, *extra) -> tuple[float, float]:
    return timed([*FERKIT, "batch", root, "--out", out, "--quiet", *extra])


def same_rows(a: Path, b: Path) -> float:
    """Share of (file, frame, face id) rows of `a` found in `b` with the same emotion."""

    def keyed(out: Path) -> dict:
        rows = pq.read_table(out / "faces.parquet").to_pylist()
        return {(r["file"], r["frame"], r["face_id"]): r["emotion"] for r in rows}

    ra, rb = keyed(a), keyed(b)
    return sum(rb.get(k) == v for k, v in ra.items()) / max(1, len(ra))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--photos", type=int, default=40)
    p.add_argument("--chunk-frames", type=int, default=100)
    args = p.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frames, photos = make_corpus(tmp / "corpus", args.clips, args.seconds, args.photos)
        files, units = args.clips + photos, frames + photos
        corpus = tmp / "corpus"
        (tmp / "loop").mkdir()
        runs = {"plain loop of ferkit video": plain_loop(corpus, tmp / "loop")}
        runs["ferkit batch --engine local"] = batch(corpus, tmp / "local")
        start = time.perf_counter()
        with dask_cluster(tmp, workers=2) as address:
            cluster_start = time.perf_counter() - start
            runs["ferkit batch --engine dask (2 workers)"] = batch(
                corpus, tmp / "dask", "--engine", "dask", "--address", address
            )
        chunked = f"ferkit batch --engine local --chunk-frames {args.chunk_frames}"
        runs[chunked] = batch(corpus, tmp / "chunked", "--chunk-frames", args.chunk_frames)
        agreement = {
            "dask_vs_local": same_rows(tmp / "local", tmp / "dask"),
            "chunked_vs_local": same_rows(tmp / "local", tmp / "chunked"),
        }
    loop = runs["plain loop of ferkit video"][0]
    local = runs["ferkit batch --engine local"][0]
    rows = [
        {
            "run": name,
            "seconds": s,
            "cpu_s": cpu,
            "files_per_min": 60 * files / s,
            "frames_per_s": units / s,
            "frames_per_cpu_s": units / cpu,
            "vs_plain_loop": loop / s,
            "vs_local": local / s,
        }
        for name, (s, cpu) in runs.items()
    ]
    print(
        f"corpus: {args.clips} clips x {args.seconds} s (640x480, 30 fps) = {frames} frames, "
        f"{photos} photos; load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after; "
        f"dask cluster start-up {cluster_start:.1f} s; same emotion as "
        f"local: dask {agreement['dask_vs_local']:.1%}, chunked {agreement['chunked_vs_local']:.1%}\n"
    )
    report(
        "batch",
        ["run", "seconds", "cpu_s", "files_per_min", "frames_per_s", "frames_per_cpu_s"]
        + ["vs_plain_loop", "vs_local"],
        rows,
        {
            "corpus": {"clips": args.clips, "seconds": args.seconds, "frames": frames},
            "photos": photos,
            "chunk_frames": args.chunk_frames,
            "dask_cluster_start_s": cluster_start,
            "same_emotion_share": agreement,
            "load_average_before_after": [load, os.getloadavg()],
        },
    )


if __name__ == "__main__":
    main()
