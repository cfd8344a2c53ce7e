"""640x480 test frames and a 30 fps clip made from scikit-image's public-domain astronaut."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import skimage.data


def astronaut() -> np.ndarray:
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


def one_face() -> np.ndarray:
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, 80:560] = cv2.resize(astronaut()[0:400, 60:460], (480, 480))
    return frame


def three_faces() -> np.ndarray:
    head = astronaut()[20:240, 130:330]
    frame = np.full((480, 640, 3), 120, np.uint8)
    for x, y, s in [(20, 40, 180), (260, 60, 140), (460, 200, 110)]:
        frame[y : y + s, x : x + s] = cv2.resize(head, (s, s))
    return frame


def clip(path: Path, seconds: float = 3, fps: int = 30) -> Path:
    """A slow pan and zoom over the astronaut, H.264."""
    base, n = astronaut(), int(seconds * fps)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(n):
            t = i / max(1, n - 1)
            side = int(420 - 120 * t)
            view = base[0:side, int(20 + 60 * t) : int(20 + 60 * t) + side]
            frame = np.full((480, 640, 3), 90, np.uint8)
            frame[:, 80:560] = cv2.resize(view, (480, 480))
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
