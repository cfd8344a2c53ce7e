"""TensorFlow without its start-up chatter, so a command's output is ferkit's own lines.

TensorFlow 2.21 writes lines such as "oneDNN custom operations are on..." and "All log
messages before absl::InitializeLog() is called are written to STDERR" from C++ while it is
imported, before its log level (TF_CPP_MIN_LOG_LEVEL) applies: an environment variable
cannot hide them. So the import itself runs with the process's stderr (file descriptor 2,
which C++ writes to) sent to /dev/null; TF_CPP_MIN_LOG_LEVEL covers what it logs later, and
Python's `absl` logger (Keras's warnings) is held to errors.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType


def quiet_tensorflow() -> None:
    """From now on in this process, TensorFlow is imported silently, whoever imports it.

    Cheap (nothing is imported here): the command line calls it first, as does each batch
    worker. Without effect once TensorFlow is imported.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # what TensorFlow logs once loaded
    logging.getLogger("absl").setLevel(logging.ERROR)
    if "tensorflow" not in sys.modules and not any(
        isinstance(f, _QuietFinder) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _QuietFinder())


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as Python would, and has it imported with stderr silenced."""

    def find_spec(self, name: str, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the package's own modules import as usual
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _stderr_silenced():  # the whole package's start-up, its C++ libraries included
            self.loader.exec_module(module)

    def __getattr__(self, name: str):  # anything else a loader offers (resources, source)
        return getattr(self.loader, name)


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 on /dev/null for the block (C++ writes there, not to sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
