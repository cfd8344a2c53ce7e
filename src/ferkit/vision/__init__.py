"""Frame -> faces -> crops -> model -> predictions -> overlay: detectors, alignment, the
`Face` value, `Pipeline` and `Stream`, tracking, the per-image result and drawing. Never
imports TensorFlow."""
