"""The test suite's media and server helpers (tests/assets.py), so the benchmarks measure on
exactly the frames, clips and server the tests use."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from assets import (  # noqa: E402
    CHROMIUM,
    ROOT,
    astronaut,
    astronaut_frames,
    dask_cluster,
    group_photo,
    one_face,
    png16_rgba,
    start_server,
    three_faces,
    tile_bomb_tiff,
    write_video,
    write_y4m,
)
from hostile_files import (  # noqa: E402
    empty_markers_jpeg,
    many_scans_jpeg,
    many_streams_video,
    tiff16_rgba,
)

__all__ = [
    "CHROMIUM",
    "ROOT",
    "astronaut",
    "astronaut_frames",
    "dask_cluster",
    "empty_markers_jpeg",
    "many_scans_jpeg",
    "many_streams_video",
    "group_photo",
    "one_face",
    "png16_rgba",
    "start_server",
    "three_faces",
    "tiff16_rgba",
    "tile_bomb_tiff",
    "write_video",
    "write_y4m",
]
