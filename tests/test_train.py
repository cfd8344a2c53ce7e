"""Training that survives faults, resumes on the same batches, and the K-fold and
blur-consistency recipes, on tiny generated faces."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import synthetic_faces, write_folder

from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.training import data
from ferkit.training.evaluate import fold_folders


def _ferkit(args, env_extra=None, tmp_cache=None):
    """`ferkit ARGS` in a fresh process with deterministic TensorFlow ops."""
    env = {**os.environ, "TF_DETERMINISTIC_OPS": "1", "PYTHONHASHSEED": "0", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "ferkit", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _run_args(face_folders, out):
    train, val = face_folders
    return ["train", train, "--val", val, "--arch", "vgg", "--epochs", "3"] + [
        "--batch-size", "16", "--seed", "3", "--out", out, "--quiet",
    ]  # fmt: skip


def _history(run):
    with open(run / "history.csv") as fh:
        header = fh.readline().strip().split(",")
        return header, np.loadtxt(fh, delimiter=",", ndmin=2)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, face_folders):
    out = tmp_path_factory.mktemp("reference") / "run"
    done = _ferkit(_run_args(face_folders, out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory, face_folders):
    """A run SIGKILLed inside the save of its third epoch's backup (before the rename)."""
    out = tmp_path_factory.mktemp("killed") / "run"
    done = _ferkit(_run_args(face_folders, out), {"FERKIT_FAILPOINT": "backup:3"})
    assert done.returncode == -9, done.stderr
    return out


def _copy(run, tmp_path):
    return shutil.copytree(run, tmp_path / "run")


def test_sigkill_inside_the_backup_save_leaves_a_resumable_run(killed_run, reference_run, tmp_path):
    backup = killed_run / "backup"
    assert sorted(p.name for p in backup.glob("epoch-*")) == [
        "epoch-0001.weights.h5",
        "epoch-0002.weights.h5",
    ]
    assert list(backup.glob(".epoch-0003.tmp*.weights.h5"))  # killed inside the save window
    assert not (killed_run / "model.json").exists()
    run = _copy(killed_run, tmp_path)
    done = _ferkit(["train", "--resume", "--out", run, "--quiet"])
    assert done.returncode == 0, done.stderr
    assert (run / "model.json").exists() and not (run / "backup").exists()
    header, resumed = _history(run)
    ref_header, reference = _history(reference_run)
    assert header == ref_header and resumed[:, 0].tolist() == [0, 1, 2]
    # the same batches in the same order: the same figures as the uninterrupted run
    np.testing.assert_allclose(resumed, reference, rtol=1e-4, atol=1e-6)


def test_damaged_newest_backup_falls_back_to_the_one_before(killed_run, reference_run, tmp_path):
    run = _copy(killed_run, tmp_path)
    newest = run / "backup" / "epoch-0002.weights.h5"
    newest.write_bytes(newest.read_bytes()[:4000])  # a copy cut short
    done = _ferkit(["train", "--resume", "--out", run, "--quiet"])
    assert done.returncode == 0, done.stderr
    assert "unreadable backup" in done.stderr and "Traceback" not in done.stderr
    _, resumed = _history(run)
    _, reference = _history(reference_run)
    np.testing.assert_allclose(resumed, reference, rtol=1e-4, atol=1e-6)  # epochs 2-3 replayed


def test_no_readable_backup_is_one_clear_error(killed_run, tmp_path, capsys):
    run = _copy(killed_run, tmp_path)
    for path in (run / "backup").glob("epoch-*"):
        path.write_bytes(b"")
    assert main(["train", "--resume", "--out", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "no readable backup" in err[-1]
    assert "new --out" in err[-1]
    run = shutil.copytree(killed_run, tmp_path / "run2")
    (run / "history.csv").write_text("epoch,loss\n0,nan-ish\n")
    assert main(["train", "--resume", "--out", str(run), "--quiet"]) == 2
    assert "history.csv: not a training history" in capsys.readouterr().err.splitlines()[-1]


def test_each_epoch_has_its_own_order_whatever_epoch_a_stream_starts_at(face_folders):
    from ferkit.training.batches import batches
    from ferkit.training.config import TrainConfig

    faces = data.load(face_folders[0])
    cfg = TrainConfig([], batch_size=32, seed=5)

    def epoch_batches(first, epoch):
        stream, steps = batches(faces, cfg, first, 3)
        return [b for b in stream.skip((epoch - first) * steps).take(steps)]

    full, resumed = epoch_batches(0, 2), epoch_batches(2, 2)
    for (x1, y1), (x2, y2) in zip(full, resumed, strict=True):
        np.testing.assert_array_equal(np.asarray(y1), np.asarray(y2))
        np.testing.assert_array_equal(np.asarray(x1), np.asarray(x2))
    first_epoch = epoch_batches(0, 0)
    assert not np.array_equal(np.asarray(first_epoch[0][1]), np.asarray(full[0][1]))


def test_folds_are_stratified_and_keep_identical_faces_together():
    from ferkit.training.data import stratified_folds

    labels = np.repeat(np.arange(7), 6)
    same = np.arange(len(labels))
    same[[5, 40]] = 99  # one face twice, under two labels (FER2013 has such pairs)
    folds = stratified_folds(labels, 3, seed=0, same=same)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(labels)))
    assert [i for i, f in enumerate(folds) if 5 in f] == [i for i, f in enumerate(folds) if 40 in f]
    counts = [np.bincount(labels[f], minlength=7) for f in folds]
    assert sum(abs(c - 2).sum() for c in counts) <= 2  # 2 per class per fold but the pair's move


