"""Exports: each format takes uint8 pixels, gives class probabilities, and matches Keras."""

import json
import os

import numpy as np
import pytest
from conftest import train_small_run

from simplecnn.cli import main
from simplecnn.data import load_image
from simplecnn.export import FORMATS, export_run, load_artifact
from simplecnn.training import predict


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_small_run(tmp_path_factory, "functional", per_class=16, epochs=2)


@pytest.fixture(scope="module")
def subclassing_run(tmp_path_factory):
    return train_small_run(tmp_path_factory, "subclassing", classes=("cats", "dogs", "eels"), per_class=10)


def _files(data):
    return [os.path.join(data, c, f"img_{i:03d}.{'jpg' if i % 2 == 0 else 'png'}")
            for c in ("cats", "dogs") for i in (0, 1, 2)]  # fmt: skip


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_matches_keras_and_carries_the_preprocessing(run, fmt, tmp_path):
    data, run_dir = run
    out = tmp_path / fmt
    result = export_run(run_dir, fmt, out_dir=out)
    check = result.check
    assert check["passed"] and check["max_abs_difference"] <= 1e-4, check
    assert check["images"].endswith("val images of the run") and check["label_agreement"] == 1.0
    assert check["export_accuracy"] == check["keras_accuracy"]
    assert json.loads((out / "check.json").read_text()) == check
    assert (out / "labels.txt").read_text().splitlines() == ["cats", "dogs"]
    config = json.loads((out / "config.json").read_text())
    assert config["input"] == {"shape": [None, 32, 32, 3], "dtype": "uint8", "pixels": config["input"]["pixels"]}
    assert not any(name.startswith(".tmp") for name in os.listdir(tmp_path))

    # Raw uint8 pixels in, the same probabilities as `simplecnn predict` out.
    files = _files(data)
    pixels = np.stack([load_image(f, (32, 32)) for f in files])
    got = load_artifact(fmt, result.path)(pixels)
    rows, _ = predict(run_dir, files)
    expected = np.array([[r["probabilities"]["cats"], r["probabilities"]["dogs"]] for r in rows])
    assert got.shape == (len(files), 2)
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("fmt", ["litert", "onnx"])
def test_int8_export_reports_its_accuracy_change(run, fmt, tmp_path):
    _, run_dir = run
    float_size = export_run(run_dir, fmt, out_dir=tmp_path / "float").check["artifact_bytes"]
    check = export_run(run_dir, fmt, out_dir=tmp_path / "int8", quantize="int8").check
    assert check["quantize"] == "int8" and check["tolerance"] is None
    assert check["calibration_images"].endswith("train images of the run")
    assert "accuracy_change" in check and -1 <= check["accuracy_change"] <= 1
    assert check["max_abs_difference"] < 0.2  # close to the float model, not equal
    assert check["label_agreement"] >= 0.8
    assert check["artifact_bytes"] < 0.5 * float_size  # int8 weights: about a quarter


def test_keras_export_of_a_subclassed_multiclass_run(subclassing_run, tmp_path):
    _, run_dir = subclassing_run
    result = export_run(run_dir, "keras", out_dir=tmp_path / "k")
    assert result.check["passed"]
    assert (tmp_path / "k" / "labels.txt").read_text().split() == ["cats", "dogs", "eels"]
    probs = load_artifact("keras", result.path)(np.zeros((2, 32, 32, 3), np.uint8))
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_export_command(run, tmp_path, capsys):
    _, run_dir = run
    out = tmp_path / "cli"
    assert main(["export", run_dir, "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "check passed" in printed and "max |export - keras|" in printed
    assert (out / "model.onnx").is_file()
    assert main(["export", run_dir, "--format", "keras", "--quantize", "int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "int8 is available for onnx and litert, not keras" in err
    assert main(["export", str(tmp_path / "missing"), "--format", "keras"]) == 2
    assert "no such run directory" in capsys.readouterr().err
