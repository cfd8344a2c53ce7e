import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_DATA, synthetic_faces, write_csv, write_folder

from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.training import data


def test_folder_and_csv_give_the_same_arrays(tmp_path):
    x, y = synthetic_faces(3)
    folder = data.load(write_folder(tmp_path / "f", x, y), cache=False)
    rows = data.load(write_csv(tmp_path / "fer2013.csv", x, y))
    order = np.lexsort((folder.images.reshape(len(folder), -1).sum(1), folder.labels))
    order_csv = np.lexsort((rows.images.reshape(len(rows), -1).sum(1), rows.labels))
    assert folder.images.shape == (21, 48, 48) and folder.images.dtype == np.uint8
    np.testing.assert_array_equal(folder.images[order], rows.images[order_csv])
    np.testing.assert_array_equal(folder.labels[order], rows.labels[order_csv])


def test_labels_follow_fer2013_order_not_alphabetical(tmp_path):
    x, y = synthetic_faces(1)
    faces = data.load(write_folder(tmp_path / "f", x, y), cache=False)
    by_name = dict(zip(faces.names, faces.labels, strict=True))
    assert by_name["neutral/img_0006.png"] == 6 and by_name["sad/img_0004.png"] == 4


def test_csv_usage_filter(tmp_path):
    x, y = synthetic_faces(2)
    path = write_csv(tmp_path / "a.csv", x, y, usage="Training")
    with open(path, "a") as fh:
        fh.write(f"3,{' '.join(['7'] * 2304)},PublicTest\n")
    assert len(data.load(path, usage="PublicTest")) == 1
    assert len(data.load(path, usage="Training")) == 14
    with pytest.raises(FerkitError, match="--usage"):
        data.load(path, usage="Validation")


def test_training_reads_a_csvs_training_rows_and_validates_on_its_public_test(tmp_path):
    """One fer2013.csv as source and --val: Training rows train, PublicTest rows validate,
    PrivateTest rows are never read."""
    from ferkit.training.config import TrainConfig
    from ferkit.training.fit import assemble

    path = tmp_path / "fer2013.csv"
    parts = {"Training": 3, "PublicTest": 2, "PrivateTest": 1}
    with open(path, "w") as fh:
        fh.write("emotion,pixels,Usage\n")
        for seed, (usage, n) in enumerate(parts.items()):
            x, y = synthetic_faces(n, seed=seed)
            for img, label in zip(x, y, strict=True):
                fh.write(f"{label},{' '.join(map(str, img.ravel()))},{usage}\n")
    lines = {"Training": range(2, 23), "PublicTest": range(23, 37)}  # 1-based, after the header
    train, val = assemble(TrainConfig([str(path)], val=str(path), val_split=0.5))
    assert len(val) == 7 and {int(n[4:]) for n in val.names} <= set(lines["PublicTest"])
    assert len(train) == 21 + 7
    assert {int(n[4:]) for n in train.names} <= set(lines["Training"]) | set(lines["PublicTest"])
    assert not set(train.names) & set(val.names)
    folder = write_folder(tmp_path / "faces", *synthetic_faces(1))
    train, _ = assemble(TrainConfig([str(folder)], val=str(path)))
    assert len(train) == 7  # a folder source is read whole


@pytest.mark.parametrize(
    "content, message",
    [
        ("a,b,c\n", "line 1: expected header"),
        ("3," + " ".join(["1"] * 2304) + ",Training\n", r"got '3,1 1 1 .{52}\.\.\.'$"),
        ("emotion,pixels,Usage\n3,1 2 3,Training\n", "line 2: expected 2304 pixels, got 3"),
        (
            "emotion,pixels,Usage\n9," + " ".join(["1"] * 2304) + ",Training\n",
            "line 2: emotion 9 is outside 0..6",
        ),
        (
            "emotion,pixels,Usage\nx," + " ".join(["1"] * 2304) + ",Training\n",
            "line 2: emotion 'x'",
        ),
        (
            "emotion,pixels,Usage\n1," + " ".join(["300"] * 2304) + ",Training\n",
            "line 2: pixel values",
        ),
        (
            "emotion,pixels,Usage\n1," + " ".join(["9" * 30] * 2304) + ",Training\n",
            "line 2: pixel values",  # past int64
        ),
        (
            "emotion,pixels,Usage\n1," + " ".join(["1"] * 2304) + ",Training,x\n",
            "line 2: expected 3 fields, got 4",  # an unquoted comma shifted the fields
        ),
        (
            "emotion,pixels,Usage\n1," + " ".join(["1"] * 2304) + ",Trainng\n",
            "line 2: Usage 'Trainng' is not one of Training, PublicTest, PrivateTest",
        ),
    ],
)
def test_bad_csv_names_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(FerkitError, match=message) as err:
        data.load(path)
    assert "bad.csv" in str(err.value)