def test_default_recipe_augmentation_is_what_explore_draws(monkeypatch, face_folders):
    from ferkit.training import config as train
    from ferkit.training.augment import AugmentConfig
    from ferkit.training.explore import augmented_rows

    faces = data.load(face_folders[0])

    def sharpness(rows):
        return np.median([cv2.Laplacian(img, cv2.CV_32F).var() for _, r in rows for img in r])

    original = sharpness(augmented_rows(faces, 7)[:1])
    assert sharpness(augmented_rows(faces, 7)[1:]) > original / 4  # no random blur in the recipe
    blurred = {**train.RECIPES["default"], "augment": AugmentConfig(blur_prob=1.0).to_dict()}
    monkeypatch.setitem(train.RECIPES, "default", blurred)
    assert sharpness(augmented_rows(faces, 7)[1:]) < original / 20


def test_sharp_faces_get_a_blurred_jpeg_twin_and_blurred_faces_themselves(tmp_path):
    from ferkit.training.batches import batches
    from ferkit.training.config import TrainConfig

    x, y = synthetic_faces(4)
    blurred = np.stack([cv2.GaussianBlur(img, (0, 0), 3.3) for img in x])
    faces = data.FaceSet(np.concatenate([x, blurred]), np.concatenate([y, y]), [""] * 2 * len(x))
    cfg = TrainConfig([], batch_size=len(faces), consistency=1.0)
    stream, _ = batches(faces, cfg, 0, 1)
    (batch, _), order = next(iter(stream)), np.random.default_rng([cfg.seed, 0])
    batch = np.asarray(batch)
    assert batch.shape == (len(faces), 48, 48, 2)
    sharp = order.permutation(len(faces)) < len(x)
    lap = np.array(
        [
            [cv2.Laplacian(np.ascontiguousarray(b[..., c]), cv2.CV_32F).var() for c in (0, 1)]
            for b in batch
        ]
    )
    # the twin is blurred as train/ is (Laplacian variance ~6 there, thousands when sharp)
    assert (lap[sharp, 1] < 40).all()
    assert np.median(lap[sharp, 0] / lap[sharp, 1]) > 20
    assert np.array_equal(batch[sharp, ..., 1], np.round(batch[sharp, ..., 1]))  # JPEG-decoded
    np.testing.assert_array_equal(batch[~sharp, ..., 1], batch[~sharp, ..., 0])


def test_consistency_loss_is_cross_entropy_on_both_views_plus_js():
    import keras

    from ferkit.training.nets import build_trainer, js_divergence

    trainer = build_trainer("vgg", 1e-3, consistency=0.5)
    x, y = synthetic_faces(1)
    sharp = x[..., None].astype("float32")
    twin = np.stack([cv2.GaussianBlur(img, (0, 0), 3.3) for img in x])[..., None].astype("float32")
    labels = np.eye(7, dtype="float32")[y]
    both = np.concatenate([sharp, twin], axis=-1)
    p, q = trainer.net(sharp), trainer.net(twin)
    ce = keras.losses.CategoricalCrossentropy()
    expected = float(ce(labels, p) + ce(labels, q) + 0.5 * js_divergence(p, q))
    got = float(trainer.compute_loss(x=both, y=labels, y_pred=trainer(both), training=False))
    assert got == pytest.approx(expected, rel=1e-5)
    assert float(js_divergence(p, q)) > 0
    plain = float(trainer.compute_loss(x=sharp, y=labels, y_pred=p, training=False))
    assert plain == pytest.approx(float(ce(labels, p)), rel=1e-5)  # validation: one view


def test_a_run_that_fails_before_its_first_epoch_leaves_nothing(face_folders, tmp_path, capsys):
    """Bad data or options are one error line, and leave no run folder behind that would
    make the corrected command ask for --resume."""
    train, val = face_folders
    out = tmp_path / "run"
    args = ["train", train, "--val", val, "--epochs", "1", "--out", out]
    assert main([str(a) for a in args + ["--sample-sources", "100000"]]) == 2
    assert "--sample-sources must be between" in capsys.readouterr().err
    assert not out.exists()
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main([str(a) for a in [*args[:1], tmp_path / "missing", *args[2:]]]) == 2
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # what was there stays
    for bad in (["--epochs", "0"], ["--distill", "2"], ["--batch-size", "-1"]):
        with pytest.raises(SystemExit):
            main([str(a) for a in args + bad])
    assert main([str(a) for a in args + ["--teacher", tmp_path / "nope"]]) == 2
    assert "nope: no such folder" in capsys.readouterr().err


@pytest.fixture(scope="module")
def kfold_run(tmp_path_factory, face_folders):
    """Fold 1 alone (as parallel processes run them), then --resume: fold 2, the final model."""
    train, val = face_folders
    out = tmp_path_factory.mktemp("kfold") / "run"
    args = ["train", train, "--val", val, "--folds", "2", "--epochs", "2", "--arch", "vgg"] + [
        "--batch-size", "16", "--consistency", "1", "--mixup", "0.3", "--erase", "0.5",
        "--out", out, "--quiet",
    ]  # fmt: skip
    assert main([str(a) for a in args + ["--fold", "1"]]) == 0
    assert (out / "fold-1" / "model.json").exists() and not (out / "fold-2").exists()
    assert main([str(a) for a in args + ["--fold", "3"]]) == 2  # there are 2
    with pytest.raises(SystemExit):  # folds count from 1; the final is 'final'
        main([str(a) for a in args + ["--fold", "0"]])
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 0
    return out


