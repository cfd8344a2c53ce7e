"""The label's trustworthiness: calibration (temperature, ECE), ensembles of model folders
(members with their own preprocessing), and the blurred specialist's recipe."""

import json
import shutil

import numpy as np
import pytest
from conftest import synthetic_faces, write_folder

from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.model.calibration import (
    apply_temperature,
    calibrate,
    expected_calibration_error,
    fit_temperature,
)
from ferkit.model.folder import first_net
from ferkit.model.preprocess import blur
from ferkit.model.recognizer import FacialExpressionModel, embedded_model_dir


def tempered_answers(temperature: float, n: int = 4000, seed: int = 0):
    """Labels drawn from softmax(logits), scores reported as softmax(logits * temperature):
    a model over-confident by `temperature` whose true temperature is known."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, (n, 7))
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(7, p=p) for p in true])
    shown = np.exp(logits * temperature)
    return (shown / shown.sum(axis=1, keepdims=True)).astype(np.float32), labels, true


def test_fitted_temperature_undoes_a_known_overconfidence():
    scores, labels, true = tempered_answers(2.0)
    t = fit_temperature(scores, labels)
    assert 1.8 < t < 2.2
    fixed = apply_temperature(scores, t)
    assert (fixed.argmax(axis=1) == scores.argmax(axis=1)).all()  # the label never changes
    assert np.allclose(fixed.sum(axis=1), 1, atol=1e-5)
    assert (
        expected_calibration_error(fixed, labels) < expected_calibration_error(scores, labels) / 3
    )
    assert expected_calibration_error(true, labels) < 0.03  # the truth is calibrated


def test_calibration_record_reports_before_after_and_cross_fitted():
    scores, labels, _ = tempered_answers(0.6, n=2000)  # under-confident
    record = calibrate(scores, labels)
    assert record["temperature"] < 0.75 and record["n"] == 2000
    assert record["ece_after"] < record["ece_before"]
    assert record["ece_after_cross_fitted"] < record["ece_before"]
    assert record["nll_after"] < record["nll_before"]


@pytest.fixture(scope="module")
def calibrated_copy(tmp_path_factory):
    """The embedded model's joint net, copied, to write a temperature into."""
    folder = tmp_path_factory.mktemp("models") / "joint"
    shutil.copytree(first_net(embedded_model_dir()), folder)
    return folder


