"""Writing outputs safely: to a hidden temporary sibling first, renamed only when complete,
so a crash or Ctrl-C never leaves half a file under the final name."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
from pathlib import Path

from ferkit.errors import FerkitError


def temp_path(path: Path) -> Path:
    """A hidden sibling that keeps every extension (Keras wants `.weights.h5`, PyAV `.mp4`)."""
    path = Path(path)
    suffixes = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffixes)] or path.name
    return path.with_name(f".{stem}.tmp{os.getpid()}{suffixes}")


_TEMP_NAME = re.compile(r"\.[^/]+\.tmp(\d+)(\.[^/]*)?")  # what `temp_path` makes


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_temps(folder: Path, recursive: bool = True) -> int:
    """Delete the temporary files that a killed writer left in `folder` (and below it): a
    process killed outright runs no cleanup. Never one whose writer still runs; returns
    how many."""
    stale = []
    for path in (Path(folder).rglob if recursive else Path(folder).glob)(".*.tmp*"):
        name = _TEMP_NAME.fullmatch(path.name)
        if name and path.is_file() and not _alive(int(name.group(1))):
            stale.append(path)
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def write_atomic(path: Path, data: bytes) -> None:
    tmp = temp_path(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as err:  # the temporary name means nothing to the user: name the output
        raise FerkitError(f"{path}: cannot write ({err.strerror})") from err
    finally:  # a failed or interrupted write leaves no temporary file either
        tmp.unlink(missing_ok=True)


def regular_file(path: Path) -> int:
    """The size of `path`, which must be a regular file: a named pipe would block the reader
    and a device such as /dev/zero never ends."""
    try:
        info = Path(path).stat()
    except OSError as err:
        raise FerkitError(f"{path}: cannot read ({err.strerror})") from err
    if not stat.S_ISREG(info.st_mode):
        raise FerkitError(f"{path}: not a regular file")
    return info.st_size


def read_bounded(path: Path, limit: int) -> bytes:
    """A regular file's bytes, refused beyond `limit` (also if it grows while read)."""
    too_large = FerkitError(f"{path}: file too large (limit {limit / 2**20:.0f} MB)")
    if regular_file(path) > limit:
        raise too_large
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as err:
        raise FerkitError(f"{path}: cannot read ({err.strerror})") from err
    if len(data) > limit:
        raise too_large
    return data


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    """A CSV file (header, then rows), written atomically."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    write_atomic(path, text.getvalue().encode())


def write_json(path: Path, obj) -> None:
    write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())