def test_folds_give_out_of_fold_scores_on_every_sharp_face(kfold_run, face_folders):
    val = data.load(face_folders[1])
    report = json.loads((kfold_run / "folds.json").read_text())
    assert report["n"] == len(val) == 28 and len(report["per_epoch"]) == 2
    held = [data.read_list(kfold_run / f"fold-{i}" / "val_files.txt") for i in (1, 2)]
    assert sorted(held[0] + held[1]) == sorted(val.names) and not set(held[0]) & set(held[1])
    for names in held:  # stratified: 2 of each class's 4 faces in each fold
        assert sorted(n.split("/")[0] for n in names) == sorted(
            n.split("/")[0] for n in val.names[::2]
        )
    # the out-of-fold figure is the folds' own answers at the last epoch, on all 28 faces
    epoch = report["epochs"]
    correct = 0
    for i, names in enumerate(held, 1):
        scores = np.load(kfold_run / f"fold-{i}" / "val_scores.npy")  # epochs x faces x classes
        assert scores.shape == (2, len(names), 7)
        assert np.allclose(scores.astype(np.float32).sum(axis=2), 1, atol=0.01)
        answers = scores[epoch - 1].argmax(axis=1)
        correct += int((answers == val.only(names).labels).sum())
    assert report["accuracy"] == pytest.approx(correct / 28)
    assert epoch == len(report["per_epoch"]) == 2  # the recipe's last, not the best pooled
    low, high = report["interval_95"]["accuracy"]
    assert low <= report["accuracy"] <= high
    assert 0 <= report["blur_agreement"] <= 1


def test_kept_folds_give_the_out_of_fold_figure_without_weights(kfold_run, face_folders, tmp_path):
    """What docs/model/folds keeps of a finished fold (no weights) is all that
    scripts/kfold_progress.py needs to pool the folds' figure."""
    kept, val = _keep_folds(kfold_run, tmp_path / "kept"), data.load(face_folders[1])
    correct = 0
    for i in (1, 2):
        held = val.only(data.read_list(kept / f"fold-{i}" / "val_files.txt"))
        last = np.load(kept / f"fold-{i}" / "val_scores.npy")[-1].argmax(axis=1)
        correct += int((last == held.labels).sum())
    script = Path(__file__).parents[1] / "scripts" / "kfold_progress.py"
    args = [sys.executable, str(script), str(kept), str(face_folders[1])]
    printed = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    assert f"pooled: {correct / 28:.1%}" in printed and "on 28 sharp faces" in printed
    # --against: a second run of the same split, compared face by face (here: fold 1 answers
    # "angry" for every face, so it is right only on the angry ones the first run got wrong)
    other = shutil.copytree(kept, tmp_path / "other")
    scores = np.load(other / "fold-1" / "val_scores.npy")
    scores[-1] = 0
    scores[-1, :, 0] = 1
    np.save(other / "fold-1" / "val_scores.npy", scores)
    held = val.only(data.read_list(kept / "fold-1" / "val_files.txt"))
    mine = np.load(kept / "fold-1" / "val_scores.npy")[-1].argmax(axis=1) == held.labels
    theirs = held.labels == 0
    printed = subprocess.run(
        args + ["--against", str(other)], capture_output=True, text=True, check=True
    ).stdout
    assert (
        f"on the 28 faces of the folds both finished: {correct / 28:.1%} against "
        f"{(correct - mine.sum() + theirs.sum()) / 28:.1%}; right only here "
        f"{(mine & ~theirs).sum()}, only there {(theirs & ~mine).sum()}, McNemar p"
    ) in printed
    (other / "fold-2" / "val_files.txt").write_text("\n".join(reversed(held.names)))
    refused = subprocess.run(args + ["--against", str(other)], capture_output=True, text=True)
    assert refused.returncode != 0 and "not the same split" in refused.stderr


def test_final_model_trains_on_every_sharp_face_for_the_recipes_epochs(kfold_run, face_folders):
    val = data.load(face_folders[1])
    report = json.loads((kfold_run / "folds.json").read_text())
    final = kfold_run / "final"
    assert set(val.names) <= set(data.read_list(final / "train_files.txt"))
    meta = json.loads((kfold_run / "metadata.json").read_text())
    assert meta["training"]["epochs_run"] == report["epochs"]
    assert meta["metrics"]["out_of_fold"]["accuracy"] == report["accuracy"]
    assert meta["training"]["config"]["consistency"] == 1.0
    assert (kfold_run / "model.weights.h5").read_bytes() == (
        final / "model.weights.h5"
    ).read_bytes()


def test_a_kfold_run_teaches_the_same_folds_and_its_final_all_of_them(
    kfold_run, face_folders, tmp_path, capsys
):
    """`--teacher RUN`: fold i learns from RUN's fold i (which never saw fold i's held-out
    faces); the final model from all of RUN's folds; a run validating on faces a teacher
    trained on is refused."""
    train, val = face_folders
    out = tmp_path / "student"
    args = ["train", train, "--val", val, "--epochs", "1", "--batch-size", "16", "--quiet"]
    teach = ["--teacher", kfold_run, "--distill", "0.7"]
    assert main([str(a) for a in args + teach + ["--folds", "2", "--out", out]]) == 0
    assert json.loads((out / "folds.json").read_text())["n"] == 28
    from ferkit.model.fingerprints import decode_fingerprints
    from ferkit.model.folder import read_metadata

    for folder, teachers in [("fold-1", ["fold-1"]), ("final", ["fold-1", "fold-2"])]:
        learned = set(decode_fingerprints(read_metadata(out / folder)))
        for teacher in teachers:  # what a teacher trained on counts as the student's
            assert set(decode_fingerprints(read_metadata(kfold_run / teacher))) <= learned
    assert not set(decode_fingerprints(read_metadata(kfold_run / "fold-2"))) <= set(
        decode_fingerprints(read_metadata(out / "fold-1"))
    )  # fold 1 never learned from the fold that trained on its held-out faces
    split = args + teach + ["--val-split", "0.5", "--out", tmp_path / "split"]
    assert main([str(a) for a in split]) == 2  # RUN's folds trained on these faces
    assert "the teacher trained on" in capsys.readouterr().err