def test_evaluate_calibrate_writes_the_temperature_that_predicting_applies(
    calibrated_copy, tmp_path, capsys
):
    x, y = synthetic_faces(6, seed=3)
    faces = write_folder(tmp_path / "faces", x, y)
    metadata = json.loads((calibrated_copy / "metadata.json").read_text())
    metadata.pop("calibration", None)
    (calibrated_copy / "metadata.json").write_text(json.dumps(metadata))
    raw = FacialExpressionModel.load(calibrated_copy).predict_scores(x)
    out = tmp_path / "report"
    assert main(["evaluate", str(faces), "--model", str(calibrated_copy), "--calibrate", "--out", str(out), "--json"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    t = result["calibration"]["temperature"]
    assert t != 1.0 and (out / "reliability.png").stat().st_size > 1000
    saved = json.loads((calibrated_copy / "metadata.json").read_text())["calibration"]
    assert saved["temperature"] == t and saved["n"] == len(y)
    model = FacialExpressionModel.load(calibrated_copy)
    assert model.temperature == t
    assert np.allclose(model.predict_scores(x), apply_temperature(raw, t), atol=1e-5)
    assert np.allclose(model.predict_scores(x, calibrated=False), raw, atol=1e-6)


def test_calibrate_needs_a_model_folder(tmp_path, capsys):
    x, y = synthetic_faces(1)
    faces = write_folder(tmp_path / "faces", x, y)
    assert main(["evaluate", str(faces), "--calibrate"]) == 2
    assert "--calibrate needs --model" in capsys.readouterr().err


def test_a_bad_temperature_is_refused_naming_the_folder(calibrated_copy, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(calibrated_copy, bad)
    metadata = json.loads((bad / "metadata.json").read_text())
    (bad / "metadata.json").write_text(json.dumps({**metadata, "calibration": {"temperature": -1}}))
    with pytest.raises(FerkitError, match="bad: calibration temperature"):
        FacialExpressionModel.load(bad)


@pytest.fixture(scope="module")
def specialist(calibrated_copy, tmp_path_factory):
    """The embedded net again, told to blur its input like train/: a stand-in specialist
    whose answers differ from the joint member's."""
    folder = tmp_path_factory.mktemp("models") / "blurred"
    shutil.copytree(first_net(embedded_model_dir()), folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["preprocessing"]["blur_sigma"] = 3.3
    metadata.pop("calibration", None)
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


def test_ensemble_runs_each_member_with_its_own_preprocessing_and_combines_geometrically(
    calibrated_copy, specialist, tmp_path, astronaut
):
    out = tmp_path / "ensemble"
    assert main(["ensemble", str(calibrated_copy), str(specialist), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["blurred", "joint", "metadata.json"]
    assert first_net(out) == out / "joint" and first_net(specialist) == specialist
    model = FacialExpressionModel.load(out)
    assert model.engine == "int8" and [m.blur_sigma for m in model.members] == [0.0, 3.3]
    faces = [astronaut[60:260, 150:330], astronaut[:48, :48]]
    joint = FacialExpressionModel.load(calibrated_copy).predict_scores(faces, calibrated=False)
    blurred = FacialExpressionModel.load(specialist).predict_scores(faces)
    assert not np.allclose(joint, blurred, atol=1e-3)
    expected = np.sqrt(joint * blurred)
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.allclose(model.predict_scores(faces), expected, atol=1e-4)
    meta = json.loads((out / "metadata.json").read_text())
    assert (
        meta["trained_on"]["count"]
        >= json.loads((specialist / "metadata.json").read_text())["trained_on"]["count"]
    )


def test_ensemble_mistakes_are_one_line_each(calibrated_copy, tmp_path, capsys):
    assert main(["ensemble", str(calibrated_copy), "--out", str(tmp_path / "e")]) == 2
    assert "two or more model folders" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["ensemble", str(calibrated_copy), str(tmp_path / "empty"), "--out", str(tmp_path / "e")]) == 2  # fmt: skip
    assert "empty: not a single ferkit model folder" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
    sneaky = tmp_path / "sneaky"
    sneaky.mkdir()
    (sneaky / "metadata.json").write_text(json.dumps({"ensemble": {"members": ["../joint"]}}))
    with pytest.raises(FerkitError, match="members must be folder names"):
        FacialExpressionModel.load(sneaky)


def test_blurred_recipe_trains_on_the_sources_alone_and_validates_blurred(tmp_path, capsys):
    x, y = synthetic_faces(12, seed=4)
    xs, ys = synthetic_faces(10, seed=5)
    train = write_folder(tmp_path / "train", x, y)
    sharp = write_folder(tmp_path / "sharp", xs, ys, prefix="sharp")
    out = tmp_path / "run"
    args = ["train", str(train), "--val", str(sharp), "--recipe", "blurred", "--arch", "seed"]
    assert main([*args, "--epochs", "1", "--batch-size", "16", "--out", str(out), "--quiet"]) == 0
    trained = (out / "train_files.txt").read_text().split()
    assert trained and not any("sharp" in name for name in trained)  # no sharp face
    assert len((out / "val_files.txt").read_text().split()) == 14  # the 20% carve
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["preprocessing"]["blur_sigma"] == 3.3
    model = FacialExpressionModel.load(out, "keras")
    assert model.blur_sigma == 3.3
    face = xs[0]
    assert np.allclose(
        model.predict_scores([face]), FacialExpressionModel.load(out, "keras", blur_sigma=0.0).predict_scores([blur(face, 3.3)]), atol=1e-4
    )  # fmt: skip


def test_against_compares_face_by_face_and_require_better_is_the_shipping_rule(
    calibrated_copy, specialist, tmp_path, capsys
):
    from ferkit.training.evaluate import measurably_better

    x, y = synthetic_faces(8, seed=6)
    faces = write_folder(tmp_path / "faces", x, y)
    args = ["evaluate", str(faces), "--model", str(specialist), "--against", str(calibrated_copy)]
    code = main([*args, "--require-better", "--json"])
    result = json.loads(capsys.readouterr().out)["against"]
    mine = FacialExpressionModel.load(specialist).predict_scores(x).argmax(axis=1) == y
    theirs = FacialExpressionModel.load(calibrated_copy).predict_scores(x).argmax(axis=1) == y
    assert result["n"] == len(y) and result["accuracy"] == theirs.mean()
    assert result["only_first"] == (mine & ~theirs).sum()
    assert result["only_second"] == (theirs & ~mine).sum()
    assert code == (0 if measurably_better(mine, theirs) else 1)
    assert main(["evaluate", str(faces), "--model", str(specialist), "--against", str(specialist), "--require-better"]) == 1  # fmt: skip
    assert "McNemar p = 1.000" in capsys.readouterr().err


def test_the_shipping_rule_wants_more_right_answers_by_more_than_chance():
    from ferkit.training.evaluate import measurably_better

    same = np.ones(100, dtype=bool)
    ahead = same.copy()
    ahead[:12] = False  # the reference is right on 12 faces more: wrong way
    assert not measurably_better(ahead, same)
    assert measurably_better(same, ahead)  # 12 to 0: p = 2 / 4096
    tied = np.zeros(410, dtype=bool)
    tied[:206] = True  # 206 faces right only here, 204 only there (p = 0.96)
    assert tied.sum() > (~tied).sum() and not measurably_better(tied, ~tied)


def test_mcnemar_is_the_exact_two_sided_binomial_on_discordant_faces():
    from ferkit.training.evaluate import mcnemar

    a = np.array([True] * 10 + [False] * 5 + [True] * 20)
    b = np.array([False] * 10 + [False] * 5 + [True] * 20)
    assert mcnemar(a, b) == {"only_first": 10, "only_second": 0, "p": 2 / 1024}
    assert mcnemar(a, a)["p"] == 1.0
    assert abs(mcnemar(a[:12], ~a[:12])["p"] - 2 * (1 + 12 + 66) / 4096) < 1e-12  # 10 vs 2
