import csv
import json

import av
import cv2
import numpy as np
import pytest
from assets import astronaut_frames, write_video

from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS
from ferkit.media.images import decode_image
from ferkit.vision.overlay import draw
from ferkit.vision.pipeline import Pipeline
from ferkit.vision.tracking import iou


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline()


def test_pipeline_faces_and_drawing(pipeline, astronaut, multi_face_frame):
    faces = pipeline(astronaut)
    assert len(faces) == 1
    face = faces[0].to_dict()
    assert list(face["scores"]) == list(EMOTIONS) and face["emotion"] in EMOTIONS
    assert abs(sum(face["scores"].values()) - 1) < 0.02  # rounded, maybe from an int8 model
    assert face["emotion"] == "happy"  # she smiles
    assert face["face_id"] == 1 and 0.5 < face["detection"] <= 1 and len(face["landmarks"]) == 5
    x, y, w, h = face["box"]
    assert 150 < x < 220 and 40 < y < 110 and 70 < w < 130  # her face, in full-size pixels
    drawn = draw(astronaut, faces)
    assert drawn.shape == astronaut.shape and (drawn != astronaut).any()
    three = pipeline(multi_face_frame)
    assert [f.face_id for f in three] == [1, 2, 3]
    assert [f.box[0] for f in three] == sorted(f.box[0] for f in three)  # numbered left to right
    gray = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    assert iou(pipeline(gray)[0].box, faces[0].box) > 0.8  # the same face in a gray photo


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
    (folder / "notes.txt").write_text("not an image")  # met in the folder: left out
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")  # a photo that fails
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--out", str(out), "--json"]) == 1
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert len(records) == 2 and all(r["faces"][0]["emotion"] == "happy" for r in records)
    assert "broken.jpg: corrupt image" in captured.err and "notes.txt" not in captured.err
    assert "left out 1 file(s) in the folders that are not photos" in captured.err
    assert main(["predict", str(folder / "notes.txt")]) == 1  # named: an error
    assert "notes.txt: not an image" in capsys.readouterr().err
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
    assert list(rows[0])[:9] == [
        "frame", "time_s", "face_id", "x", "y", "w", "h", "detection", "emotion"
    ]  # fmt: skip
    assert all(0.5 < float(r["detection"]) <= 1 for r in rows)
    frames_with_face = {r["frame"] for r in rows}
    # every frame, the first two included: a face confirmed on frame 2 is given back to them
    assert frames_with_face == {str(n) for n in range(45)}
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


def test_short_tracks_are_left_out_of_video_outputs(tmp_path, astronaut, capsys):
    """A second face shown for two frames only is no track (unless --min-track 1 asks)."""
    head = cv2.resize(astronaut[20:240, 130:330], (110, 110))
    frames = list(astronaut_frames(astronaut, 20))
    for frame in frames[15:17]:  # frame 15: a full-frame search (every 15 frames)
        frame[360:470, 10:120] = head
    src = write_video(tmp_path / "flash.mp4", frames)
    tracks = {}
    for min_track in (3, 1):
        out = tmp_path / f"s{min_track}.json"
        args = ["video", str(src), "--out", str(tmp_path / "o.mp4"), "--json", str(out)]
        args += ["--csv", str(tmp_path / f"f{min_track}.csv"), "--min-track", str(min_track)]
        assert main(args) == 0
        tracks[min_track] = json.loads(out.read_text())["faces"]
    assert list(tracks[3]) == ["1"] and tracks[3]["1"]["frames"] >= 17
    assert len(tracks[1]) == 2  # the flash is a face of its own when nothing is left out
    rows = list(csv.DictReader(open(tmp_path / "f3.csv")))
    assert {r["face_id"] for r in rows} == {"1"}
    for flag in ("--min-track", "--every"):  # a usage error, before any work
        with pytest.raises(SystemExit) as stop:
            main(["video", str(src), "--out", str(tmp_path / "o.mp4"), flag, "0"])
        assert stop.value.code == 2


def test_labels_and_bars_of_faces_side_by_side_cover_no_face_and_no_label():
    """A group photo: each label and each set of bars keeps off the other faces and off what
    was drawn before; where the whole label has no room, the number alone goes there."""
    from ferkit.vision.face import Face
    from ferkit.vision.overlay import _bars_size, _overlap, _rect, _scale, layout

    scores = np.eye(len(EMOTIONS), dtype=np.float32)[3]
    faces = [Face((20 + 110 * i, 60, 90, 90), scores, face_id=i + 1) for i in range(7)]
    places = layout((420, 800, 3), faces)
    bars = {}
    for p in places:
        if p.bars is not None:
            w, h = _bars_size(p.face.box, _scale((420, 800)))
            bars[p.face.face_id] = (p.bars[0], p.bars[1], p.bars[0] + w, p.bars[1] + h)
    assert bars  # some faces have room for theirs
    for i, place in enumerate(places):
        own = [place.label] + ([bars[place.face.face_id]] if place.face.face_id in bars else [])
        others = [_rect(f.box) for f in faces if f is not place.face]
        others += [p.label for p in places if p is not place]
        others += [r for face_id, r in bars.items() if face_id != place.face.face_id]
        assert not any(_overlap(a, b) for a in own for b in others), place
        assert place.text.startswith(f"#{i + 1}")
    assert any(" happy " in p.text for p in places)  # the whole label where there is room
    assert any(p.text == f"#{p.face.face_id}" for p in places)  # the number where there is not
    image = draw(np.full((420, 800, 3), 120, np.uint8), faces)
    assert image.shape == (420, 800, 3)


def test_score_bars_stay_whole_near_the_frame_edge():
    """A face at the bottom gets its 7 labelled bars beside it, none cut off."""
    from ferkit.vision.face import Face

    frame = np.full((480, 640, 3), 120, np.uint8)
    scores = np.full(len(EMOTIONS), 1 / len(EMOTIONS), np.float32)
    drawn = draw(frame, [Face((250, 380, 90, 90), scores)])
    ys, xs = np.nonzero((drawn == 40).all(axis=2))  # the bars' dark background
    beside = xs.min() > 250 + 90 or xs.max() < 250  # off its box (and off its label)
    assert beside and ys.max() < 480  # inside the frame
    assert ys.max() - ys.min() >= 7 * 12  # seven rows of readable text
