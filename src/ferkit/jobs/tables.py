"""A batch's tables: per file (CSV of faces per frame, JSON summary), and across all files.

Across files there are three tables, each as Parquet (pyarrow) and CSV: `faces` (every
face in every frame or photo), `summary` (one row per file and face track: frames,
duration, share of each emotion) and `errors` (the files that failed and why). They are
rebuilt from the per-file outputs at the end of every run, so they always cover every
finished file, whether it was finished by this run or an earlier one. Every file is written
under a temporary name and renamed when complete (`ferkit.files`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ferkit.files import write_atomic, write_csv, write_json
from ferkit.jobs.rows import FIELDS, INT_FIELDS, FaceRow, summarise
from ferkit.labels import EMOTIONS

FACE_TYPES = {
    f: pa.string() if f == "emotion" else pa.int64() if f in INT_FIELDS else pa.float64()
    for f in FIELDS
}
SUMMARY_TYPES = {
    "file": pa.string(),
    "kind": pa.string(),
    "face_id": pa.int64(),
    "frames": pa.int64(),
    "first_s": pa.float64(),
    "last_s": pa.float64(),
    "duration_s": pa.float64(),
    "detection": pa.float64(),
    "dominant": pa.string(),
    **dict.fromkeys(EMOTIONS, pa.float64()),
}


def write_file_outputs(folder: Path, name: str, info: dict, rows: list[FaceRow]) -> dict:
    """`name`.csv (as `ferkit video --csv`) and `name`.json (summary); their paths in `folder`."""
    csv_rel, json_rel = f"{name}.csv", f"{name}.json"
    (folder / csv_rel).parent.mkdir(parents=True, exist_ok=True)
    write_csv(folder / csv_rel, FIELDS, rows)
    write_json(folder / json_rel, summarise(info, rows))
    return {"csv": csv_rel, "summary": json_rel}


def write_tables(out: Path, finished: list[tuple[str, dict]], errors: list[dict]) -> dict:
    """faces, summary and errors tables (Parquet and CSV) for the finished files.

    `finished`: (file as the user named it, manifest entry) pairs. Returns the row counts.
    """
    faces, summary = [], []
    for file, entry in finished:
        table = pacsv.read_csv(
            out / entry["outputs"]["csv"],
            convert_options=pacsv.ConvertOptions(column_types=FACE_TYPES),
        )
        faces.append(table.add_column(0, "file", pa.array([file] * len(table), pa.string())))
        info = json.loads((out / entry["outputs"]["summary"]).read_text())
        for face_id, face in info["faces"].items():
            summary.append(
                {
                    "file": file,
                    "kind": info["kind"],
                    "face_id": int(face_id),
                    **face,
                    **face["share"],
                }
            )
    face_schema = pa.schema([("file", pa.string()), *FACE_TYPES.items()])
    _write(out / "faces", pa.concat_tables(faces) if faces else face_schema.empty_table())
    summary_schema = pa.schema(list(SUMMARY_TYPES.items()))
    _write(out / "summary", pa.Table.from_pylist(summary, summary_schema))
    error_schema = pa.schema([("file", pa.string()), ("error", pa.string())])
    _write(out / "errors", pa.Table.from_pylist(errors, error_schema))
    return {"faces": sum(len(t) for t in faces), "summary": len(summary), "errors": len(errors)}


def _write(stem: Path, table: pa.Table) -> None:
    for path, write in (
        (stem.with_suffix(".parquet"), pq.write_table),
        (stem.with_suffix(".csv"), pacsv.write_csv),
    ):
        buffer = pa.BufferOutputStream()
        write(table, buffer)
        write_atomic(path, buffer.getvalue().to_pybytes())
