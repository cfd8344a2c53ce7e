"""The model files and running them: the model folder format (one net or an ensemble),
the faces a model trained on, preprocessing, calibration and `FacialExpressionModel` on
ONNX Runtime (Keras only when `--engine keras` asks for it)."""
