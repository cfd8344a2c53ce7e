"""The Keras side: data sets, augmentation, architectures, runs that survive faults,
K-fold estimates, distillation, evaluation and export. The only subpackage that imports
TensorFlow (`ferkit.model.folder` loads Keras for `--engine keras` only), and only
`ferkit.cli` imports it."""
