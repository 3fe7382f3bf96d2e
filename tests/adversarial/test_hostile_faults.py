"""Faults: concurrent writers, killed processes, a bad file mid-report, a full disk, serve's
address. Each ends in one line and exit 2, or a complete result; nothing half-written."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from imagegen import make_folder
from world import one_line_exit_2, snapshot

from simplecnn.cli import main
from simplecnn.locks import LOCK_FILE
from simplecnn.models import leaf_layers
from simplecnn.runs import latest_backup, load_run

EXE = os.path.join(os.path.dirname(sys.executable), "simplecnn")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _train(data, out, *extra):
    return [EXE, "train", str(data), "--out", str(out), "--image-size", "32", "--batch-size", "8",
            "--quiet-progress", *extra]  # fmt: skip


def _wait_for_backup(out, proc, epochs=1, timeout=300):
    deadline = time.time() + timeout
    while latest_backup(str(out)) is None or latest_backup(str(out)).epochs_done < epochs:
        assert time.time() < deadline and proc.poll() is None, "training ended first"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_folder(str(tmp_path_factory.mktemp("faults") / "photos"), per_class=40)


def test_commands_writing_into_a_run_being_trained_say_who_holds_it(data, tmp_path, capsys):
    out = tmp_path / "run"
    proc = subprocess.Popen(_train(data, out, "--epochs", "200"), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_for_backup(out, proc)
        before = snapshot(out)
        for argv in (["train", data, "--out", str(out), "--image-size", "32", "--batch-size", "8"],
                     ["evaluate", str(out), data], ["export", str(out), "--format", "keras"]):  # fmt: skip
            code = main(argv)
            err = capsys.readouterr().err
            one_line_exit_2(code, err)
            assert "in use by `simplecnn train` (pid" in err and str(proc.pid) in err, err
        assert not (out / "evaluation").exists() and not (out / "export").exists()
        assert set(before) <= set(snapshot(out)) | {p for p in before if "backup" in p}
    finally:
        proc.kill()
        proc.wait()
    # The lock died with its process: the file is left, nobody holds it, the next command runs.
    assert (out / LOCK_FILE).exists()
    assert main(["evaluate", str(out), data]) == 0
    assert (out / "evaluation" / "report.json").exists()


def test_kill_9_in_bfloat16_training_resumes_to_a_float32_model_that_exports(data, tmp_path):
    """Before issue 16 the resumed run kept a mixed_bfloat16 model.keras, and onnx/litert
    exports of it failed."""
    out = tmp_path / "run"
    cmd = _train(data, out, "--epochs", "3", "--precision", "mixed_bfloat16")
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_backup(out, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    assert again.returncode == 0 and "resuming" in again.stdout, again.stderr[-2000:]
    meta = json.loads((out / "run.json").read_text())
    assert meta["precision"] == "mixed_bfloat16" and meta["status"] == "done"
    model = load_run(out).model
    assert {l.dtype_policy.name for l in leaf_layers(model)} == {"float32"}
    assert all(w.dtype == "float32" for w in model.weights)
    for fmt in ("onnx", "litert"):
        done = subprocess.run([EXE, "export", str(out), "--format", fmt], env=ENV, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads((out / "export" / fmt / "check.json").read_text())["passed"]


def test_a_file_that_decodes_badly_mid_evaluate_is_recorded_and_the_report_is_whole(world, tmp_path):
    import shutil

    data = tmp_path / "photos"
    shutil.copytree(world["DATA"], data)
    out = tmp_path / "ev"
    assert main(["evaluate", world["RUN"], str(data), "--out", str(out)]) == 0
    first = json.loads((out / "report.json").read_text())
    # A PNG whose header and end are intact (it passes the scan) but whose pixels are garbage.
    good = (data / "cats" / "img_001.png").read_bytes()
    idat = good.index(b"IDAT") + 8
    (data / "cats" / "img_001.png").write_bytes(good[:idat] + b"\x00garbage" * 4 + good[idat + 32 :])
    assert main(["evaluate", world["RUN"], str(data), "--out", str(out), "--threshold", "0.99"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["threshold"] == 0.99 and first["threshold"] == 0.5
    assert any(s["path"].endswith("img_001.png") for s in report["skipped"])
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == report["files"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".old-"))]


@pytest.mark.parametrize("case", ["port in use", "bad host", "port 99999"])
def test_serve_address_errors_are_one_line_before_anything_says_serving(world, case, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        argv = {"port in use": ["--port", str(port)], "bad host": ["--host", "no.such.host.invalid"],
                "port 99999": ["--port", "99999"]}[case]  # fmt: skip
        try:
            code = main(["serve", world["RUN"], *argv])
        except SystemExit as exc:
            code = exc.code
    captured = capsys.readouterr()
    one_line_exit_2(code, captured.err)
    assert "serving" not in captured.err + captured.out
def test_full_disk_is_one_line_naming_the_path_and_space_and_leaves_no_temp_files(tmp_path, small_disk):
    """A real full disk (a 1 MiB filesystem): one line with the path and the free space, exit
    2, no half-written file left; --debug shows the traceback instead."""
    data = make_folder(str(tmp_path / "data"), per_class=8)
    for debug in ([], ["--debug"]):
        out = small_disk / f"run{len(debug)}"
        cmd = [EXE, *debug, "train", data, "--out", str(out), "--image-size", "32", "--batch-size",
               "4", "--epochs", "1", "--quiet-progress"]  # fmt: skip
        done = small_disk.run(cmd)
        err = done.stderr.strip()
        if debug:
            assert done.returncode != 0 and "Traceback" in err and "DiskFullError" in err
            continue
        assert done.returncode == 2, err[-2000:]
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert str(out) in err and ("no space left on device" in err or "file too large" in err), err
        assert " free on " in err or "free space unknown" in err
        leftovers = [p for p in out.rglob("*") if ".tmp" in p.name]
        assert not leftovers, leftovers


