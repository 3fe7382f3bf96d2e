"""The ONNX runtime answers as Keras does (within 1e-4), for binary and multi-class runs of every
style, in predict, evaluate and serve, and without importing Keras or a backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from imagegen import make_folder
from simplecnn.cli import main
from simplecnn.config import TrainConfig
from simplecnn.inference import evaluate, predict
from simplecnn.runtime import open_predictor, resolve_runtime
from simplecnn.serve import create_app
from simplecnn.training import train

STYLES = ("sequential", "functional", "subclassing")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A binary and a three-class run of each style, each exported to ONNX by train."""
    root = tmp_path_factory.mktemp("runtime")
    data = {2: make_folder(str(root / "two"), per_class=10),
            3: make_folder(str(root / "three"), ("cats", "dogs", "eels"), per_class=8)}  # fmt: skip
    out = {}
    for classes, folder in data.items():
        for style in STYLES:
            run = str(root / f"{style}{classes}")
            result = train(folder, run, TrainConfig(style=style, image_size=32, epochs=1, batch_size=8),
                           verbose=0, export=["onnx"])  # fmt: skip
            assert result.exports["onnx"]["passed"]
            out[(style, classes)] = (folder, run)
    return out


CASES = [(s, c) for c in (2, 3) for s in STYLES]


@pytest.mark.parametrize("style, classes", CASES, ids=[f"{s}-{c}" for s, c in CASES])
def test_onnx_predict_and_evaluate_match_keras(runs, style, classes, tmp_path):
    data, run = runs[(style, classes)]
    assert resolve_runtime(run) == "onnx"  # auto picks the checked export
    by = {}
    for runtime in ("keras", "onnx"):
        rows, _ = predict(run, [data], runtime=runtime)
        by[runtime] = rows
    assert [r["path"] for r in by["keras"]] == [r["path"] for r in by["onnx"]]
    assert [r["label"] for r in by["keras"]] == [r["label"] for r in by["onnx"]]
    diff = max(abs(a["probabilities"][k] - b["probabilities"][k])
               for a, b in zip(by["keras"], by["onnx"]) for k in a["probabilities"])  # fmt: skip
    assert diff <= 1e-4
    reports = {rt: evaluate(run, data, out_dir=str(tmp_path / rt), runtime=rt) for rt in ("keras", "onnx")}
    assert reports["onnx"]["runtime"] == "onnx" and reports["keras"]["runtime"] == "keras"
    assert reports["onnx"]["confusion_matrix"] == reports["keras"]["confusion_matrix"]
    assert abs(reports["onnx"]["accuracy"] - reports["keras"]["accuracy"]) == 0


@pytest.mark.parametrize("classes", [2, 3])
def test_onnx_serve_matches_keras_serve(runs, classes):
    data, run = runs[("functional", classes)]
    path = os.path.join(data, "cats", "img_001.png")
    answers = {}
    for runtime in ("keras", "onnx"):
        with TestClient(create_app(run, runtime=runtime)) as client:
            with open(path, "rb") as f:
                response = client.post("/predict", files={"file": ("x.png", f, "image/png")})
            assert response.status_code == 200 and response.headers["X-Simplecnn-Runtime"] == runtime
            assert client.get("/health").json()["runtime"] == runtime
            answers[runtime] = response.json()
    assert answers["keras"]["label"] == answers["onnx"]["label"]
    for name, p in answers["keras"]["probabilities"].items():
        assert abs(answers["onnx"]["probabilities"][name] - p) <= 1e-4


def test_the_onnx_runtime_imports_no_keras_and_says_it_answered(runs, capsys):
    data, run = runs[("subclassing", 2)]
    code = (
        "import sys\nfrom simplecnn.cli import main\n"
        f"code = main(['predict', {run!r}, {os.path.join(data, 'dogs')!r}])\n"
        "heavy = [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules]\n"
        "assert code == 0 and not heavy, (code, heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "runtime: onnx (" in done.stderr and len(done.stdout.splitlines()) == 11


def test_int8_is_used_only_when_asked_and_reports_its_accuracy_change(runs, capsys):
    data, run = runs[("functional", 2)]
    assert main(["predict", run, data, "--runtime", "onnx-int8"]) == 2
    assert "no checked onnx-int8 export" in capsys.readouterr().err
    assert main(["export", run, "--format", "onnx", "--quantize", "int8"]) == 0
    capsys.readouterr()
    assert resolve_runtime(run) == "onnx"  # auto never picks int8
    assert main(["predict", run, data, "--runtime", "onnx-int8"]) == 0
    err = capsys.readouterr().err
    assert "runtime: onnx-int8" in err and "int8 changed accuracy by" in err
    assert open_predictor(run, "onnx-int8").name == "onnx-int8"


def test_a_run_without_an_export_answers_with_keras_and_onnx_says_how_to_make_one(tmp_path, capsys):
    data = make_folder(str(tmp_path / "d"), per_class=6)
    train(data, tmp_path / "run", TrainConfig(image_size=32, epochs=1, batch_size=4), verbose=0)
    assert resolve_runtime(tmp_path / "run") == "keras"
    assert main(["predict", str(tmp_path / "run"), data, "--runtime", "onnx"]) == 2
    assert "simplecnn export" in capsys.readouterr().err
    report = json.loads(json.dumps(evaluate(tmp_path / "run", data)))
    assert report["runtime"] == "keras"
