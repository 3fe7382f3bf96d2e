"""Bad input and faults: messy folders, kill -9 and resume, NaN losses, hostile model files,
and command-line mistakes. Each ends in training going on (skips recorded) or one clear line."""

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib

import keras
import numpy as np
import pytest
from imagegen import make_folder
from PIL import Image

from simplecnn.cli import main
from simplecnn.config import ModelConfig, TrainConfig
from simplecnn.data import scan_folder
from simplecnn.errors import RunError, TrainingError
from simplecnn.models import build_model
from simplecnn.runs import latest_backup, load_run, save_backup, save_model_atomic
from simplecnn.training import predict, train

FAST = dict(image_size=32, epochs=2, batch_size=8)
EXE = os.path.join(os.path.dirname(sys.executable), "simplecnn")


def _bomb_png(path, side=20000):
    """A valid 1-bit PNG of side x side pixels (48 KB on disk, 400 M pixels decoded)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress(b"".join([b"\0" * (1 + side // 8)] * side), 9)
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """Two usable classes full of the things real photo folders contain."""
    root = tmp_path_factory.mktemp("messy") / "photos"
    make_folder(str(root), ("cats", "dogs"), per_class=12)
    cats, dogs = root / "cats", root / "dogs"
    (cats / "zero.jpg").write_bytes(b"")
    (cats / "letter.jpg").write_text("Dear user, this is text")
    (cats / "doc.jpg").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
    (cats / "page.jpg").write_text("<!DOCTYPE html><html><body>404</body></html>")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(buf, "JPEG")
    (cats / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (cats / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (cats / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (cats / "._hidden.jpg").write_bytes(b"\0")
    Image.new("CMYK", (30, 30), (0, 200, 200, 0)).save(cats / "cmyk.jpg")
    Image.fromarray(np.full((20, 20), 40000, np.uint16)).save(cats / "deep16.png")
    Image.new("L", (20, 20), 90).save(cats / "gray.png")
    Image.new("RGBA", (20, 20), (200, 0, 0, 128)).save(cats / "alpha.png")
    Image.new("RGB", (20, 20), (200, 0, 0)).convert("P").save(cats / "palette.png")
    frames = [Image.new("RGB", (20, 20), c) for c in ((200, 0, 0), (0, 0, 200))]
    frames[0].save(cats / "anim.gif", save_all=True, append_images=frames[1:])
    Image.new("RGB", (1, 1), (200, 0, 0)).save(cats / "one pixel ü.png")
    _bomb_png(cats / "bomb.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.new("RGB", (40, 20), (200, 0, 0)).save(cats / "rotated.jpg", exif=exif)
    (dogs / "nested" / "deeper").mkdir(parents=True)
    Image.new("RGB", (20, 20), (0, 0, 200)).save(dogs / "nested" / "deeper" / "Hund Straße.jpg")
    (dogs / "loop").symlink_to(dogs, target_is_directory=True)
    (dogs / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    (root / "README.txt").write_text("photos of pets")
    return root


EXPECTED_SKIPS = {
    "zero.jpg": "empty file", "letter.jpg": "not a readable image", "doc.jpg": "not a readable image",
    "page.jpg": "not a readable image", "cut.jpg": "truncated", ".DS_Store": "hidden",
    "Thumbs.db": "system", "._hidden.jpg": "hidden", "bomb.png": "too large",
    "loop": "loop", "dangling.jpg": "broken symbolic link", "README.txt": "outside any class",
}  # fmt: skip


def test_messy_folder_trains_and_every_skip_is_named(messy, tmp_path, capsys):
    assert main(["train", str(messy), "--out", str(tmp_path / "run"), "--image-size", "32",
                 "--epochs", "1", "--batch-size", "8", "--quiet-progress"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert f"skipped {len(EXPECTED_SKIPS)} file(s)" in err
    files = json.loads((tmp_path / "run" / "files.json").read_text())
    reasons = {os.path.basename(s["path"]): s["reason"] for s in files["skipped"]}
    for name, fragment in EXPECTED_SKIPS.items():
        assert fragment in reasons[name], (name, reasons.get(name))
    used = {os.path.basename(p) for p, _ in files["train"] + files["val"]}
    for name in ("cmyk.jpg", "deep16.png", "gray.png", "alpha.png", "palette.png", "anim.gif",
                 "one pixel ü.png", "rotated.jpg", "Hund Straße.jpg"):  # fmt: skip
        assert name in used
    assert len(files["train"]) + len(files["val"]) == 12 + 8 + 12 + 1


def test_only_one_class_or_an_empty_class_stops_before_training(tmp_path, capsys):
    make_folder(str(tmp_path / "one"), ("cats",), per_class=4)
    assert main(["train", str(tmp_path / "one"), "--out", str(tmp_path / "r1")]) == 2
    assert "at least two" in capsys.readouterr().err
    make_folder(str(tmp_path / "two"), ("cats", "dogs"), per_class=4)
    (tmp_path / "two" / "eels").mkdir()
    assert main(["train", str(tmp_path / "two"), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err.strip()
    assert "['eels'] hold no readable image" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def _train_cmd(data, out, epochs=4):
    return [EXE, "train", str(data), "--out", str(out), "--image-size", "48", "--epochs",
            str(epochs), "--batch-size", "8", "--seed", "3", "--quiet-progress"]  # fmt: skip


def test_kill_9_mid_epoch_then_same_command_resumes(tmp_path):
    """A real process, a real SIGKILL in epoch 3, the same command again: it resumes."""
    data = make_folder(str(tmp_path / "data"), per_class=48)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    whole = subprocess.run(_train_cmd(data, tmp_path / "whole"), capture_output=True, text=True, env=env)
    assert whole.returncode == 0, whole.stderr[-2000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(data, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 300
    while latest_backup(str(out)) is None or latest_backup(str(out)).epochs_done < 2:
        assert time.time() < deadline and proc.poll() is None, "training ended before the kill"
        time.sleep(0.05)
    time.sleep(0.5)  # into epoch 3
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = latest_backup(str(out)).epochs_done
    assert done in (2, 3)
    assert json.loads((out / "run.json").read_text())["status"] == "training"
    load_run(out)  # the best model so far is complete and loads

    again = subprocess.run(_train_cmd(data, out), capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resuming {out} after epoch {done}" in again.stdout
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "done" and meta["resumed_from"] == done and meta["epochs_run"] == 4
    assert not (out / "backup").exists()
    a = json.loads((tmp_path / "whole" / "run.json").read_text())["best"]
    b = meta["best"]
    # Same seed, resumed with optimizer, schedule, shuffling and dropout state: the same run.
    assert abs(a["val_loss"] - b["val_loss"]) <= 1e-4, (a, b)
    wa = load_run(tmp_path / "whole").model.get_weights()
    wb = load_run(out).model.get_weights()
    assert max(float(np.abs(x - y).max()) for x, y in zip(wa, wb)) <= 1e-4


def test_a_finished_run_is_refused_and_resume_needs_an_unfinished_one(tmp_path, capsys):
    data = make_folder(str(tmp_path / "data"), per_class=8)
    assert main(["train", data, "--out", str(tmp_path / "run"), "--image-size", "32",
                 "--epochs", "1", "--batch-size", "8", "--quiet-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["train", data, "--out", str(tmp_path / "run"), "--batch-size", "8"]) == 2
    assert "already exists (a finished run)" in capsys.readouterr().err
    assert main(["train", data, "--out", str(tmp_path / "new"), "--batch-size", "8", "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_a_kill_during_a_save_leaves_the_previous_file(tmp_path, monkeypatch, small_config):
    model = build_model("functional", small_config)
    path = str(tmp_path / "model.keras")
    save_model_atomic(model, path)
    before = open(path, "rb").read()

    def dying_save(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"PK\x03\x04 half a model")
        raise KeyboardInterrupt  # the process dies in the middle of writing

    monkeypatch.setattr(keras.Model, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_model_atomic(model, path)
    assert open(path, "rb").read() == before
    monkeypatch.undo()
    save_backup(str(tmp_path), model, 1, {"best": 1.0})
    monkeypatch.setattr(keras.Model, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_backup(str(tmp_path), model, 2, {"best": 0.5})
    backup = latest_backup(str(tmp_path))
    assert backup.epochs_done == 1 and backup.state["best"] == 1.0


class _PoisonAt(keras.callbacks.Callback):
    """Set a weight to NaN when epoch ``epoch`` (0-based) begins."""

    def __init__(self, epoch):
        super().__init__()
        self.at = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            kernel = self.model.get_layer("predictions").kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def test_nan_loss_stops_and_keeps_the_last_good_model(tmp_path):
    data = make_folder(str(tmp_path / "data"), per_class=8)
    result = train(data, tmp_path / "run", TrainConfig(image_size=32, epochs=5, batch_size=8),
                   verbose=0, callbacks=[_PoisonAt(2)])  # fmt: skip
    assert result.stopped == "nan" and "at epoch 3" in result.message
    assert "keeps the model of epoch" in result.message
    rows, _ = predict(tmp_path / "run", [data])
    assert rows and all(np.isfinite(r["probability"]) for r in rows)
    with pytest.raises(TrainingError, match="before any epoch finished"):
        train(data, tmp_path / "run0", TrainConfig(image_size=32, epochs=2, batch_size=8),
              verbose=0, callbacks=[_PoisonAt(0)])  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    data = make_folder(str(root / "data"), per_class=8)
    train(data, root / "run", TrainConfig(**FAST), verbose=0)
    return root / "run", data


def _corrupt_run(finished_run, tmp_path, write):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run[0], run)
    write(run / "model.keras")
    return run


@pytest.mark.parametrize(
    "write, fragment",
    [
        (lambda p: p.write_text("just some text"), "not a Keras model file"),
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "corrupt or incomplete"),
        (lambda p: build_model("functional", ModelConfig(input_shape=(64, 64, 3))).save(p),
         "takes images of shape (64, 64, 3) but the run was trained at (32, 32, 3)"),
        (lambda p: build_model("functional", ModelConfig(input_shape=(32, 32, 3), num_classes=3)).save(p),
         "has 3 outputs but the run has 2 classes"),
    ],
)  # fmt: skip
def test_foreign_or_broken_model_files_fail_clearly(finished_run, tmp_path, write, fragment, capsys):
    run = _corrupt_run(finished_run, tmp_path, write)
    with pytest.raises(RunError) as info:
        load_run(run)
    assert fragment in str(info.value)
    assert main(["predict", str(run), finished_run[1]]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


def test_lambda_layer_model_is_refused_by_safe_mode(finished_run, tmp_path):
    def with_lambda(path):
        inputs = keras.Input((32, 32, 3))
        x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
        x = keras.layers.GlobalMaxPooling2D()(x)
        keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x)).save(path)

    run = _corrupt_run(finished_run, tmp_path, with_lambda)
    with pytest.raises(RunError, match="refused: the model contains a Lambda layer"):
        load_run(run)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "DATA", "--style", "lstm"], "invalid choice: 'lstm'"),
        (["train", "DATA", "--epochs", "0"], "expected a positive integer, got '0'"),
        (["train", "DATA", "--image-size", "-5"], "expected a positive integer, got '-5'"),
        (["train", "DATA", "--batch-size", "500", "--out", "OUT"], "larger than the 16 training images"),
        (["train", "/nonexistent/photos"], "/nonexistent/photos: no such folder"),
        (["train", "DATA", "--out", "FILE/run"], "Not a directory"),
        (["evaluate", "OUT", "DATA"], "no such run directory"),
    ],
)
def test_command_line_mistakes_are_one_line_and_exit_2(argv, fragment, tmp_path, capsys):
    data = make_folder(str(tmp_path / "data"), per_class=10)
    (tmp_path / "file").write_text("x")
    argv = [a.replace("DATA", data).replace("OUT", str(tmp_path / "out"))
            .replace("FILE", str(tmp_path / "file")) for a in argv]  # fmt: skip
    with pytest.raises(SystemExit) if fragment.startswith(("invalid", "expected")) else _no_raise() as info:
        code = main(argv)
    code = info.value.code if info else code
    err = capsys.readouterr().err.strip()
    assert code == 2 and fragment in err and len(err.splitlines()) == 1, err
    assert "Traceback" not in err


class _no_raise:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_scan_reports_the_20000_pixel_image_without_decoding_it(tmp_path):
    make_folder(str(tmp_path), per_class=2)
    _bomb_png(tmp_path / "cats" / "huge.png")
    start = time.perf_counter()
    d = scan_folder(tmp_path, 0)
    assert time.perf_counter() - start < 5
    assert [s.reason for s in d.skipped if s.path.endswith("huge.png")][0].startswith("image too large")