def test_distillation_targets_are_the_served_teachers_scores_mixed_with_the_label(
    kfold_run, face_folders, tmp_path
):
    """Each training face's target is `distill` x the teachers' mean served scores +
    (1 - `distill`) x its label: an ensemble folder teaches as it predicts (members, rule,
    calibration); a K-fold run's final model learns from the mean of its folds."""
    from ferkit.model.folder import write_ensemble
    from ferkit.model.recognizer import FacialExpressionModel
    from ferkit.training.config import TrainConfig
    from ferkit.training.distill import teacher_targets

    faces = data.load(face_folders[0])
    labels = np.eye(7, dtype="float32")[faces.labels]
    ensemble = tmp_path / "ensemble"
    write_ensemble(ensemble, {"a": kfold_run / "fold-1", "b": kfold_run / "fold-2"})
    served = FacialExpressionModel.load(ensemble).predict_scores(faces.images)
    cfg = TrainConfig([], teacher=str(ensemble), distill=0.25)
    targets = teacher_targets(cfg, faces, None)
    assert np.allclose(targets, 0.75 * labels + 0.25 * served, atol=1e-6)
    assert np.allclose(targets.sum(axis=1), 1, atol=1e-5) and not np.allclose(targets, labels)
    folds = [FacialExpressionModel.load(kfold_run / f"fold-{i}") for i in (1, 2)]
    mean = np.mean([m.predict_scores(faces.images) for m in folds], axis=0)
    cfg = TrainConfig([], teacher=str(kfold_run), distill=1.0, folds=2)
    assert np.allclose(teacher_targets(cfg, faces, None), mean, atol=1e-6)
    assert teacher_targets(TrainConfig([]), faces, None) is None  # no teacher: the labels
    with pytest.raises(FerkitError, match="--distill must be between 0 and 1"):
        teacher_targets(TrainConfig([], teacher=str(ensemble), distill=1.5), faces, None)
    # the ensemble trained on every validation face; refused, unless the run trains on them too
    val = data.load(face_folders[1])
    with pytest.raises(FerkitError, match="trained on 28 of this run's validation faces"):
        teacher_targets(TrainConfig([], teacher=str(ensemble)), faces, val)
    both = data.concat([faces, val])
    assert teacher_targets(TrainConfig([], teacher=str(ensemble)), both, val).shape == (
        len(both),
        7,
    )


def test_two_kfold_recipes_are_compared_out_of_fold_by_the_shipping_rule(
    kfold_run, face_folders, tmp_path, capsys
):
    """`evaluate --out-of-fold --against RUN`: a candidate recipe's fold models against
    another recipe's folds of the same split (kept without weights, as docs/model/folds/
    keeps the shipped recipe's), face by face on every face."""
    from ferkit.training.evaluate import paired_runs

    val, kept = data.load(face_folders[1]), _keep_folds(kfold_run, tmp_path / "kept")
    args = ["evaluate", str(face_folders[1]), "--model", str(kfold_run), "--engine", "keras"]
    args += ["--out-of-fold", "--against", str(kept), "--require-better"]
    assert main(args + ["--json"]) == 1  # the same recipe's own folds: no win
    result = json.loads(capsys.readouterr().out)["against"]
    report = json.loads((kfold_run / "folds.json").read_text())
    assert result["n"] == 28 and result["accuracy"] == pytest.approx(report["accuracy"])
    assert result["accuracy_of_model"] == pytest.approx(report["accuracy"])

    _answer(kept, val, 0)  # a reference right on every face
    assert main(args) == 1
    assert "28 faces, both out of fold: " in capsys.readouterr().err
    _answer(kept, val, 1)  # right on none: a candidate right on all 28 wins, one on none ties
    perfect = np.eye(7)[val.labels]
    assert paired_runs(perfect, val, kfold_run, kept)["better"]
    assert not paired_runs(np.roll(perfect, 1, axis=1), val, kfold_run, kept)["better"]
    assert main(args + ["--blur", "2"]) == 2
    assert "kept its folds' answers on the faces as they are" in capsys.readouterr().err
    (kept / "fold-2" / "backup").mkdir()  # as while fold 2 trains
    assert main(args) == 2
    assert "not a finished K-fold run" in capsys.readouterr().err
    (kept / "fold-2" / "backup").rmdir()
    names = data.read_list(kept / "fold-2" / "val_files.txt")
    (kept / "fold-2" / "val_files.txt").write_text("\n".join(names[1:]))
    assert main(args) == 2
    assert "fold-2 held out other faces than any fold" in capsys.readouterr().err


