import csv
import json

import av
import cv2
import numpy as np
import pytest
from assets import astronaut_frames, write_video

from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.faces import HaarDetector, TrackingDetector, crop, detect_faces
from ferkit.images import decode_image
from ferkit.labels import EMOTIONS
from ferkit.overlay import draw
from ferkit.pipeline import Pipeline
from ferkit.tracking import Tracker


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline()


def test_haar_finds_the_astronaut_and_three_heads(astronaut, multi_face_frame):
    boxes = detect_faces(astronaut, HaarDetector())
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert 150 < x < 200 and 40 < y < 90 and 80 < w < 120  # her face, in full-size pixels
    assert len(detect_faces(multi_face_frame, HaarDetector())) == 3


def test_pipeline_results_and_drawing(pipeline, astronaut, multi_face_frame):
    results = pipeline(astronaut)
    assert len(results) == 1
    face = results[0]
    assert list(face["scores"]) == list(EMOTIONS) and face["emotion"] in EMOTIONS
    assert abs(sum(face["scores"].values()) - 1) < 1e-3
    assert face["emotion"] == "happy"  # she smiles
    drawn = draw(astronaut, results)
    assert drawn.shape == astronaut.shape and (drawn != astronaut).any()
    assert len(pipeline(multi_face_frame)) == 3
    gray = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    assert pipeline(gray)[0]["box"] == face["box"]


def test_tracking_detector_follows_faces_and_finds_new_ones(astronaut, multi_face_frame):
    tracker = TrackingDetector(refresh=5)
    frames = list(astronaut_frames(astronaut, 30))
    found = [detect_faces(f, tracker) for f in frames]
    assert sum(len(b) >= 1 for b in found) >= 29
    full = detect_faces(frames[-1], HaarDetector())
    assert abs(found[-1][0][0] - full[0][0]) < 0.15 * full[0][2]  # it follows the face as it moves
    assert len(detect_faces(multi_face_frame, tracker)) == 3  # a lost face triggers a full search


def test_crop_margin_is_clipped_to_the_frame(astronaut):
    assert crop(astronaut, (0, 0, 100, 100), margin=0.2).shape == (120, 120, 3)


def test_tracker_keeps_ids_and_smooths():
    tracker = Tracker(alpha=0.5)
    happy = dict.fromkeys(EMOTIONS, 0.0) | {"happy": 1.0}
    sad = dict.fromkeys(EMOTIONS, 0.0) | {"sad": 1.0}
    first = tracker.update([{"box": [10, 10, 50, 50], "emotion": "happy", "scores": happy}])
    second = tracker.update(
        [
            {"box": [12, 11, 50, 50], "emotion": "sad", "scores": sad},
            {"box": [200, 10, 50, 50], "emotion": "sad", "scores": sad},
        ]
    )
    assert first[0]["face_id"] == second[0]["face_id"] == 1 and second[1]["face_id"] == 2
    assert second[0]["scores"]["happy"] == 0.5  # one sad frame does not flip a happy face


def test_images_of_any_kind(tmp_path, astronaut):
    ok, png16 = cv2.imencode(".png", astronaut.astype(np.uint16) * 256)
    assert decode_image(png16.tobytes()).dtype == np.uint8
    ok, rgba = cv2.imencode(".png", cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA))
    assert decode_image(rgba.tobytes()).shape == astronaut.shape
    with pytest.raises(FerkitError, match="not an image"):
        decode_image(b"hello world", "x.jpg")
    with pytest.raises(FerkitError, match="corrupt"):
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "x.png")


def test_huge_images_are_refused_before_decoding():
    ok, png = cv2.imencode(".png", np.zeros((7000, 7000), np.uint8))  # 49 MP, compresses small
    with pytest.raises(FerkitError, match="too large"):
        decode_image(png.tobytes(), "huge.png")


def test_predict_cli_processes_good_files_and_fails_on_bad(tmp_path, astronaut, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "astro.jpg"), astronaut)
    cv2.imwrite(str(folder / "gray.png"), cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY))
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--out", str(out), "--json"]) == 1
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert len(records) == 2 and all(r["faces"][0]["emotion"] == "happy" for r in records)
    assert "notes.txt" in captured.err
    assert (out / "astro.png").exists() and json.loads((out / "gray.json").read_text())[
        "width"
    ] == 512


def test_video_cli_writes_h264_csv_summary_chart(tmp_path, astronaut_video, capsys):
    out = tmp_path / "annotated.mp4"
    args = [
        "video",
        str(astronaut_video),
        "--out",
        str(out),
        "--csv",
        str(tmp_path / "f.csv"),
        "--json",
        str(tmp_path / "s.json"),
        "--chart",
        str(tmp_path / "c.png"),
    ]
    assert main(args) == 0
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (640, 480)
        assert round(float(stream.average_rate)) == 30
        assert sum(1 for _ in container.decode(stream)) == 45
    rows = list(csv.DictReader(open(tmp_path / "f.csv")))
    assert list(rows[0])[:8] == ["frame", "time_s", "face_id", "x", "y", "w", "h", "emotion"]
    frames_with_face = {r["frame"] for r in rows}
    assert len(frames_with_face) >= 0.95 * 45
    # after smoothing the label of the main face changes at most once per second
    main_face = [r["emotion"] for r in rows if r["face_id"] == "1"]
    changes = sum(a != b for a, b in zip(main_face, main_face[1:], strict=False))
    assert changes <= 45 / 30
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["frames"] == 45 and "1" in summary["faces"]
    assert (tmp_path / "c.png").stat().st_size > 5000


@pytest.mark.parametrize(
    "content", [b"", b"\x00\x00\x00\x18ftypmp42 truncated garbage" * 3, b"plain text"]
)
def test_bad_videos_fail_cleanly_and_leave_nothing(tmp_path, content, capsys):
    src = tmp_path / "bad.mp4"
    src.write_bytes(content)
    out = tmp_path / "out.mp4"
    assert main(["video", str(src), "--out", str(out), "--csv", str(tmp_path / "f.csv")]) == 2
    assert "bad.mp4" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [src]


def test_truncated_video_leaves_no_half_file(tmp_path, astronaut_video, capsys):
    data = astronaut_video.read_bytes()
    src = tmp_path / "cut.mp4"
    src.write_bytes(data[: len(data) // 2])
    code = main(["video", str(src), "--out", str(tmp_path / "o.mp4")])
    out_exists = (tmp_path / "o.mp4").exists()
    assert (code == 0 and out_exists) or (code == 2 and not out_exists)
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_video_keeps_its_audio(tmp_path, astronaut, capsys):
    src = write_video(tmp_path / "talk.mp4", astronaut_frames(astronaut, 30), audio=True)
    out = tmp_path / "out.mp4"
    assert main(["video", str(src), "--out", str(out)]) == 0
    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert container.streams.audio[0].codec_context.name == "aac"
        packets = sum(1 for p in container.demux(container.streams.audio[0]) if p.size)
    assert packets > 30  # about a second of sound at 1024 samples a packet


def test_video_without_faces(tmp_path, capsys):
    blank = (np.full((120, 160, 3), 40, np.uint8) for _ in range(10))
    src = write_video(tmp_path / "blank.mp4", blank)
    assert (
        main(
            [
                "video",
                str(src),
                "--out",
                str(tmp_path / "o.mp4"),
                "--json",
                str(tmp_path / "s.json"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "s.json").read_text())["faces"] == {}


def test_astronaut_frames_are_640x480(astronaut):
    frame = next(astronaut_frames(astronaut, 2))
    assert frame.shape == (480, 640, 3)
