"""Read FER2013 from image folders or the original CSV into uint8 arrays.

Both layouts give the same `FaceSet`: images N x 48 x 48 (uint8), labels N (int64) in
the canonical order of `ferkit.labels`, and a name per image (``class/file`` for
folders, ``csv:LINE`` for CSV rows) so splits can be written down as file lists.
Decoded folders are cached under ``~/.cache/ferkit`` (override with ``FERKIT_CACHE``),
keyed by path, sizes and mtimes, so the second load of 28k JPEGs is instant.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.files import regular_file, replacing, write_atomic
from ferkit.labels import EMOTIONS, IMAGE_SIZE, NUM_CLASSES
from ferkit.media.images import read_image
from ferkit.model.preprocess import to_gray8

CSV_HEADER = ["emotion", "pixels", "Usage"]
USAGES = ("Training", "PublicTest", "PrivateTest")
CACHE_VERSION = "1"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceSet:
    """Faces as arrays plus a name per face, so any subset can be written down as a list."""

    images: np.ndarray
    labels: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> FaceSet:
        index = np.asarray(index, dtype=np.int64)
        return FaceSet(self.images[index], self.labels[index], [self.names[i] for i in index])

    def only(self, names: list[str]) -> FaceSet:
        """Keep the images listed by name (e.g. a committed split file)."""
        return self.subset(self.positions(names))

    def positions(self, names: list[str]) -> np.ndarray:
        """Where the images listed by name are in this set, in the list's order."""
        position = {name: i for i, name in enumerate(self.names)}
        missing = [n for n in names if n not in position]
        if missing:
            raise FerkitError(
                f"{len(missing)} listed images are not in the data, e.g. {missing[0]}"
            )
        return np.array([position[n] for n in names], dtype=np.int64)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(EMOTIONS))


def concat(sets: list[FaceSet]) -> FaceSet:
    """One set from several sources (a set listed twice is trained on twice)."""
    return FaceSet(
        np.concatenate([s.images for s in sets]),
        np.concatenate([s.labels for s in sets]),
        [n for s in sets for n in s.names],
    )


def load(path: str | Path, usage: str | None = None, cache: bool = True) -> FaceSet:
    """Load a class-folder tree or a fer2013.csv file (``usage`` filters CSV rows)."""
    path = Path(path)
    if not path.exists():
        raise FerkitError(f"{path}: no such file or folder")
    if path.is_dir():
        if usage is not None:
            raise FerkitError(f"{path}: --usage applies to fer2013.csv files, not folders")
        return load_folder(path, cache=cache)
    regular_file(path)
    return load_csv(path, usage=usage)


def load_part(path: str | Path, csv_usage: str) -> FaceSet:
    """A class folder whole, or only the rows of a fer2013.csv whose Usage is `csv_usage`:
    training reads a CSV's Training rows as a source and its PublicTest rows as --val, so
    that the PrivateTest rows are never seen."""
    return load(path, usage=None if Path(path).is_dir() else csv_usage)


