"""What a batch has finished, so a rerun skips it: `manifest.json` in the output folder.

One entry per finished file, keyed by its absolute path, with the size and modification
time it had when it was analysed: a rerun skips a file whose entry still matches and whose
outputs are all there, and redoes one that changed. The whole manifest is rewritten under a
temporary name and renamed (`ferkit.files`) after every finished task, so a kill at any
moment leaves either the old or the new manifest, never half of one; a file counts as
finished only once its outputs are in place, so the manifest never claims missing work.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from ferkit.errors import FerkitError
from ferkit.files import write_json

NAME = "manifest.json"
VERSION = 1


def stamp(path: Path) -> dict:
    """What identifies this version of a file: its size and modification time (ns)."""
    st = Path(path).stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _inside(text) -> bool:
    """A relative path that stays inside the output folder (names and outputs are joined
    to it: an edited manifest must not make a rerun write elsewhere)."""
    return (
        isinstance(text, str)
        and bool(text)
        and not PurePosixPath(text).is_absolute()
        and (".." not in PurePosixPath(text).parts)
    )


def _well_formed(entry) -> bool:
    return (
        isinstance(entry, dict)
        and _inside(entry.get("name"))
        and all(isinstance(entry.get(k), int) for k in ("size", "mtime_ns"))
        and isinstance(entry.get("outputs"), dict)
        and all(_inside(rel) for rel in entry["outputs"].values())
    )


class Manifest:
    """`ferkit batch`'s record of the files it finished in an output folder (what a rerun
    skips), kept in NAME there."""

    def __init__(self, out: Path):
        self.path = Path(out) / NAME
        self.out = Path(out)
        self.files: dict[str, dict] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                self.files = data["files"]
            except (ValueError, KeyError, TypeError) as err:
                raise FerkitError(f"{self.path}: not a ferkit batch manifest ({err})") from err
            if not isinstance(self.files, dict):
                raise FerkitError(f"{self.path}: not a ferkit batch manifest (no file table)")
            if data.get("version") != VERSION:  # a later ferkit's: its entries may differ
                raise FerkitError(
                    f"{self.path}: a batch manifest of version {data.get('version')!r}, not "
                    f"{VERSION}; use the ferkit that wrote it, or remove it to start again"
                )
            for source, entry in self.files.items():
                if not _well_formed(entry):
                    raise FerkitError(
                        f"{self.path}: not a ferkit batch manifest (its entry for {source} is "
                        "malformed); remove it to start the batch again"
                    )

    def is_done(self, source: Path, wanted: list[str] = ()) -> bool:
        """Finished before, unchanged since, its outputs (and the `wanted` ones) still there."""
        entry = self.files.get(str(source))
        if entry is None or {k: entry.get(k) for k in ("size", "mtime_ns")} != stamp(source):
            return False
        outputs = entry["outputs"]
        return all(k in outputs for k in wanted) and all(
            (self.out / rel).is_file() for rel in outputs.values()
        )

    def name_of(self, source: Path) -> str | None:
        entry = self.files.get(str(source))
        return entry["name"] if entry else None

    def names(self) -> set[str]:
        return {e["name"] for e in self.files.values()}

    def add(self, source: Path, entry: dict) -> None:
        """Record a finished file (after its outputs are written; `save` makes it last)."""
        self.files[str(source)] = entry

    def save(self) -> None:
        write_json(self.path, {"version": VERSION, "files": self.files})
