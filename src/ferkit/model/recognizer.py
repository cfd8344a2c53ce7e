"""`FacialExpressionModel`: face crops in, the 7 emotion scores out.

Two engines give the same scores: Keras (the seed's way: architecture JSON + weights) and
ONNX Runtime (`model.onnx` beside them), which starts in a fraction of a second and never
imports TensorFlow. `model.int8.onnx`, its int8 twin (about 3x faster, the same answer on
99% of faces), is served first when present. The preprocessing (input blur, flip test-time
augmentation) and the score calibration (a temperature) come from the model's
`metadata.json`, so every caller predicts the way the model was measured.

An ensemble folder holds member model folders and a `metadata.json` naming them
(`"ensemble": {"members": [...]}`): each member sees the faces with its own preprocessing
(the blurred specialist its blur), and their scores are combined by the geometric mean
(the mean of log-scores, renormalised), a rule fixed before any measurement; the ensemble's
own temperature then calibrates the combined scores.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS
from ferkit.model.calibration import apply_temperature
from ferkit.model.folder import (
    ENGINES,
    INT8_NAME,
    JSON_NAME,
    ONNX_NAME,
    WEIGHTS_NAME,
    load_keras_model,
    read_metadata,
)
from ferkit.model.preprocess import to_input

log = logging.getLogger(__name__)


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
        self.keras_model = load_keras_model(model_json, weights)
        lock = threading.Lock()  # one Keras call at a time; ONNX Runtime needs none

        def run(batch: np.ndarray) -> np.ndarray:
            with lock:
                return np.asarray(self.keras_model.predict_on_batch(batch))

        self._setup("keras", run, Path(model_json).parent, blur_sigma, tta)

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
        started = time.perf_counter()
        members = read_metadata(folder).get("ensemble", {}).get("members")
        if members:
            if any(
                not isinstance(m, str) or Path(m).name != m or m in (".", "..") for m in members
            ):
                raise FerkitError(f"{folder}: ensemble members must be folder names inside it")
            if blur_sigma is not None or tta is not None:
                raise FerkitError(
                    f"{folder}: an ensemble runs each member as it was measured "
                    "(no input blur or TTA override)"
                )
            nets = [cls._net(folder / m, engine, None, None) for m in members]
            model = cls._ensemble(folder, nets)
        else:
            model = cls._net(folder, engine, blur_sigma, tta)
        log.info(
            "loaded the model in %s (%s) in %.2f s",
            folder,
            model.engine,
            time.perf_counter() - started,
        )
        return model

    @classmethod
    def _net(
        cls, folder: Path, engine: str, blur_sigma: float | None, tta: bool | None
    ) -> FacialExpressionModel:
        """One network of a model folder, by the engine asked for ('auto': int8 ONNX, then
        float32 ONNX, then Keras, whichever the folder has first)."""
        if not folder.is_dir():
            what = "is a file, not a model folder" if folder.exists() else "model folder not found"
            raise FerkitError(f"{folder}: {what}")
        if engine == "int8" or (engine == "auto" and (folder / INT8_NAME).exists()):
            return cls.from_onnx(folder / INT8_NAME, blur_sigma=blur_sigma, tta=tta)
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
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:
            raise FerkitError(f"{path}: not a loadable ONNX model ({err})") from err
        input_name = session.get_inputs()[0].name  # generated by the exporter: read it
        self = cls.__new__(cls)
        self.keras_model = None
        self._setup(
            "int8" if path.name == INT8_NAME else "onnx",
            lambda batch: session.run(None, {input_name: batch})[0],
            path.parent,
            blur_sigma,
            tta,
        )
        return self

    @classmethod
    def _ensemble(cls, folder: Path, members: list[FacialExpressionModel]) -> FacialExpressionModel:
        self = cls.__new__(cls)
        self.members = members
        self.keras_model = next((m.keras_model for m in members if m.keras_model is not None), None)
        self.engine = "+".join(dict.fromkeys(m.engine for m in members))
        self.metadata = read_metadata(folder)
        self.blur_sigma, self.tta = 0.0, False
        self.temperature = _temperature(self.metadata, folder)
        return self

    def _setup(
        self, engine: str, run, folder: Path, blur_sigma: float | None, tta: bool | None
    ) -> None:
        """The engine's batch call, and the preprocessing the model was measured with."""
        self.engine, self._run, self.members = engine, run, []
        self.metadata = read_metadata(folder)
        pre = self.metadata.get("preprocessing", {})
        self.blur_sigma = float(pre.get("blur_sigma", 0.0) if blur_sigma is None else blur_sigma)
        self.tta = bool(pre.get("tta", False) if tta is None else tta)
        self.temperature = _temperature(self.metadata, folder)

    def predict_scores(
        self, faces: Sequence[np.ndarray] | np.ndarray, calibrated: bool = True
    ) -> np.ndarray:
        """Scores (N, 7) for N crops: gray or BGR, any size. `calibrated=False` leaves out the
        temperature (what a new one is fitted on)."""
        if len(faces) == 0:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        if self.members:
            scores = geometric_mean([m.predict_scores(faces, False) for m in self.members])
        else:
            batch = to_input(faces, self.blur_sigma)
            scores = self._run_chunked(batch)
            if self.tta:
                scores = (scores + self._run_chunked(batch[:, :, ::-1])) / 2
        scores = scores.astype(np.float32)
        return apply_temperature(scores, self.temperature) if calibrated else scores

    def _run_chunked(self, batch: np.ndarray, chunk: int = 512) -> np.ndarray:
        parts = [batch[i : i + chunk] for i in range(0, len(batch), chunk)]
        return np.concatenate([self._run(np.ascontiguousarray(p)) for p in parts])

    def predict_emotion(self, face: np.ndarray) -> str:
        """The most likely emotion of one face crop."""
        return EMOTIONS[int(np.argmax(self.predict_scores([face])[0]))]


def geometric_mean(scores: Sequence[np.ndarray]) -> np.ndarray:
    """The ensemble rule: the mean of the members' log-scores (uncalibrated), renormalised.

    Fixed before any measurement, so that no figure chose it; a member sure that a face is
    not X vetoes X more firmly than an arithmetic mean would let it.
    """
    logs = [np.log(np.clip(s, 1e-7, 1)) for s in scores]
    combined = np.exp(np.mean(logs, axis=0))
    return combined / combined.sum(axis=1, keepdims=True)


def _temperature(metadata: dict, folder: Path) -> float:
    """The calibration temperature in a model's metadata (1: none fitted)."""
    value = metadata.get("calibration", {}).get("temperature", 1.0)
    if not isinstance(value, int | float) or not 0.05 <= value <= 20:
        raise FerkitError(f"{folder}: calibration temperature must be 0.05-20, got {value!r}")
    return float(value)
