"""Hostile media: files small on disk that would cost a decoder far more than their size
(hidden video streams, JPEG markers and scans, 16-bit TIFFs, videos that hide their length).
Each is refused with a 400 naming what was wrong, before the costly work, and quickly.
"""

from __future__ import annotations

import time
from unittest import mock

import av
import pytest
from hostile_files import (
    empty_markers_jpeg,
    endless_matroska,
    many_scans_jpeg,
    many_streams_video,
    tiff16_rgba,
)

from ferkit.errors import FerkitError
from ferkit.media.images import MAX_JPEG_SCANS, decode_image
from ferkit.media.video import MAX_STREAMS, MAX_VIDEO_STREAMS, check_decodes
from ferkit.web import create_app, shutdown


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app = create_app({"DATA_DIR": str(tmp_path_factory.mktemp("data"))})
    yield app.test_client()
    shutdown(app)


def refusal(client, path: str, data: bytes, kind: str) -> tuple[str, float]:
    """The 400's error and the seconds it took."""
    started = time.process_time()
    reply = client.post(path, data=data, content_type=kind)
    assert reply.status_code == 400, reply.get_json()
    return reply.get_json()["error"], time.process_time() - started


def test_video_with_many_hidden_streams_is_refused_from_its_headers(client, tmp_path):
    """FFmpeg's probe decodes a frame of every stream: 100 hidden 4096x2304 streams held
    3.8 GB. The streams are counted, and sized, from the headers before that probe."""
    video = many_streams_video(tmp_path / "streams.mp4", MAX_STREAMS + 4, size=(256, 144))
    error, cpu = refusal(client, "/api/videos", video.read_bytes(), "video/mp4")
    assert (
        error
        == f"upload: has {MAX_STREAMS + 4} streams (limit {MAX_STREAMS}; keep the video and its sound)"
    )
    assert cpu < 1
    videos = many_streams_video(tmp_path / "videos.mp4", MAX_VIDEO_STREAMS + 1, (128, 72))
    error, _ = refusal(client, "/api/videos", videos.read_bytes(), "video/mp4")
    assert f"has {MAX_VIDEO_STREAMS + 1} video streams (limit {MAX_VIDEO_STREAMS};" in error
    hidden = many_streams_video(tmp_path / "hidden.mp4", 2)  # one 4096x2304 behind 64x64
    error, cpu = refusal(client, "/api/videos", hidden.read_bytes(), "video/mp4")
    assert "its video stream #1 of 4096x2304 is too large (limit 1920x1080" in error
    assert cpu < 1


def test_video_without_duration_is_stopped_at_the_frame_cap(client, tmp_path):
    """A Matroska file that declares no duration passed the header's caps; frames are now
    counted while decoding (a cap of 50 frames here, 18,000 in use)."""
    video = endless_matroska(tmp_path / "endless.mkv", 60)
    with av.open(str(video)) as container:
        assert container.duration is None and container.streams.video[0].frames == 0
    with mock.patch("ferkit.media.video.MAX_VIDEO_FRAMES", 50):
        check_decodes(video)  # the header and the first frame are fine
        reply = client.post("/api/videos", data=video.read_bytes(), content_type="video/x-matroska")
        assert reply.status_code == 202
        job = client.application.extensions["ferkit.jobs"].get(reply.get_json()["id"])
        assert job.finished.wait(60)
    assert job.status == "failed" and job.error == "upload: too many frames: 51 (limit 50; cut it)"


@pytest.mark.parametrize(
    "data, message",
    [
        (empty_markers_jpeg(10_000), "a JPEG with over 1,000 markers or fill bytes"),
        (b"\xff\xd8" + b"\xff" * 100_000 + empty_markers_jpeg(0)[2:], "a JPEG with over 1,000"),
        (
            many_scans_jpeg(MAX_JPEG_SCANS + 1),
            f"a progressive JPEG with over {MAX_JPEG_SCANS} scans",
        ),
    ],
    ids=["empty markers", "fill bytes", "scans"],
)
def test_jpeg_markers_and_scans_are_bounded(client, data, message):
    """10,000 empty APP markers (PIL held 35x a file of them), 100 KB of fill bytes (read one
    by one) and 65 progressive scans (each a pass over the picture) are refused by one
    linear walk over the markers, before any decoder runs."""
    error, cpu = refusal(client, "/api/predict", data, "image/jpeg")
    assert error.startswith(f"upload: {message}") and "refused before decoding" in error
    assert cpu < 0.5


def test_jpeg_walk_is_linear_and_passes_photos():
    """100 MB of empty markers are refused in milliseconds; a progressive photo of 10 scans
    and a baseline one are decoded."""
    huge = empty_markers_jpeg(25_000_000)
    started = time.process_time()
    with pytest.raises(FerkitError, match="over 1,000 markers"):
        decode_image(huge, "huge.jpg")
    assert time.process_time() - started < 0.1
    for data in (many_scans_jpeg(0, (600, 400)), empty_markers_jpeg(3)):
        assert decode_image(data, "photo.jpg").shape[2] == 3


def test_16_bit_rgba_tiff_counts_its_bytes_per_sample(client):
    """PIL reads a 16-bit RGBA TIFF as 8-bit RGBA, which passed the decoded-size rule (a
    165 KB file cost 460 MB to decode): its bytes per sample are read from its tags."""
    error, _ = refusal(client, "/api/predict", tiff16_rgba(4600), "image/tiff")
    assert error == (
        "upload: image too large to decode: 4600x4600 at 8 bytes a pixel needs 161 MB "
        "(limit 160 MB)"
    )
    assert decode_image(tiff16_rgba(64), "small.tif").shape == (64, 64, 3)  # within: decoded