def test_special_files_and_bombs_are_not_read(tmp_path):
    """A named pipe would block the reader, /dev/zero never ends; a PNG that declares 49 MP
    among the faces of a class folder is skipped like any unreadable file."""
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(FerkitError, match="pipe.csv: not a regular file"):
        data.load(fifo)
    zero = tmp_path / "zero.csv"
    zero.symlink_to("/dev/zero")
    with pytest.raises(FerkitError, match="zero.csv: not a regular file"):
        data.load(zero)
    import cv2

    folder = write_folder(tmp_path / "faces", *synthetic_faces(1))
    bomb = folder / "happy" / "bomb.png"
    cv2.imwrite(str(bomb), np.zeros((7000, 7000), np.uint8))
    assert bomb.stat().st_size < 100_000
    (folder / "sad" / "zero.png").symlink_to("/dev/zero")
    faces = data.load(folder, cache=False)
    assert len(faces) == 7 and "happy/bomb.png" not in faces.names


def test_bad_folders(tmp_path):
    with pytest.raises(FerkitError, match="no such file"):
        data.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FerkitError, match="no class folders"):
        data.load(tmp_path / "empty")
    (tmp_path / "odd" / "joy").mkdir(parents=True)
    with pytest.raises(FerkitError, match="unknown class folder 'joy'"):
        data.load(tmp_path / "odd")


def test_unreadable_files_are_skipped_and_counted_and_sizes_fixed(tmp_path, caplog):
    x, y = synthetic_faces(1)
    root = write_folder(tmp_path / "f", x, y)
    (root / "happy" / "notes.txt").write_text("not an image")
    (root / "sad" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    import cv2

    cv2.imwrite(str(root / "fear" / "big.png"), np.zeros((96, 96), np.uint8))
    with caplog.at_level(logging.WARNING, logger="ferkit.training.data"):
        faces = data.load(root, cache=False)
    assert len(faces) == 8 and faces.images.shape[1:] == (48, 48)
    assert "skipped 2 files" in caplog.text and "resized 1 images" in caplog.text


def test_cache_is_used_and_invalidated(tmp_path):
    x, y = synthetic_faces(2)
    root = write_folder(tmp_path / "f", x, y)
    first = data.load(root)
    assert list(Path(os.environ["FERKIT_CACHE"]).glob("f-*.npz")), "the first load writes a cache"
    np.testing.assert_array_equal(data.load(root).images, first.images)
    (root / "happy" / "img_0006.png").unlink()
    assert len(data.load(root)) == len(first) - 1


def test_stratified_split_is_seeded_and_disjoint():
    labels = np.repeat(np.arange(7), 20)
    keep, held = data.stratified_split(labels, 0.25, seed=3)
    keep2, held2 = data.stratified_split(labels, 0.25, seed=3)
    np.testing.assert_array_equal(held, held2)
    assert not set(keep) & set(held) and len(held) == 35
    assert np.all(np.bincount(labels[held]) == 5)


def test_cli_reports_user_errors_without_traceback(tmp_path, capsys):
    assert main(["explore", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_explore_writes_pngs_table_and_json(tmp_path, face_folders, capsys):
    train, val = face_folders
    out = tmp_path / "explore"
    assert main(["explore", str(train), "--val", str(val), "--out", str(out), "--augment"]) == 0
    printed = capsys.readouterr().out
    assert "disgust" in printed and "sharpness" in printed
    for name in (
        "samples_train.png",
        "samples_val.png",
        "class_distribution.png",
        "quality_side_by_side.png",
        "augmented.png",
    ):
        assert (out / name).stat().st_size > 5000, name
    report = json.loads((out / "explore.json").read_text())
    assert [c["count"] for c in report["train"]["classes"]] == [30] * 7
    assert report["train"]["quality"]["laplacian_var"]["median"] > 0


@pytest.mark.skipif(
    not REAL_DATA.exists(), reason="the shared FER2013 folders are not beside this checkout"
)
def test_real_publictest_counts_and_committed_split():
    faces = data.load(REAL_DATA / "publictest")
    assert len(faces) == 2872
    assert faces.class_counts().tolist() == [374, 45, 397, 716, 522, 332, 486]
    committed = data.read_list(Path(__file__).parents[1] / "splits" / "publictest_val.txt")
    _, held = data.stratified_split(faces.labels, 0.2, seed=0)
    assert committed == [faces.names[i] for i in held]


@pytest.mark.skipif(
    not REAL_DATA.exists(), reason="the shared FER2013 folders are not beside this checkout"
)
def test_committed_train_and_val_lists_partition_publictest():
    splits = Path(__file__).parents[1] / "splits"
    train = data.read_list(splits / "publictest_train.txt")
    val = data.read_list(splits / "publictest_val.txt")
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(data.load(REAL_DATA / "publictest").names)