def read_list(path: str | Path) -> list[str]:
    """Read a split file: one image name per line."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise FerkitError(f"{path}: cannot read file list ({err.strerror})") from err
    return [line.strip() for line in lines if line.strip()]


def write_list(path: str | Path, names: list[str]) -> None:
    write_atomic(Path(path), ("\n".join(names) + "\n").encode())


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices per class so both parts keep the class shares; same seed, same split."""
    if not 0 < fraction < 1:
        raise FerkitError(f"--val-split must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in range(len(EMOTIONS)):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_held = int(round(len(idx) * fraction))
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def _folder_files(root: Path) -> list[tuple[int, Path]]:
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not subdirs:
        raise FerkitError(f"{root}: no class folders (expected {', '.join(EMOTIONS)})")
    unknown = [p.name for p in subdirs if p.name not in EMOTIONS]
    if unknown:
        raise FerkitError(
            f"{root}: unknown class folder '{unknown[0]}' (expected {', '.join(EMOTIONS)})"
        )
    files = []
    for sub in subdirs:
        label = EMOTIONS.index(sub.name)
        files += [(label, f) for f in sorted(sub.iterdir()) if f.is_file()]
    if not files:
        raise FerkitError(f"{root}: the class folders hold no files")
    return files


def _cache_path(root: Path, files: list[tuple[int, Path]]) -> Path:
    digest = hashlib.sha1(f"{CACHE_VERSION}|{root.resolve()}".encode())
    for _, f in files:
        st = f.stat()
        digest.update(f"{f.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    cache_dir = Path(os.environ.get("FERKIT_CACHE", Path.home() / ".cache" / "ferkit"))
    return cache_dir / f"{root.name}-{digest.hexdigest()[:16]}.npz"


def _decode(path: Path) -> np.ndarray | None:
    """A face image in gray, or None (skipped, counted) for anything else: an empty,
    corrupt or non-image file, or one whose header declares more than a photo's budget (a
    bomb among the faces). The app's image reader, so both refuse the same files."""
    try:
        return to_gray8(read_image(path))
    except FerkitError:
        return None


def load_folder(root: Path, cache: bool = True) -> FaceSet:
    """Decode ``root/<class>/*``; unreadable files are skipped and counted in one warning."""
    files = _folder_files(root)
    cached = _cache_path(root, files)
    if cache and cached.exists():
        with np.load(cached) as z:
            return FaceSet(z["images"], z["labels"], list(z["names"]))
    with ThreadPoolExecutor(8) as pool:
        decoded = list(pool.map(_decode, [f for _, f in files]))
    images, labels, names, skipped, resized = [], [], [], [], 0
    for (label, f), img in zip(files, decoded):
        if img is None:
            skipped.append(f)
            continue
        if img.shape != (IMAGE_SIZE, IMAGE_SIZE):
            img = cv2.resize(img, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
            resized += 1
        images.append(img)
        labels.append(label)
        names.append(f"{f.parent.name}/{f.name}")
    if skipped:
        log.warning(
            "%s: skipped %d files that are not readable images, e.g. %s",
            root,
            len(skipped),
            skipped[0],
        )
    if resized:
        log.warning("%s: resized %d images that were not 48x48", root, resized)
    if not images:
        raise FerkitError(f"{root}: no readable images")
    faces = FaceSet(np.stack(images), np.array(labels, dtype=np.int64), names)
    if cache:
        _save_cache(cached, faces)
    return faces


def _save_cache(path: Path, faces: FaceSet) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        np.savez(tmp, images=faces.images, labels=faces.labels, names=np.array(faces.names))


def load_csv(path: Path, usage: str | None = None) -> FaceSet:
    """Read ``emotion,pixels,Usage`` rows; any malformed row is an error naming its line."""
    if usage is not None and usage not in USAGES:
        raise FerkitError(f"--usage must be one of {', '.join(USAGES)}, got '{usage}'")
    images, labels, names = [], [], []
    try:  # utf-8-sig: spreadsheet programs start the file with a byte order mark
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:3]] != CSV_HEADER:
                got = ",".join(header or [])  # a file without header: its first row, cut short
                got = got if len(got) <= 60 else got[:60] + "..."
                raise FerkitError(
                    f"{path}: line 1: expected header '{','.join(CSV_HEADER)}', got '{got}'"
                )
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if len(row) != len(header):  # a stray comma would shift the fields
                    raise FerkitError(
                        f"{path}: line {line}: expected {len(header)} fields, got {len(row)}"
                    )
                if row[2].strip() not in USAGES:  # a typo would drop the row from every split
                    raise FerkitError(
                        f"{path}: line {line}: Usage '{row[2]}' is not one of {', '.join(USAGES)}"
                    )
                if usage is not None and row[2].strip() != usage:
                    continue
                images.append(_parse_pixels(path, line, row[1]))
                labels.append(_parse_label(path, line, row[0]))
                names.append(f"csv:{line}")
    except UnicodeDecodeError as err:
        raise FerkitError(f"{path}: not a text CSV file ({err.reason})") from err
    except csv.Error as err:  # e.g. a field over csv.field_size_limit() (131,072 characters)
        raise FerkitError(f"{path}: line {reader.line_num}: malformed CSV ({err})") from err
    if not images:
        which = f" with Usage={usage}" if usage else ""
        raise FerkitError(f"{path}: no rows{which}")
    return FaceSet(np.stack(images), np.array(labels, dtype=np.int64), names)


def _parse_label(path: Path, line: int, text: str) -> int:
    try:
        label = int(text)
    except ValueError:
        raise FerkitError(f"{path}: line {line}: emotion '{text}' is not an integer") from None
    if not 0 <= label < len(EMOTIONS):
        raise FerkitError(f"{path}: line {line}: emotion {label} is outside 0..6")
    return label


def _parse_pixels(path: Path, line: int, text: str) -> np.ndarray:
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise FerkitError(f"{path}: line {line}: pixels must be space-separated integers") from None
    except OverflowError:  # past int64: out of range like any value over 255
        raise FerkitError(f"{path}: line {line}: pixel values must be in 0..255") from None
    if values.size != IMAGE_SIZE * IMAGE_SIZE:
        raise FerkitError(
            f"{path}: line {line}: expected {IMAGE_SIZE * IMAGE_SIZE} pixels, got {values.size}"
        )
    if values.min() < 0 or values.max() > 255:
        raise FerkitError(f"{path}: line {line}: pixel values must be in 0..255")
    return values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)


def stratified_folds(
    labels: np.ndarray, k: int, seed: int, same: np.ndarray | None = None
) -> list[np.ndarray]:
    """K disjoint index sets covering every face, each with the class shares of the whole.

    `same` (a fingerprint per face) keeps identical faces in one fold: publictest/ holds 20
    pairs of pixel-identical faces, and a pair split across folds is trained on and scored.
    """
    if not 2 <= k <= len(labels):
        raise FerkitError(f"--folds must be between 2 and the number of faces, got {k}")
    rng = np.random.default_rng(seed)
    order = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c)) for c in range(NUM_CLASSES)]
    )
    fold_of = np.empty(len(labels), dtype=np.int64)
    fold_of[order] = np.arange(len(labels)) % k
    if same is not None:
        _, first, inverse = np.unique(same, return_index=True, return_inverse=True)
        fold_of = fold_of[first][inverse]
    return [np.flatnonzero(fold_of == i) for i in range(k)]


def sharp_folds(sharp: FaceSet, k: int, seed: int) -> list[np.ndarray]:
    """The K folds of the sharp faces; pixel-identical faces share a fold."""
    from ferkit.model.fingerprints import fingerprints

    return stratified_folds(sharp.labels, k, seed, fingerprints(sharp.images))
