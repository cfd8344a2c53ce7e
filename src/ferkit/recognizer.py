"""`FacialExpressionModel`: face crops in, the 7 emotion scores out.

Two engines give the same scores: Keras (the seed's way: architecture JSON + weights) and
ONNX Runtime (`model.onnx` beside them), which starts in a fraction of a second and never
imports TensorFlow. The preprocessing (input blur, flip test-time augmentation) comes
from the model's `metadata.json`, so every caller predicts the way the model was measured.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS
from ferkit.preprocess import to_input
from ferkit.serialize import JSON_NAME, ONNX_NAME, WEIGHTS_NAME, load_keras_model, read_metadata

ENGINES = ("auto", "keras", "onnx")


def embedded_model_dir() -> Path:
    """The model shipped inside the package."""
    return Path(str(resources.files("ferkit") / "embedded"))


class FacialExpressionModel:
    """Predict facial expressions with a trained ferkit model."""

    def __init__(
        self,
        model_json: str | Path,
        weights: str | Path,
        *,
        blur_sigma: float | None = None,
        tta: bool | None = None,
    ):
        self.metadata = read_metadata(Path(model_json).parent)
        self.engine = "keras"
        self._keras = load_keras_model(model_json, weights)
        self._onnx = None
        self._configure(blur_sigma, tta)

    @classmethod
    def load(
        cls,
        folder: str | Path | None = None,
        engine: str = "auto",
        *,
        blur_sigma: float | None = None,
        tta: bool | None = None,
    ) -> FacialExpressionModel:
        """Load a model folder (default: the embedded model); 'auto' prefers ONNX when exported."""
        folder = Path(folder) if folder is not None else embedded_model_dir()
        if engine not in ENGINES:
            raise FerkitError(f"engine must be one of {', '.join(ENGINES)}, got '{engine}'")
        if not folder.is_dir():
            raise FerkitError(f"{folder}: model folder not found")
        if engine == "onnx" or (engine == "auto" and (folder / ONNX_NAME).exists()):
            return cls.from_onnx(folder / ONNX_NAME, blur_sigma=blur_sigma, tta=tta)
        return cls(folder / JSON_NAME, folder / WEIGHTS_NAME, blur_sigma=blur_sigma, tta=tta)

    @classmethod
    def from_onnx(
        cls, path: str | Path, *, blur_sigma: float | None = None, tta: bool | None = None
    ) -> FacialExpressionModel:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FerkitError(f"{path}: ONNX model not found (export it with 'ferkit export')")
        self = cls.__new__(cls)
        self.metadata = read_metadata(path.parent)
        self.engine = "onnx"
        self._keras = None
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        try:
            self._onnx = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:
            raise FerkitError(f"{path}: not a loadable ONNX model ({err})") from err
        self._onnx_input = self._onnx.get_inputs()[0].name
        self._configure(blur_sigma, tta)
        return self

    def _configure(self, blur_sigma: float | None, tta: bool | None) -> None:
        self._keras_lock = threading.Lock()
        pre = self.metadata.get("preprocessing", {})
        self.blur_sigma = float(pre.get("blur_sigma", 0.0) if blur_sigma is None else blur_sigma)
        self.tta = bool(pre.get("tta", False) if tta is None else tta)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self._onnx is not None:  # ONNX Runtime sessions are thread-safe
            return self._onnx.run(None, {self._onnx_input: batch})[0]
        with self._keras_lock:
            return np.asarray(self._keras.predict_on_batch(batch))

    def predict_scores(self, faces: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Scores (N, 7) for N crops: gray or BGR, any size."""
        if len(faces) == 0:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        batch = to_input(faces, self.blur_sigma)
        scores = self._run_chunked(batch)
        if self.tta:
            scores = (scores + self._run_chunked(batch[:, :, ::-1])) / 2
        return scores.astype(np.float32)

    def _run_chunked(self, batch: np.ndarray, chunk: int = 512) -> np.ndarray:
        parts = [batch[i : i + chunk] for i in range(0, len(batch), chunk)]
        return np.concatenate([self._run(np.ascontiguousarray(p)) for p in parts])

    def predict_emotion(self, face: np.ndarray) -> str:
        """The most likely emotion of one face crop."""
        return EMOTIONS[int(np.argmax(self.predict_scores([face])[0]))]
