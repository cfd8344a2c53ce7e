"""Whole jobs over files: the annotated video, `ferkit batch` (planning, executors local or
on Dask, chunks of long videos, resumable manifests) and the per-face rows and tables they
write. Built on `ferkit.vision`; never imports TensorFlow."""
