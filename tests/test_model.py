import json

import numpy as np
import pytest
from conftest import synthetic_faces

from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.model.folder import load_keras_model
from ferkit.model.recognizer import FacialExpressionModel, embedded_model_dir
from ferkit.training.nets import build_model, build_trainer, network


def test_seed_architecture_has_the_seed_parameter_count():
    model = build_model("seed")  # the walkthrough notebook's plain compiled model
    assert model.count_params() == 4_478_727
    assert model.optimizer.__class__.__name__ == "Adam"
    assert model.loss.__class__.__name__ == "CategoricalCrossentropy"
    trainer = build_trainer("seed", 1e-3)
    assert trainer.net.count_params() == 4_478_727
    assert trainer.optimizer.__class__.__name__ == "Adam"
    assert trainer.loss.__class__.__name__ == "CategoricalCrossentropy"


def test_unknown_architecture():
    with pytest.raises(FerkitError, match="unknown architecture"):
        network("resnet9000")


def test_augmentation_changes_training_images_only():
    from ferkit.training.augment import N_UNIFORMS, AugmentConfig, augment

    x, _ = synthetic_faces(1)
    x = x[..., None].astype("float32")
    u = np.random.default_rng(0).random((len(x), N_UNIFORMS), dtype=np.float32)
    out = np.asarray(augment(x, u, AugmentConfig(blur_prob=1.0)))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 255
    assert np.abs(out - x).mean() > 5
    # a blurred image is smoother than the original
    assert np.abs(np.diff(out, axis=2)).mean() < np.abs(np.diff(x, axis=2)).mean()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, face_folders):
    train, val = face_folders
    out = tmp_path_factory.mktemp("run") / "seed"
    args = [
        "train",
        str(train),
        "--val",
        str(val),
        "--arch",
        "seed",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    return out


def test_train_writes_run_files_and_model(trained_run):
    for name in (
        "model.json",
        "model.weights.h5",
        "metadata.json",
        "history.csv",
        "curves.png",
        "config.json",
        "val_files.txt",
        "train_files.txt",
    ):
        assert (trained_run / name).exists(), name
    meta = json.loads((trained_run / "metadata.json").read_text())
    assert meta["labels"][6] == "neutral" and meta["arch"] == "seed"
    assert meta["training"]["epochs_run"] == 1
    assert json.loads((trained_run / "model.json").read_text())["class_name"] == "Functional"


def test_interrupted_run_resumes_from_its_last_epoch(tmp_path, face_folders, trained_run):
    import keras

    from ferkit.training.config import TrainConfig
    from ferkit.training.runs import train

    class CtrlC(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    train_dir, val_dir = face_folders
    out = tmp_path / "run"
    cfg = TrainConfig([str(train_dir)], val=str(val_dir), arch="vgg", epochs=2, batch_size=16)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out, verbose=0, callbacks=[CtrlC()])
    assert (out / "backup").exists() and not (out / "model.json").exists()
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 0
    epochs = [line.split(",")[0] for line in (out / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1"]  # epoch 1 was not trained twice
    assert (out / "model.json").exists() and not (out / "backup").exists()
    assert main(["train", "--resume", "--out", str(trained_run)]) == 2  # complete already


def test_existing_run_needs_resume(trained_run, face_folders, capsys):
    train, val = face_folders
    assert main(["train", str(train), "--val", str(val), "--out", str(trained_run)]) == 2
    assert "--resume" in capsys.readouterr().err


def test_json_and_weights_round_trip_to_identical_predictions(trained_run, face_folders):
    import keras

    x, _ = synthetic_faces(2, seed=5)
    loaded = FacialExpressionModel(trained_run / "model.json", trained_run / "model.weights.h5")
    direct = keras.models.model_from_json((trained_run / "model.json").read_text())
    direct.load_weights(trained_run / "model.weights.h5")
    expected = np.asarray(direct.predict_on_batch(x[..., None].astype("float32")))
    np.testing.assert_allclose(loaded.predict_scores(x), expected, rtol=1e-5, atol=1e-6)
    assert (
        loaded.predict_emotion(np.zeros((100, 80, 3), np.uint8))
        in json.loads((trained_run / "metadata.json").read_text())["labels"]
    )


def test_evaluate_json(trained_run, face_folders, capsys, tmp_path):
    _, val = face_folders
    assert (
        main(["evaluate", str(val), "--model", str(trained_run), "--json", "--out", str(tmp_path)])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 28 and 0 <= result["accuracy"] <= 1
    assert set(result) >= {"accuracy", "macro_recall", "per_class", "confusion", "n"}
    assert np.array(result["confusion"]).sum() == 28
    assert (tmp_path / "confusion.png").exists() and (tmp_path / "metrics.json").exists()


def test_onnx_export_matches_keras(trained_run):
    x, _ = synthetic_faces(2, seed=7)
    assert main(["export", str(trained_run)]) == 0
    keras_scores = FacialExpressionModel.load(trained_run, "keras").predict_scores(x)
    onnx_scores = FacialExpressionModel.load(trained_run, "onnx").predict_scores(x)
    np.testing.assert_allclose(onnx_scores, keras_scores, atol=1e-4)


def test_bad_model_files(tmp_path, trained_run):
    with pytest.raises(FerkitError, match="model file not found"):
        load_keras_model(tmp_path / "model.json", tmp_path / "w.weights.h5")
    (tmp_path / "model.json").write_text("{not json")
    (tmp_path / "w.weights.h5").write_bytes(b"junk")
    with pytest.raises(FerkitError, match="not a Keras model JSON"):
        load_keras_model(tmp_path / "model.json", tmp_path / "w.weights.h5")
    (tmp_path / "vgg.json").write_text(network("vgg").to_json())
    with pytest.raises(FerkitError, match="do not fit the architecture"):
        load_keras_model(tmp_path / "vgg.json", trained_run / "model.weights.h5")


def test_model_json_with_code_or_wrong_shape_is_refused(tmp_path, trained_run):
    import keras

    inputs = keras.Input((48, 48, 1))
    outputs = keras.layers.Dense(7)(
        keras.layers.Flatten()(keras.layers.Lambda(lambda x: x * 2)(inputs))
    )
    (tmp_path / "lambda.json").write_text(keras.Model(inputs, outputs).to_json())
    with pytest.raises(FerkitError, match="not a Keras model JSON"):  # safe mode: no code runs
        load_keras_model(tmp_path / "lambda.json", trained_run / "model.weights.h5")
    inputs = keras.Input((64, 64, 3))
    outputs = keras.layers.Dense(7)(keras.layers.Flatten()(inputs))
    (tmp_path / "rgb.json").write_text(keras.Model(inputs, outputs).to_json())
    with pytest.raises(FerkitError, match=r"expected input \(48, 48, 1\)"):
        load_keras_model(tmp_path / "rgb.json", trained_run / "model.weights.h5")


def test_evaluate_reads_the_csv_layout(tmp_path, trained_run, capsys):
    from conftest import write_csv

    x, y = synthetic_faces(2)
    path = write_csv(tmp_path / "fer2013.csv", x, y, usage="PrivateTest")
    assert (
        main(
            ["evaluate", str(path), "--usage", "PrivateTest", "--model", str(trained_run), "--json"]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["n"] == 14


def test_serving_never_imports_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from ferkit.web import create_app\n"
        "from ferkit.vision.pipeline import Pipeline\n"
        "import numpy as np\n"
        "create_app()\n"
        "Pipeline()(np.zeros((120, 160, 3), np.uint8))\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_embedded_model_loads_by_both_paths_and_agrees(astronaut):
    folder = embedded_model_dir()
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) <= 20 * 1024 * 1024
    faces = [astronaut[60:170, 170:280], astronaut[:48, :48]]
    keras_scores = FacialExpressionModel.load(folder, "keras").predict_scores(faces)
    onnx_scores = FacialExpressionModel.load(folder, "onnx").predict_scores(faces)
    np.testing.assert_allclose(onnx_scores, keras_scores, atol=1e-4)
    assert keras_scores.shape == (2, 7) and np.allclose(keras_scores.sum(1), 1, atol=1e-4)
