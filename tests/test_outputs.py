"""simplecnn.outputs: the one rule for every path simplecnn writes, and the commands that
replace their own outputs (and only those)."""

from __future__ import annotations

import errno
import json
import os
import warnings

import pytest
from conftest import train_small_run
from PIL import Image

from simplecnn.cli import main
from simplecnn.errors import DiskFullError, LockedError, OutputError
from simplecnn.files import atomic_write, is_own_png, write_json
from simplecnn.locks import RunLock
from simplecnn.outputs import MARKER, check_place, claim_folder, folder_kind, foreign_entries


def test_claim_folder_creates_marks_and_refuses_what_it_did_not_make(tmp_path):
    new = tmp_path / "new"
    assert claim_folder(new, "run", "--out", replace=False) is True
    assert folder_kind(str(new)) == "run" and (new / MARKER).exists()
    (new / "model.keras").write_bytes(b"ours")
    claim_folder(new, "run", "--out", replace=True)  # only our files: emptied
    assert sorted(p.name for p in new.iterdir()) == [MARKER]
    (new / "notes.txt").write_text("theirs")
    with pytest.raises(OutputError, match="notes.txt"):
        claim_folder(new, "run", "--out", replace=True)
    assert (new / "notes.txt").read_text() == "theirs"
    with pytest.raises(OutputError, match="is a simplecnn run folder, not an export"):
        claim_folder(new, "export", "--out", replace=False)
    user = tmp_path / "user"
    user.mkdir()
    (user / "a.txt").write_text("x")
    with pytest.raises(OutputError, match="simplecnn did not make it"):
        claim_folder(user, "run", "--out", replace=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        claim_folder(tmp_path / "file", "run", "--out", replace=False)


def test_a_run_made_before_markers_and_its_sub_folders_are_recognised(tmp_path):
    run = tmp_path / "old"
    (run / "evaluation").mkdir(parents=True)
    (run / "export" / "onnx").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"simplecnn_run": 1}))
    assert folder_kind(str(run)) == "run"
    assert folder_kind(str(run / "evaluation")) == "evaluation"
    assert folder_kind(str(run / "export" / "onnx")) == "export"
    assert folder_kind(str(run / "export")) == "exports"
    (run / "logs").mkdir()
    (run / "logs" / "events.out.tfevents.1").write_bytes(b"")
    assert foreign_entries(str(run), "run") == []
    (run / "export" / "onnx" / "mine.txt").write_text("x")
    assert foreign_entries(str(run), "run") == [str(run / "export" / "onnx" / "mine.txt")]


@pytest.mark.parametrize(
    "out, kwargs, fragment",
    [("data", {"data": ["data"]}, "is inside the data folder"),
     ("data/cats/x", {"data": ["data"]}, "is inside the data folder"),
     (".", {"data": ["data"]}, "holds the data folder"),
     ("run", {"runs": ["run"]}, "is the run folder"),
     (".", {"runs": ["run"]}, "is the run folder"),
     ("run/evaluation", {"runs": ["run"], "inside_run": "export"}, "not in its export/"),
     ("run/export", {"runs": ["run"], "inside_run": "export"}, "not in its export/")],
)  # fmt: skip
def test_check_place_refuses_the_data_the_run_and_their_parents(tmp_path, monkeypatch, out, kwargs, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "cats").mkdir(parents=True)
    (tmp_path / "run").mkdir()
    with pytest.raises(OutputError, match=fragment):
        check_place(out, "--out", **kwargs)
    check_place("elsewhere", "--out", **kwargs)
    check_place("run/export/onnx", "--out", runs=["run"], inside_run="export")


def test_atomic_write_leaves_the_old_file_and_no_temporary_one_on_failure(tmp_path):
    path = tmp_path / "f.json"
    write_json(str(path), {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_write(path) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("killed")
    assert json.loads(path.read_text()) == {"v": 1} and os.listdir(tmp_path) == ["f.json"]
    with pytest.raises(DiskFullError, match=r"f.json: no space left on device \(.* free on "):
        with atomic_write(path) as tmp:
            open(tmp, "w").write("half")
            raise OSError(errno.ENOSPC, "No space left on device", tmp)
    assert os.listdir(tmp_path) == ["f.json"]


def test_run_lock_is_exclusive_and_says_who_holds_it(tmp_path):
    with RunLock(tmp_path, "train"):
        with pytest.raises(LockedError, match=rf"in use by `simplecnn train` \(pid {os.getpid()} on"):
            RunLock(tmp_path, "evaluate").acquire()
    with RunLock(tmp_path, "evaluate"):  # released: taken again
        pass


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_small_run(tmp_path_factory)


def test_each_command_replaces_its_own_output(run, tmp_path, capsys):
    data, run_dir = run
    for _ in range(2):  # the second time replaces what the first wrote
        assert main(["evaluate", run_dir, data]) == 0
        assert main(["explain", run_dir, os.path.join(data, "cats", "img_000.jpg")]) == 0
        assert main(["export", run_dir, "--format", "keras"]) == 0
        assert main(["predict", run_dir, data, "--output", str(tmp_path / "p.csv")]) == 0
        assert main(["predict", run_dir, data, "--format", "json", "--output", str(tmp_path / "p.json")]) == 0
        assert main(["compare", "--plot-dir", str(tmp_path / "plots"), "--input-shape", "32,32,3"]) == 0
    assert is_own_png(str(tmp_path / "plots" / "functional.png"))
    assert not [p for p in os.listdir(run_dir) if p.startswith((".tmp-", ".old-"))]
    Image.new("RGB", (4, 4)).save(tmp_path / "plots" / "mine.png")  # a user's PNG beside them
    assert main(["compare", "--plot-dir", str(tmp_path / "plots"), "--input-shape", "32,32,3"]) == 0
    assert not is_own_png(str(tmp_path / "plots" / "mine.png"))


def test_smaller_faults_of_issue_16(run, tmp_path, capsys):
    from imagegen import make_folder

    data, run_dir = run
    # A class with one image: training goes on and says validation has none of it.
    lonely = make_folder(str(tmp_path / "lonely"), per_class=8)
    for name in sorted(os.listdir(os.path.join(lonely, "dogs")))[1:]:
        os.remove(os.path.join(lonely, "dogs", name))
    assert main(["train", lonely, "--out", str(tmp_path / "r"), "--image-size", "32", "--epochs", "1",
                 "--batch-size", "4", "--quiet-progress"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "warning: validation holds no image of class(es) ['dogs']" in err
    assert json.loads((tmp_path / "r" / "run.json").read_text())["warnings"]
    # A file that decodes badly: named once, its reason without its path again (TTA reads it twice).
    broken = tmp_path / "broken.png"
    good = open(os.path.join(data, "cats", "img_001.png"), "rb").read()
    idat = good.index(b"IDAT") + 8
    broken.write_bytes(good[:idat] + b"\x00garbage" * 4 + good[idat + 32 :])
    assert main(["predict", run_dir, str(broken), os.path.join(data, "cats"), "--tta"]) == 0
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if "broken.png" in l]
    assert len(lines) == 1 and lines[0].count("broken.png") == 1, err
    # Evaluating a folder of one class: no warning from matplotlib or anywhere else.
    one = make_folder(str(tmp_path / "one"), classes=("cats",), per_class=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["evaluate", run_dir, one, "--out", str(tmp_path / "ev")]) == 0
