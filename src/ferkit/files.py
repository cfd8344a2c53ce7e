"""Writing outputs safely: to a hidden temporary sibling first, renamed only when complete,
so a crash or Ctrl-C never leaves half a file under the final name."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path


def temp_path(path: Path) -> Path:
    """A hidden sibling that keeps every extension (Keras wants `.weights.h5`, PyAV `.mp4`)."""
    path = Path(path)
    suffixes = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffixes)] or path.name
    return path.with_name(f".{stem}.tmp{os.getpid()}{suffixes}")


def write_atomic(path: Path, data: bytes) -> None:
    tmp = temp_path(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:  # a failed or interrupted write leaves no temporary file either
        tmp.unlink(missing_ok=True)


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    """A CSV file (header, then rows), written atomically."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    write_atomic(path, text.getvalue().encode())


def write_json(path: Path, obj) -> None:
    write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())
