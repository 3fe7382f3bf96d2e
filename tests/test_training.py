"""train -> evaluate -> predict end to end, run directories that move, determinism, metrics."""

import csv
import json
import os
import shutil

import keras
import numpy as np
import pytest
from imagegen import make_folder, make_split_folder
from sklearn import metrics as skm

from simplecnn.config import TrainConfig
from simplecnn.data import DataError
from simplecnn.errors import OutputError
from simplecnn.models import STYLES
from simplecnn.reports import classification_metrics
from simplecnn.training import RunError, evaluate, load_run, predict, train

FAST = dict(image_size=32, epochs=2, batch_size=8, patience=5)


@pytest.fixture(scope="module")
def two_class(tmp_path_factory) -> str:
    return make_folder(str(tmp_path_factory.mktemp("data") / "pets"), per_class=16)


@pytest.mark.multibackend
@pytest.mark.parametrize("style", STYLES)
def test_train_evaluate_predict_and_move_the_run(style, two_class, tmp_path):
    run = tmp_path / "run"
    result = train(two_class, run, TrainConfig(style=style, **FAST), verbose=0)
    assert result.class_names == ["cats", "dogs"]
    assert set(result.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    for name in ("model.keras", "run.json", "history.csv", "curves.png", "files.json"):
        assert (run / name).stat().st_size > 0, name
    assert any((run / "logs").rglob("events.out.tfevents*"))
    meta = json.loads((run / "run.json").read_text())
    assert meta["style"] == style and meta["status"] == "done"
    assert meta["model_config"]["input_shape"] == [32, 32, 3]
    with open(run / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == len(result.history["loss"])

    report = evaluate(run, two_class)
    assert report["n"] == 32 and 0.0 <= report["accuracy"] <= 1.0
    for png in ("confusion_matrix.png", "roc_curve.png"):
        assert (run / "evaluation" / png).stat().st_size > 0
    preds, skipped = predict(run, [os.path.join(two_class, "cats")])
    assert len(preds) == 16 and not skipped
    assert all(p["label"] in ("cats", "dogs") and 0.5 <= p["probability"] <= 1.0 for p in preds)

    moved = tmp_path / "elsewhere" / "copied-run"
    shutil.copytree(run, moved)
    shutil.rmtree(run)
    again, _ = predict(moved, [os.path.join(two_class, "cats")])
    assert [p["probability"] for p in again] == pytest.approx([p["probability"] for p in preds], abs=1e-6)
    assert evaluate(moved, two_class)["accuracy"] == report["accuracy"]


def test_training_learns_an_easy_task(two_class, tmp_path):
    result = train(two_class, tmp_path / "run", TrainConfig(image_size=32, epochs=8, batch_size=8,
                                                             learning_rate=3e-3), verbose=0)  # fmt: skip
    assert max(result.history["val_accuracy"]) >= 0.85
    assert evaluate(tmp_path / "run", two_class)["accuracy"] >= 0.85


def test_three_classes_give_a_softmax_run(tmp_path):
    data = make_folder(str(tmp_path / "data"), ("cats", "dogs", "eels"), per_class=10)
    train(data, tmp_path / "run", TrainConfig(**FAST), verbose=0)
    run = load_run(tmp_path / "run")
    assert run.class_names == ["cats", "dogs", "eels"] and run.num_outputs == 3
    report = evaluate(tmp_path / "run", data)
    assert np.array(report["confusion_matrix"]).shape == (3, 3)
    assert report["averaging"] == "macro" and report["roc_auc"] is not None
    preds, _ = predict(tmp_path / "run", [data])
    assert len(preds) == 30
    assert all(sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5) for p in preds)


def test_split_layout_trains_on_train_and_validates_on_val(tmp_path):
    data = make_split_folder(str(tmp_path / "data"))
    train(data, tmp_path / "run", TrainConfig(**FAST), verbose=0)
    files = json.loads((tmp_path / "run" / "files.json").read_text())
    assert len(files["train"]) == 40 and len(files["val"]) == 12
    assert all(p.startswith("val" + os.sep) for p, _ in files["val"])
    assert evaluate(tmp_path / "run", data)["n"] == 12  # evaluate uses the val/ part


def test_same_seed_same_run(two_class, tmp_path):
    config = TrainConfig(augment=True, class_weight="balanced", **FAST)
    a = train(two_class, tmp_path / "a", config, verbose=0)
    b = train(two_class, tmp_path / "b", config, verbose=0)
    assert a.history == b.history
    wa, wb = load_run(tmp_path / "a").model.get_weights(), load_run(tmp_path / "b").model.get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb))


