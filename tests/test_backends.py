"""One run directory, three backends: portable models and a TensorFlow-free path."""

import json
import os
import subprocess
import sys

import pytest
from imagegen import make_folder

from simplecnn.config import TrainConfig
from simplecnn.training import predict, train

PREDICT = (
    "import json, sys, keras\n"
    "from simplecnn.training import predict\n"
    "rows, _ = predict(sys.argv[1], [sys.argv[2]])\n"
    "print(json.dumps({'backend': keras.backend.backend(), 'p': [r['probabilities'] for r in rows]}))\n"
)


@pytest.fixture(scope="module")
def tf_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("portable")
    data = make_folder(str(root / "data"), ("cats", "dogs", "eels"), per_class=8)
    train(data, root / "run", TrainConfig(image_size=32, epochs=2, batch_size=8), verbose=0)
    return root / "run", data


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_run_trained_on_tensorflow_predicts_the_same_on_other_backends(tf_run, backend):
    run, data = tf_run
    here = [r["probabilities"] for r in predict(run, [data])[0]]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", PREDICT, str(run), data], capture_output=True,
                          text=True, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    there = json.loads(done.stdout.strip().splitlines()[-1])
    assert there["backend"] == backend and len(there["p"]) == len(here) == 24
    worst = max(abs(a[k] - b[k]) for a, b in zip(here, there["p"]) for k in a)
    assert worst <= 1e-5, worst


@pytest.mark.parametrize("source", ["jax", "torch"])
def test_runs_trained_on_jax_or_torch_load_on_tensorflow(source, tmp_path):
    data = make_folder(str(tmp_path / "data"), per_class=8)
    code = (
        "import sys\nfrom simplecnn.config import TrainConfig\nfrom simplecnn.training import train\n"
        "train(sys.argv[1], sys.argv[2], TrainConfig(style='subclassing', image_size=32, epochs=1,"
        " batch_size=8), verbose=0)\n" + PREDICT.replace("sys.argv[1], [sys.argv[2]]", "sys.argv[2], [sys.argv[1]]")
    )
    env = {**os.environ, "KERAS_BACKEND": source, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code, data, str(tmp_path / "run")],
                          capture_output=True, text=True, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    there = json.loads(done.stdout.strip().splitlines()[-1])["p"]
    here = [r["probabilities"] for r in predict(tmp_path / "run", [data])[0]]
    assert max(abs(a[k] - b[k]) for a, b in zip(here, there) for k in a) <= 1e-5


def test_jax_path_runs_without_tensorflow(tmp_path):
    """The data pipeline is TensorFlow-free: with tensorflow made unimportable, JAX trains and
    predicts (only the TensorBoard logs are left out)."""
    data = make_folder(str(tmp_path / "data"), per_class=8)
    code = (
        "import sys\nsys.modules['tensorflow'] = None  # any import of it now fails\n"
        "from simplecnn.cli import main\n"
        "code = main(['train', sys.argv[1], '--out', sys.argv[2], '--image-size', '32',"
        " '--epochs', '1', '--batch-size', '8', '--quiet-progress'])\n"
        "code = code or main(['predict', sys.argv[2], sys.argv[1]])\n"
        "assert 'tensorflow' not in {m.split('.')[0] for m, v in sys.modules.items() if v}\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", code, data, str(tmp_path / "run")],
                          capture_output=True, text=True, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count(",cats,") + done.stdout.count(",dogs,") == 16
    assert not (tmp_path / "run" / "logs").exists()
    assert (tmp_path / "run" / "model.keras").exists()
