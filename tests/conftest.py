"""Test assets made here: synthetic faces, CSV rows, and videos of scikit-image's astronaut."""

from __future__ import annotations

import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import skimage.data

from ferkit.labels import EMOTIONS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FERKIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def synthetic_faces(n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """48x48 gray images whose class is drawn in them (a bar at a class-specific angle)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c in range(len(EMOTIONS)):
        for _ in range(n_per_class):
            img = rng.integers(0, 60, (48, 48)).astype(np.uint8)
            angle = np.deg2rad(c * 180 / len(EMOTIONS))
            p0 = (int(24 - 18 * np.cos(angle)), int(24 - 18 * np.sin(angle)))
            p1 = (int(24 + 18 * np.cos(angle)), int(24 + 18 * np.sin(angle)))
            cv2.line(img, p0, p1, 255, 5)
            images.append(img)
            labels.append(c)
    return np.stack(images), np.array(labels)


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray, prefix: str = "img") -> Path:
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / EMOTIONS[label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{prefix}_{i:04d}.png"), img)
    return root


def write_csv(path: Path, images: np.ndarray, labels: np.ndarray, usage: str = "Training") -> Path:
    lines = ["emotion,pixels,Usage"]
    lines += [
        f"{label},{' '.join(map(str, img.ravel()))},{usage}"
        for img, label in zip(images, labels, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def face_folders(tmp_path_factory) -> tuple[Path, Path]:
    """A small train and val folder of synthetic faces."""
    root = tmp_path_factory.mktemp("faces")
    x, y = synthetic_faces(30, seed=0)  # 210 training images
    xv, yv = synthetic_faces(4, seed=1)
    return write_folder(root / "train", x, y), write_folder(root / "val", xv, yv)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's public-domain astronaut photo, BGR."""
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="session")
def multi_face_frame(astronaut) -> np.ndarray:
    """A 640x480 frame with three copies of the astronaut's head at different scales."""
    head = astronaut[20:240, 130:330]
    frame = np.full((480, 640, 3), 120, np.uint8)
    for x, y, s in [(20, 40, 180), (260, 60, 140), (460, 200, 110)]:
        frame[y : y + s, x : x + s] = cv2.resize(head, (s, s))
    return frame


def astronaut_frames(astronaut: np.ndarray, n: int = 45, size=(640, 480)):
    """A slow pan and zoom over the astronaut's head."""
    w, h = size
    for i in range(n):
        t = i / max(1, n - 1)
        side = int(420 - 120 * t)
        x0, y0 = int(20 + 60 * t), 0
        view = astronaut[y0 : y0 + side, x0 : x0 + side]
        frame = np.full((h, w, 3), 90, np.uint8)
        frame[:, (w - h) // 2 : (w - h) // 2 + h] = cv2.resize(view, (h, h))
        yield frame


def write_video(path: Path, frames, fps: int = 30, audio: bool = False) -> Path:
    """H.264 MP4; with `audio`, a 440 Hz AAC tone as long as the video."""
    frames = list(frames)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        sound = out.add_stream("aac", rate=44100, layout="mono") if audio else None
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        out.mux(stream.encode())
        if sound is not None:
            t = np.arange(int(44100 * len(frames) / fps)) / 44100
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, len(tone) - 1024, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    tone[None, start : start + 1024], format="fltp", layout="mono"
                )
                chunk.sample_rate = 44100
                out.mux(sound.encode(chunk))
            out.mux(sound.encode())
    return path


@pytest.fixture(scope="session")
def astronaut_video(tmp_path_factory, astronaut) -> Path:
    return write_video(
        tmp_path_factory.mktemp("video") / "astronaut.mp4", astronaut_frames(astronaut)
    )