def test_an_ensemble_recipe_is_measured_and_kept_out_of_fold(kfold_run, face_folders, tmp_path):
    """kfold_progress.py --join: two K-fold runs' nets joined fold by fold (each weighing the
    same) are one ensemble recipe; --require-better applies the shipping rule to it against
    another run, and --keep writes its answers as a kept run that the next candidate faces."""
    from ferkit.training.evaluate import fold_answers

    val = data.load(face_folders[1])
    right, also, wrong = (_keep_folds(kfold_run, tmp_path / n) for n in ("a", "b", "c"))
    for kept, shift in ((right, 0), (also, 0), (wrong, 1)):
        _answer(kept, val, shift)
    folds = fold_answers([right, also], val)
    assert sorted(folds) == ["fold-1", "fold-2"] and all(len(n) == 2 for _, n in folds.values())
    script = Path(__file__).parents[1] / "scripts" / "kfold_progress.py"

    def progress(*args) -> subprocess.CompletedProcess:
        command = [sys.executable, str(script), *map(str, args), "--require-better"]
        return subprocess.run(command, capture_output=True, text=True)

    ensemble = tmp_path / "ensemble"
    shown = progress(right, face_folders[1], "--join", also, "--against", wrong, "--keep", ensemble)
    assert shown.returncode == 0, shown.stderr
    assert "pooled: 100.0% " in shown.stdout and "right only here 28, only there 0" in shown.stdout
    assert sorted(p.name for p in ensemble.iterdir()) == ["fold-1", "fold-2"]
    beaten = progress(wrong, face_folders[1], "--against", ensemble)
    assert beaten.returncode == 1 and "not measurably better than" in beaten.stderr
    assert "0.0% against 100.0%" in beaten.stdout
    (right / "fold-2" / "backup").mkdir()  # as while fold 2 trains: no verdict, nothing kept
    unfinished = progress(right, face_folders[1], "--against", wrong, "--keep", tmp_path / "x")
    assert unfinished.returncode != 0 and "has unfinished folds" in unfinished.stderr
    assert not (tmp_path / "x").exists()
    assert progress(right, face_folders[1], "--against", wrong).returncode == 1


def test_ship_model_refuses_a_recipe_that_does_not_beat_the_shipped_recipes_folds(
    kfold_run, face_folders, tmp_path
):
    """scripts/ship_model.sh: a K-fold candidate must also beat SHIPPED_FOLDS out of fold,
    before anything is compared with or copied into the embedded folder."""
    from ferkit.model.recognizer import embedded_model_dir

    kept = _keep_folds(kfold_run, tmp_path / "kept")
    _answer(kept, data.load(face_folders[1]), 0)  # a shipped recipe right on every face
    embedded = shutil.copytree(embedded_model_dir(), tmp_path / "embedded")
    env = {**os.environ, "EMBEDDED": str(embedded), "DOCS": str(tmp_path / "docs")}
    script = Path(__file__).parents[1] / "scripts" / "ship_model.sh"
    shipped = subprocess.run(
        ["bash", script, _copy(kfold_run, tmp_path), face_folders[1]],
        env={**env, "SHIPPED_FOLDS": str(kept)},
        capture_output=True,
        text=True,
    )
    assert shipped.returncode == 1
    assert f"its recipe does not beat {kept}'s: not shipped" in shipped.stderr
    assert sorted(p.name for p in embedded.iterdir()) == sorted(
        p.name for p in embedded_model_dir().iterdir()
    )
    # a folder whose recipe (RECIPE: kfold_progress.py's arguments) wins out of fold must
    # still beat the embedded model on the faces neither trained on: a copy of it only ties
    wrong = _keep_folds(kfold_run, tmp_path / "wrong")
    _answer(wrong, data.load(face_folders[1]), 1)
    candidate = shutil.copytree(embedded_model_dir(), tmp_path / "candidate")
    recipe = f"{kept} --join {_keep_folds(kfold_run, tmp_path / 'also')}"
    for shipped_folds, message in [
        (kept, "its recipe does not beat"),
        (wrong, f"does not beat {embedded} on the same faces: not shipped"),
    ]:
        shipped = subprocess.run(
            ["bash", script, candidate, face_folders[1]],
            env={**env, "SHIPPED_FOLDS": str(shipped_folds), "RECIPE": recipe},
            capture_output=True,
            text=True,
        )
        assert shipped.returncode == 1 and message in shipped.stderr


def _keep_folds(run: Path, kept: Path) -> Path:
    """What docs/model/folds keeps of a K-fold run's finished folds: no weights."""
    for fold in fold_folders(run):
        (kept / fold.name).mkdir(parents=True)
        for name in ("metadata.json", "val_files.txt", "val_scores.npy"):
            shutil.copy(fold / name, kept / fold.name / name)
    return kept


def _answer(kept: Path, faces: data.FaceSet, shift: int) -> None:
    """Make every kept fold's last-epoch answer each face's label + `shift` (0: all right)."""
    for fold in fold_folders(kept):
        scores = np.load(fold / "val_scores.npy")
        labels = faces.only(data.read_list(fold / "val_files.txt")).labels
        scores[-1] = np.eye(7)[(labels + shift) % 7]
        np.save(fold / "val_scores.npy", scores)


