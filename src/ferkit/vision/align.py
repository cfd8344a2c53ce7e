"""Face crops framed like FER2013, cut from the frame (the model resizes them to 48x48).

FER2013's faces were framed by its makers' own detector; CenterFace's bare box is tighter.
Two ways back to FER2013's framing: the box made square with a small margin (the default:
it labelled the most FER2013 faces in frames right, `bench/detect.py`), or a warp that puts
the 5 landmarks where they sit, on average, in FER2013 images (`--crop aligned`, 0.9 points
behind: the average framing fits an individual face less well than its own box).
`FER_LANDMARKS` was measured on this repository's data: CenterFace run on the 1,827
training faces of `publictest/` it found (upscaled 3x with a replicated border), the
landmarks averaged in 48x48 coordinates (standard deviation about 3-4 px;
`scripts/fer_landmarks.py` measures it again).
"""

from __future__ import annotations

import cv2
import numpy as np

from ferkit.labels import IMAGE_SIZE
from ferkit.model.preprocess import to_gray8

# left eye, right eye, nose tip, left and right mouth corners (x, y) in a 48x48 FER2013 face
FER_LANDMARKS = np.array(
    [[15.72, 19.56], [31.71, 19.03], [23.81, 28.43], [18.05, 35.73], [30.85, 35.29]], np.float32
)
CROPS = ("square", "aligned", "box")


def aligned_crop(frame: np.ndarray, landmarks: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """A size x size gray face whose landmarks match FER2013's (a similarity warp)."""
    gray = to_gray8(frame)
    marks = np.asarray(landmarks, np.float32).reshape(5, 2)
    target = FER_LANDMARKS * (size / IMAGE_SIZE)
    matrix = _similarity(marks, target)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:  # shrink the region first: warping straight down would alias
        x0, y0 = np.floor(marks.min(0) - 2 * np.ptp(marks, 0)).astype(int).clip(0)
        x1, y1 = np.ceil(marks.max(0) + 2 * np.ptp(marks, 0)).astype(int)
        factor = 2 * scale
        roi = cv2.resize(
            gray[y0:y1, x0:x1], None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA
        )
        gray, marks = roi, (marks - [x0, y0]) * factor
        matrix = _similarity(marks, target)
    return cv2.warpAffine(
        gray, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def box_crop(
    frame: np.ndarray,
    box: np.ndarray | tuple[float, float, float, float],
    margin: float = 0.0,
    square: bool = False,
) -> np.ndarray:
    """The box (made square around its centre with `square`), widened by `margin` of its size
    on each side and clipped to the frame."""
    x, y, w, h = (float(v) for v in box)
    if square:
        side = max(w, h)
        x, y, w, h = x + (w - side) / 2, y + (h - side) / 2, side, side
    x0, y0 = int(max(0, x - w * margin)), int(max(0, y - h * margin))
    x1 = int(min(frame.shape[1], x + w * (1 + margin)))
    y1 = int(min(frame.shape[0], y + h * (1 + margin)))
    return frame[y0:y1, x0:x1]


def face_crop(
    frame: np.ndarray,
    box: np.ndarray | tuple[float, float, float, float],
    landmarks: np.ndarray | None,
    mode: str = "square",
) -> np.ndarray:
    """The model's view of one face: the square box (default), aligned by its landmarks (when
    known), or the bare box. On FER2013 faces in frames the square box with a 5% margin labels
    the most faces right (bench/detect.py), so it is the default."""
    if mode == "aligned" and landmarks is not None:
        return aligned_crop(frame, landmarks)
    if mode == "box":
        return box_crop(frame, box)
    return box_crop(frame, box, margin=0.05, square=True)


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The rotation, uniform scale and shift that best map src onto dst (Umeyama, least squares)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sigma, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(sign) @ vt
    variance = float((s**2).sum(1).mean())
    scale = float((sigma * sign).sum() / variance) if variance > 1e-9 else 1.0
    shift = mu_d - scale * rotation @ mu_s
    return np.hstack([scale * rotation, shift[:, None]]).astype(np.float32)
