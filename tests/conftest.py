"""Test assets made here: synthetic faces, CSV rows, and videos of scikit-image's astronaut."""

from __future__ import annotations

import os
from pathlib import Path

import assets
import cv2
import numpy as np
import pytest

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
    return assets.astronaut()


@pytest.fixture(scope="session")
def multi_face_frame(astronaut) -> np.ndarray:
    return assets.three_faces(astronaut)


@pytest.fixture(scope="session")
def astronaut_video(tmp_path_factory, astronaut) -> Path:
    folder = tmp_path_factory.mktemp("video")
    return assets.write_video(folder / "astronaut.mp4", assets.astronaut_frames(astronaut))
