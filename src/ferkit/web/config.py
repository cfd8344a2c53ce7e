"""The web app's settings, each with its one default (pass a dict to `create_app`;
`ferkit serve` sets them from its options): MODEL_DIR and ENGINE (the model), DETECTOR,
MIN_FACE, MIN_DETECTION and CROP (how faces are found and framed: see ferkit.vision.pipeline),
SOURCE (the server stream: camera index or video file), MAX_CONTENT_LENGTH (upload cap),
MAX_IMAGE_BYTES (an image's cap within it: an image is read whole into memory, a video never),
DATA_DIR (the app's data folder: uploads and outputs; default `$FERKIT_DATA` or
`~/.local/state/ferkit`), KEEP_DATA (keep this run's files after a stop), JOB_TTL_S (how
long finished jobs are kept), JOB_MAX_S (processing time one video may take), MAX_JOBS
(queued video jobs before 429), JOBS_PER_CLIENT (of those, from one client address),
LIVE_MAX (live sockets and MJPEG viewers at once), LIVE_PER_CLIENT (of those, from one client
address; 0: no per-address cap, e.g. behind a proxy that all clients come through),
LIVE_IDLE_S (a live socket with no frame for this long is closed).
"""

from __future__ import annotations

import os
from pathlib import Path

from ferkit.vision.face import MIN_DETECTION

DEFAULTS = {
    "MODEL_DIR": None,
    "ENGINE": "auto",
    "DETECTOR": "centerface",
    "MIN_FACE": None,
    "MIN_DETECTION": MIN_DETECTION,
    "CROP": "square",
    "SOURCE": None,
    "MAX_CONTENT_LENGTH": 100 * 1024 * 1024,
    "MAX_IMAGE_BYTES": 64 * 1024 * 1024,  # a 40 MP JPEG of noise is 47 MB, a photo 10-25
    "DATA_DIR": None,
    "KEEP_DATA": False,
    "JOB_TTL_S": 3600,
    "JOB_MAX_S": 120,
    "MAX_JOBS": 4,
    "JOBS_PER_CLIENT": 2,
    "LIVE_MAX": 64,
    "LIVE_PER_CLIENT": 8,
    "LIVE_IDLE_S": 30,
    # flask-sock: a live frame is a small JPEG; refuse messages over 4 MB
    "SOCK_SERVER_OPTIONS": {"max_message_size": 4 * 1024 * 1024, "ping_interval": 25},
}


# how `ferkit serve` runs it: where it listens and how many threads its one process has
HOST, PORT, THREADS = "127.0.0.1", 5000, 128


def upload_limit_mb(cap: int) -> str:
    """The upload cap in MB as pages and messages show it ("100", "2.5")."""
    return f"{cap / 2**20:g}"


def upload_caps(config: dict) -> dict[str, int]:
    """The largest upload of each kind in bytes: a video up to the upload cap, an image up to
    the smaller of that and MAX_IMAGE_BYTES (each request thread may hold one in memory)."""
    cap = config["MAX_CONTENT_LENGTH"]
    return {"image": min(cap, config["MAX_IMAGE_BYTES"]), "video": cap}


def too_large_message(cap: int, what: str = "upload") -> str:
    """The one 413 message, from the app or from the server's front."""
    return f"the {what} is larger than the server's limit of {upload_limit_mb(cap)} MB"


def default_data_dir() -> Path:
    """`$FERKIT_DATA`, else the user's state folder (not /tmp: it must survive to be cleaned)."""
    if os.environ.get("FERKIT_DATA"):
        return Path(os.environ["FERKIT_DATA"])
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "ferkit"