def test_progress_script_pools_the_finished_folds_last_epoch(kfold_run, face_folders, tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "kfold_progress.py"
    last = json.loads((kfold_run / "folds.json").read_text())["per_epoch"][-1]["accuracy"]
    run = subprocess.run(
        [sys.executable, script, kfold_run, face_folders[1]], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert f"pooled: {last:.1%} " in run.stdout and "on 28 sharp faces" in run.stdout
    unfinished = shutil.copytree(kfold_run, tmp_path / "run")
    (unfinished / "fold-2" / "backup").mkdir()  # as while fold 2 trains
    run = subprocess.run(
        [sys.executable, script, unfinished, face_folders[1]], capture_output=True, text=True
    )
    assert "fold-2: not finished" in run.stdout and "on 14 sharp faces" in run.stdout
    # --with: fold 1's last-epoch net joined with a model that never saw these faces
    from ferkit.model.recognizer import FacialExpressionModel, embedded_model_dir, geometric_mean
    from ferkit.training.checkpoints import epoch_weights

    member = embedded_model_dir()
    run = subprocess.run(
        [sys.executable, script, unfinished, face_folders[1], "--with", member],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    held = data.load(face_folders[1]).only(data.read_list(unfinished / "fold-1" / "val_files.txt"))
    net = FacialExpressionModel.load(unfinished / "fold-1", "keras")
    net.keras_model.set_weights(epoch_weights(unfinished / "fold-1", 2))
    theirs = FacialExpressionModel.load(member).predict_scores(held.images, False)
    joined = geometric_mean([net.predict_scores(held.images, False), theirs]).argmax(axis=1)
    assert f"joined with {member}: {(joined == held.labels).mean():.1%}; 14 faces" in run.stdout
    assert "joined vs alone: right only joined" in run.stdout


def test_fold_models_give_the_out_of_fold_figure_again(kfold_run, face_folders, capsys):
    """Each fold keeps the weights of the stated epoch (the last), so `evaluate
    --out-of-fold` (every face scored by the fold that never trained on it) is the figure."""
    report = json.loads((kfold_run / "folds.json").read_text())
    for i in (1, 2):
        meta = json.loads((kfold_run / f"fold-{i}" / "metadata.json").read_text())
        assert meta["training"]["epoch_kept"] == report["epochs"]
    args = ["evaluate", str(face_folders[1]), "--model", str(kfold_run), "--engine", "keras"]
    assert main(args + ["--out-of-fold", "--json"]) == 0
    out = capsys.readouterr()
    assert "warning" not in out.err
    result = json.loads(out.out)
    assert result["accuracy"] == pytest.approx(report["accuracy"])
    assert result["engine"] == "out-of-fold" and result["trained_on"] == 0
    assert main(args[:-2] + ["--model", str(kfold_run / "final"), "--out-of-fold"]) == 2
    assert "not a K-fold run" in capsys.readouterr().err


def test_ensemble_with_joins_each_fold_model_with_a_member_that_never_saw_the_faces(
    kfold_run, face_folders, capsys
):
    """The blurred-specialist ensemble measured out of fold: each face's fold model joined
    (geometric mean) with a model that never trained on any of them, beside the folds alone."""
    from ferkit.model.recognizer import FacialExpressionModel, embedded_model_dir, geometric_mean
    from ferkit.training.evaluate import out_of_fold_scores

    val = data.load(face_folders[1])
    member = embedded_model_dir()
    args = ["evaluate", str(face_folders[1]), "--model", str(kfold_run), "--engine", "keras"]
    assert main(args + ["--out-of-fold", "--ensemble-with", str(member), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    folds = out_of_fold_scores(kfold_run, val.images, engine="keras")
    theirs = FacialExpressionModel.load(member, "keras").predict_scores(val.images, False)
    joined = geometric_mean([folds, theirs]).argmax(axis=1) == val.labels
    alone = folds.argmax(axis=1) == val.labels
    assert result["accuracy"] == pytest.approx(joined.mean())
    report = json.loads((kfold_run / "folds.json").read_text())
    assert result["alone"]["accuracy"] == pytest.approx(report["accuracy"])
    assert result["alone"]["only_first"] == (joined & ~alone).sum()
    assert result["alone"]["only_second"] == (alone & ~joined).sum()
    # a member that trained on these faces would leak them into the figure
    assert main(args + ["--out-of-fold", "--ensemble-with", str(kfold_run / "final")]) == 2
    assert "final: trained on 28 of these faces" in capsys.readouterr().err
    assert main(args + ["--ensemble-with", str(member)]) == 2
    assert "--ensemble-with needs --out-of-fold" in capsys.readouterr().err


def test_kfold_run_killed_after_its_final_model_resumes_without_training(kfold_run, tmp_path):
    run = _copy(kfold_run, tmp_path)
    for name in ("metadata.json", "model.json", "model.weights.h5"):
        (run / name).unlink()
    stamps = {p: p.stat().st_mtime_ns for p in run.rglob("*.weights.h5")}
    assert main(["train", "--resume", "--out", str(run), "--quiet"]) == 0
    assert (run / "model.weights.h5").read_bytes() == (
        run / "final" / "model.weights.h5"
    ).read_bytes()
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing was trained again
    assert "out_of_fold" in json.loads((run / "metadata.json").read_text())["metrics"]


def test_final_model_trained_beside_the_folds_keeps_the_stated_epoch(
    kfold_run, tmp_path, capsys, caplog
):
    """`--fold final` trains on every sharp face for every epoch while the folds run; the
    resume keeps the epoch the figure is stated at: the weights a final run stopped there
    gets."""
    from ferkit.model.folder import read_metadata

    run = _copy(kfold_run, tmp_path)
    run_files = ("folds.json", "metadata.json", "model.json", "model.weights.h5")
    for name in run_files:
        (run / name).unlink()
    shutil.rmtree(run / "final")
    config = read_metadata(kfold_run)["training"]["config"]
    args = ["train", *config["sources"], "--val", config["val"], "--folds", "2", "--epochs", "2"]
    args += ["--arch", "vgg", "--batch-size", "16", "--consistency", "1", "--mixup", "0.3"]
    args += ["--erase", "0.5", "--out", str(run), "--quiet", "--fold", "final"]
    assert main(args) == 0
    assert "final model: 2 epochs kept" in capsys.readouterr().out
    assert sorted(p.name for p in (run / "final" / "epochs").iterdir()) == [
        "epoch-0001.npz",
        "epoch-0002.npz",
    ]
    assert main(["train", "--resume", "--out", str(run), "--quiet"]) == 0
    epochs = json.loads((run / "folds.json").read_text())["epochs"]
    final = read_metadata(run / "final")
    assert final["training"]["epoch_kept"] == epochs and final["training"]["epochs_run"] == 2
    weights = _weights(run / "final")
    with np.load(run / "final" / "epochs" / f"epoch-{epochs:04d}.npz") as kept:
        for i, w in enumerate(weights):
            np.testing.assert_array_equal(w, kept[f"arr_{i}"])
    for a, b in zip(weights, _weights(kfold_run / "final"), strict=True):  # same batches
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    assert (run / "model.weights.h5").read_bytes() == (
        run / "final" / "model.weights.h5"
    ).read_bytes()
    # a final that --max-minutes stopped before that epoch is trained again, to it
    (run / "final" / "epochs" / f"epoch-{epochs:04d}.npz").unlink()
    final["training"]["epochs_run"] = epochs - 1
    del final["training"]["epoch_kept"]
    (run / "final" / "metadata.json").write_text(json.dumps(final))
    for name in run_files:
        (run / name).unlink()
    assert main(["train", "--resume", "--out", str(run), "--quiet"]) == 0
    assert f"stopped before epoch {epochs}: training it again" in caplog.text
    final = read_metadata(run / "final")
    assert final["training"]["epochs_run"] == epochs and "epoch_kept" not in final["training"]


def _weights(model: Path) -> list[np.ndarray]:
    from ferkit.model.folder import load_keras_model

    net = load_keras_model(model / "model.json", model / "model.weights.h5")
    return net.get_weights()


def test_evaluate_warns_when_the_faces_were_trained_on(kfold_run, face_folders, tmp_path, capsys):
    _, val = face_folders
    assert main(["evaluate", str(val), "--model", str(kfold_run), "--json"]) == 0
    out = capsys.readouterr()
    warning = [line for line in out.err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "28 of these 28 faces (100.0%)" in warning[0]
    assert json.loads(out.out)["trained_on"] == 28
    x, y = synthetic_faces(2, seed=11)  # faces it never saw
    fresh = write_folder(tmp_path / "fresh", x, y)
    assert main(["evaluate", str(fresh), "--model", str(kfold_run), "--json"]) == 0
    out = capsys.readouterr()
    assert "warning" not in out.err and json.loads(out.out)["trained_on"] == 0


def test_a_run_can_start_from_a_base_model_on_a_sample_of_its_sources(tmp_path, capsys):
    """`--init` (a base trained on the rest of `--val` alone, no other source) and
    `--sample-sources`: at learning rate 0 the fine-tune keeps the base's weights exactly,
    trains on a stratified sample, and counts the base's faces as its own."""
    import keras

    from ferkit.model.folder import load_keras_model

    blurred = write_folder(tmp_path / "blurred", *synthetic_faces(10, seed=5), prefix="blurred")
    sharp = write_folder(tmp_path / "sharp", *synthetic_faces(2, seed=6), prefix="sharp")
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    common = ["--epochs", "1", "--batch-size", "32", "--quiet"]
    base_args = ["train", "--val", blurred, "--val-split", "0.2", "--arch", "vgg", "--out", base]
    assert main([str(a) for a in base_args + common]) == 0
    base_names = data.read_list(base / "train_files.txt")
    assert len(base_names) == 56 and not set(base_names) & set(
        data.read_list(base / "val_files.txt")
    )
    args = ["train", blurred, "--val", sharp, "--init", base, "--sample-sources", "35"] + common
    assert main([str(a) for a in args + ["--learning-rate", "0", "--out", tuned]]) == 0
    trained = data.read_list(tuned / "train_files.txt")
    assert len(trained) == 35 and all("blurred_" in n for n in trained)
    assert np.bincount(data.load(blurred).only(trained).labels).tolist() == [5] * 7  # stratified
    start = load_keras_model(base / "model.json", base / "model.weights.h5")
    end = load_keras_model(tuned / "model.json", tuned / "model.weights.h5")
    for a, b in zip(start.trainable_variables, end.trainable_variables, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    meta = json.loads((tuned / "metadata.json").read_text())
    assert meta["trained_on"]["count"] == len(set(base_names) | set(trained))
    assert main([str(a) for a in args + ["--arch", "seed", "--out", tmp_path / "other"]]) == 2
    assert "--init model is a 'vgg' net, this run trains 'seed'" in capsys.readouterr().err


def largest_int8_weight(path: Path) -> int:
    """The largest |weight| of an int8 ONNX file: 64 at most when its weights use 7 bits, so
    that no CPU's 16-bit sums of two uint8 x int8 products saturate (255 * 64 * 2 < 32768)."""
    import onnx
    from onnx import numpy_helper

    weights = [
        numpy_helper.to_array(t)
        for t in onnx.load(str(path)).graph.initializer
        if t.data_type == onnx.TensorProto.INT8
    ]
    assert weights, f"{path}: no int8 weights"
    return max(int(np.abs(w.astype(np.int16)).max()) for w in weights)


def test_int8_export_calibrates_on_trained_faces_and_is_served_first(
    kfold_run, face_folders, tmp_path, capsys
):
    from ferkit.model.recognizer import FacialExpressionModel

    model = shutil.copytree(kfold_run, tmp_path / "model")
    assert main(["export", str(model), "--int8", str(face_folders[1])]) == 0
    assert "model.int8.onnx (same answer as float32 on" in capsys.readouterr().out
    served = FacialExpressionModel.load(model)
    assert served.engine == "int8"
    assert largest_int8_weight(model / "model.int8.onnx") <= 64
    x, _ = synthetic_faces(3, seed=4)
    float_scores = FacialExpressionModel.load(model, "onnx").predict_scores(x)
    assert np.abs(served.predict_scores(x) - float_scores).max() < 0.05
    x, y = synthetic_faces(1, seed=12)  # faces the model never trained on cannot calibrate it
    never_seen = write_folder(tmp_path / "never", x, y)
    assert main(["export", str(model), "--int8", str(never_seen)]) == 2
    assert "none of the calibration faces" in capsys.readouterr().err


def test_embedded_int8_model_gives_the_float_answers(astronaut):
    from ferkit.model.recognizer import FacialExpressionModel, embedded_model_dir

    # full-range int8 weights saturate ONNX Runtime's 16-bit sums on CPUs without VNNI (the
    # scores drifted by up to 0.16 there); the weights' range shows it on any CPU
    assert largest_int8_weight(embedded_model_dir() / "model.int8.onnx") <= 64

    # two crops of the face, then a corner of sky: no face, its top two scores a near tie,
    # so only its scores are compared, not which of the two wins
    faces = [astronaut[60:170, 170:280], astronaut[20:240, 130:330], astronaut[:48, :48]]
    int8 = FacialExpressionModel.load(engine="int8").predict_scores(faces)
    exact = FacialExpressionModel.load(engine="onnx").predict_scores(faces)
    np.testing.assert_array_equal(int8[:2].argmax(axis=1), exact[:2].argmax(axis=1))
    assert np.abs(int8 - exact).max() < 0.05


def test_ema_weights_are_what_is_validated_and_kept(face_folders, tmp_path):
    import keras

    from ferkit.training.config import TrainConfig
    from ferkit.training.nets import build_trainer, ema_weights
    from ferkit.training.runs import train

    trainer = build_trainer("vgg", 1e-3, ema=0.5)
    x, y = synthetic_faces(2)
    for _ in range(3):  # train_on_batch, unlike fit, leaves the average beside the weights
        trainer.train_on_batch(x[..., None].astype("float32"), np.eye(7)[y])
    trained = keras.ops.convert_to_numpy(trainer.net.trainable_variables[0])
    average = keras.ops.convert_to_numpy(trainer.optimizer._model_variables_moving_average[0])
    assert not np.allclose(trained, average)
    with ema_weights(trainer):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(trainer.net.trainable_variables[0]), average
        )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(trainer.net.trainable_variables[0]), trained
    )
    train_dir, val_dir = face_folders
    cfg = TrainConfig([str(train_dir)], val=str(val_dir), epochs=1, batch_size=32, ema=0.9)
    meta = train(cfg, tmp_path / "run", verbose=0)
    assert meta["training"]["config"]["ema"] == 0.9 and (tmp_path / "run" / "model.json").exists()


def test_pydataset_stream_for_other_backends_follows_the_same_epoch_orders(face_folders):
    from ferkit.training.batches import _Batches, batches, epoch_order, one_hot, sharp_mask
    from ferkit.training.config import TrainConfig

    faces = data.load(face_folders[0])
    cfg = TrainConfig([], batch_size=64, seed=2, consistency=1.0)
    stream, steps = batches(faces, cfg, 1, 3)
    orders = np.stack([epoch_order(len(faces), cfg.seed, e) for e in (1, 2)])
    images, labels = faces.images[..., None], one_hot(faces.labels)
    py = _Batches(images, labels, sharp_mask(faces.images), orders, cfg, steps)
    assert len(py) == 2 * steps
    for i, (_, y_tf) in enumerate(stream):  # the same faces in the same batches
        x, y = py[i]
        np.testing.assert_array_equal(y, np.asarray(y_tf))
        assert x.shape == (len(y), 48, 48, 2)
        np.testing.assert_array_equal(x[..., 1], np.round(x[..., 1]))  # twins JPEG-decoded
    x_again, _ = py[3]
    np.testing.assert_array_equal(x_again, py[3][0])  # batch i depends on (seed, step) only


def test_architectures_within_the_inference_budget():
    from ferkit.training.nets import multiply_adds, network

    budget = {
        "seed": 290_475_520,
        "vgg": 118_040_320,
        "vgg_wide": 264_648_448,
        "vgg_half": 29_429_504,
    }
    for arch, macs in budget.items():
        net = network(arch)
        assert multiply_adds(net) == macs and net.output_shape == (None, 7)
    assert multiply_adds(network("vgg_wide")) <= 300_000_000  # the inference budget of a net


def test_train_help_states_the_configs_own_defaults(capsys):
    from ferkit.training.config import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    options = re.split(r"\n  (?=-)", capsys.readouterr().out)  # one entry per option
    cfg = TrainConfig([])
    for flag, value in (
        ("--epochs", cfg.epochs),
        ("--learning-rate", cfg.learning_rate),
        ("--blur-prob", cfg.augment["blur_prob"]),
        ("--precision", cfg.precision),
        ("--val-rest-repeat", cfg.val_rest_repeat),
    ):
        (entry,) = [o for o in options if o.startswith(flag + " ")]
        assert f"(default {value})" in " ".join(entry.split()), flag


def test_cpu_has_bf16_reads_the_x86_flags():
    from ferkit.training.fit import cpu_has_bf16

    avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nflags\t: avx2\n"
    assert cpu_has_bf16(avx2) is False  # the recipes' bf16 would be emulated: warned
    assert cpu_has_bf16(avx2.replace("fma", "fma avx512f avx512_bf16")) is True
    assert cpu_has_bf16("flags : sse2 amx_tile amx_bf16\n") is True
    assert cpu_has_bf16("processor : 0\nFeatures : fp asimd bf16\n") is None  # not x86: unknown
