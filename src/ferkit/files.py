"""Writing outputs safely: to a hidden temporary sibling first, renamed only when complete,
so a crash or Ctrl-C never leaves half a file under the final name."""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

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


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary sibling to write `path`'s new content to: renamed to `path` when the block
    ends without error, removed otherwise (a failed or interrupted write leaves neither a
    half-written `path` nor a temporary file)."""
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def npy_bytes(save: Callable[..., None], *arrays) -> bytes:
    """What `np.save` or `np.savez` writes, as bytes for `write_atomic`."""
    buffer = io.BytesIO()
    save(buffer, *arrays)
    return buffer.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """`data` as the whole content of `path`, or a FerkitError naming `path`."""
    try:
        with replacing(path) as tmp:
            tmp.write_bytes(data)
    except OSError as err:  # the temporary name means nothing to the user: name the output
        raise FerkitError(f"{path}: cannot write ({err.strerror})") from err


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


def write_json(path: Path, obj: object) -> None:
    write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())


class Inputs(NamedTuple):
    """What `find_inputs` found."""

    paths: list[Path]
    unwanted: int  # files met in folders that `keep` turned down (a README among the photos)
    loops: list[Path]  # links met in folders that lead round in a circle: left out


def find_inputs(
    inputs: list[str], out: Path | None = None, keep: Callable[[Path], bool] | None = None
) -> Inputs:
    """Files named, found in folders (recursively) or matched by globs, each once, in order.

    Hidden files in folders (.DS_Store) and anything under the output folder `out` are left
    out; so are links in folders that lead nowhere, and those that lead round in a loop
    (listed, once each, for the caller to say so); a file named is always kept (its reader
    says what is wrong with it); a name that matches nothing is an error.
    """
    found: dict[Path, Path] = {}
    loops: dict[Path, Path] = {}  # each once, even when two inputs reach it
    unwanted = 0
    out = out.resolve() if out is not None else None
    for item in map(str, inputs):
        path = Path(item)
        if path.exists() and not path.is_dir():  # named: its reader refuses a pipe or device
            candidates = [path]
        elif path.is_dir():
            candidates = _walk(path)
        elif glob.has_magic(item):
            matched = [Path(m) for m in sorted(glob.glob(item, recursive=True))]
            candidates = [f for m in matched for f in ([m] if not m.is_dir() else _walk(m))]
            if not candidates:
                raise FerkitError(f"{item}: matches no file")
        else:
            raise FerkitError(f"{item}: no such file or folder")
        for f in candidates:
            if path.is_dir() and any(p.startswith(".") for p in f.relative_to(path).parts):
                continue  # hidden
            try:
                resolved, regular = f.resolve(), f.is_file()
            except RuntimeError:  # how Python 3.11 and 3.12 say a symbolic link loop
                loops.setdefault(f.absolute(), f)
                continue
            except OSError:  # in a folder we may list but not enter: its reader says why
                resolved, regular = f.absolute(), None
            if out in resolved.parents or resolved in found:
                continue
            if f is not path and regular is False:  # a link to nowhere, a pipe, a socket
                continue
            if f is not path and regular and keep is not None and not keep(f):
                unwanted += 1
                continue
            found[resolved] = f
    if not found:
        under_out = out is not None and any(
            out in (r := Path(i).resolve(), *r.parents) for i in map(str, inputs)
        )
        inside = " (files inside --out are never inputs)" if under_out else ""
        skipped = f" ({unwanted} of another kind)" if unwanted else ""
        raise FerkitError(f"no files found in {' '.join(map(str, inputs))}{inside}{skipped}")
    return Inputs(list(found.values()), unwanted, list(loops.values()))


def _walk(folder: Path) -> list[Path]:
    """Every file below `folder`, sorted (links to folders are not followed: no loops); a
    folder that cannot be listed is an error rather than silently empty."""

    def refuse(err: OSError) -> None:
        raise FerkitError(f"{err.filename}: cannot list the folder ({err.strerror})")

    return sorted(
        Path(root) / name for root, _, names in os.walk(folder, onerror=refuse) for name in names
    )


NAME_MAX = 255  # bytes in one file name (ext4, XFS, APFS, ZFS)
# what outputs add to the name they are given: "-12" (`unique_name`), ".annotated.mp4"
# (`ferkit batch --annotate`), and "." + ".tmp<pid>" for the temporary file (`temp_path`)
NAME_ROOM = 40


def fit_name(name: str, room: int = NAME_ROOM) -> str:
    """`name` (a relative path: only its last part is changed) shortened so that it and
    `room` more bytes still make a file name: its start, a hash of the whole last part (two
    long names alike in their first 200 bytes stay apart) and its extension. A 255-byte
    input name would otherwise give outputs that cannot be created."""
    folder, _, last = name.rpartition("/")
    limit = NAME_MAX - room
    if len(os.fsencode(last)) <= limit:
        return name
    digest = hashlib.blake2b(os.fsencode(last), digest_size=4).hexdigest()
    ext = Path(last).suffix if len(Path(last).suffix) <= 16 else ""
    mark = f"~{digest}{ext}"
    head = last[: limit - len(mark)]  # characters: at most one byte each
    while len(os.fsencode(head + mark)) > limit:  # not so in UTF-8 beyond ASCII
        head = head[:-1]
    return f"{folder}/{head}{mark}" if folder else head + mark


def unique_name(name: str, taken: set[str]) -> str:
    """`name` (fitted by `fit_name`), else `name-2`, `name-3`...: the first not in `taken`
    (lowercased names: the folders of macOS and Windows ignore case), which it then joins."""
    name = fit_name(name)
    candidate, n = name, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate.lower())
    return candidate