def test_a_folder_simplecnn_did_not_make_is_refused_even_with_overwrite(two_class, tmp_path):
    # Before issue 16, --overwrite deleted such a folder with whatever it held.
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="exists and is not empty"):
            train(two_class, tmp_path / "run", TrainConfig(**FAST), overwrite=overwrite, verbose=0)
        assert (tmp_path / "run" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["keep.txt"]
    train(two_class, tmp_path / "run2", TrainConfig(**FAST), verbose=0)
    train(two_class, tmp_path / "run2", TrainConfig(**FAST), overwrite=True, verbose=0)  # its own run


def test_bad_requests_fail_before_training(two_class, tmp_path):
    with pytest.raises(DataError, match="larger than the 26 training images"):
        train(two_class, tmp_path / "r", TrainConfig(image_size=32, batch_size=64), verbose=0)
    with pytest.raises(ValueError, match="Unknown style 'lstm'"):
        train(two_class, tmp_path / "r", TrainConfig(style="lstm"), verbose=0)
    assert not (tmp_path / "r").exists()
    with pytest.raises(RunError, match="not a run directory"):
        load_run(tmp_path)


def test_evaluate_refuses_classes_the_model_does_not_know(two_class, tmp_path):
    train(two_class, tmp_path / "run", TrainConfig(**FAST), verbose=0)
    data = make_folder(str(tmp_path / "more"), ("cats", "dogs", "eels"), per_class=2)
    with pytest.raises(DataError, match=r"\['eels'\] are not among the classes"):
        evaluate(tmp_path / "run", data)


@pytest.mark.parametrize("binary", [True, False])
def test_metrics_match_scikit_learn(binary):
    rng = np.random.default_rng(0)
    if binary:
        y = rng.integers(0, 2, 50)
        probs = np.clip(y * 0.6 + rng.uniform(0, 0.5, 50), 0, 1).reshape(-1, 1)
        pred = (probs[:, 0] >= 0.5).astype(int)
        m = classification_metrics(y, probs, ["a", "b"])
        assert m["precision"] == skm.precision_score(y, pred)
        assert m["recall"] == skm.recall_score(y, pred)
        assert m["f1"] == skm.f1_score(y, pred)
        assert m["roc_auc"] == skm.roc_auc_score(y, probs[:, 0])
    else:
        y = rng.integers(0, 3, 60)
        probs = rng.dirichlet([1, 1, 1], 60)
        probs[np.arange(60), y] += 0.5
        probs /= probs.sum(1, keepdims=True)
        pred = probs.argmax(1)
        m = classification_metrics(y, probs, ["a", "b", "c"])
        assert m["f1"] == skm.f1_score(y, pred, average="macro")
        assert m["roc_auc"] == skm.roc_auc_score(y, probs, multi_class="ovr")
    assert m["accuracy"] == skm.accuracy_score(y, pred)
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()


def test_lfw_subset_demo_data_trains(tmp_path):
    from simplecnn.demo import write_lfw_folders

    counts = write_lfw_folders(str(tmp_path / "lfw"))
    assert counts["train"] == {"background": 60, "face": 60}
    assert counts["test"] == {"background": 20, "face": 20}
    keras.utils.set_random_seed(0)
    train(tmp_path / "lfw", tmp_path / "run",
          TrainConfig(image_size=32, epochs=6, batch_size=16, learning_rate=3e-3), verbose=0)  # fmt: skip
    report = evaluate(tmp_path / "run", tmp_path / "lfw" / "test")
    assert report["n"] == 40 and report["accuracy"] >= 0.75
