"""The command line: summary and compare output, exit codes, one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from simplecnn.cli import main

STYLE_NAMES = ("sequential", "functional", "subclassing")


@pytest.mark.multibackend
def test_summary_all_shows_seed_numbers_three_times(capsys):
    assert main(["summary", "--style", "all"]) == 0
    out = capsys.readouterr().out
    assert out.count("Total params: 277,569") >= 3
    assert out.count("Trainable params: 277,185") == 3
    assert out.count("Non-trainable params: 384") == 3
    assert "unbuilt" not in out
    assert out.count("Forward FLOPs: 12.31 GFLOP per image") == 3
    assert out.count("Forward activations:") == 3


def test_summary_with_other_shape_and_classes(capsys):
    assert main(["summary", "--style", "subclassing", "--input-shape", "64,64,1",
                 "--num-classes", "4", "--expand-nested"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "(None, 32, 32, 64)" in out and "(None, 4)" in out and "block1_conv1" in out


@pytest.mark.multibackend
def test_compare_json_all_ok(capsys):
    assert main(["compare", "--json", "--input-shape", "32,32,3"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["style"] for r in rows] == ["sequential", "functional", "subclassing"]
    assert all(r["ok"] and r["max_output_diff"] <= 1e-6 for r in rows)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["summary", "--input-shape", "2,2,3"], "too small"),
        (["compare", "--backends", "nope"], "Unknown backend"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_argument_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["summary", "--style", "recurrent"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["summary", "--input-shape", "256,256"])


def test_console_script_compare_table(tmp_path):
    """The installed `simplecnn` script runs, prints the table and keeps plot_model's PNGs."""
    exe = os.path.join(os.path.dirname(sys.executable), "simplecnn")
    done = subprocess.run(
        [exe, "compare", "--input-shape", "32,32,3", "--plot-dir", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [l for l in done.stdout.splitlines() if l.split(" ")[0] in STYLE_NAMES]
    assert len(rows) == 3 and all(l.rstrip().endswith(" ok") for l in rows)
    assert "FAIL" not in done.stdout
    assert done.stderr == ""  # TensorFlow's start-up chatter is silenced
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "functional.png", "sequential.png", "subclassing.png"
    ]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from imagegen import make_folder

    root = tmp_path_factory.mktemp("cli")
    data = make_folder(str(root / "data"), per_class=12)
    run = str(root / "run")
    assert main(["train", data, "--image-size", "32", "--epochs", "2", "--batch-size", "8",
                 "--style", "subclassing", "--out", run, "--quiet-progress"]) == 0  # fmt: skip
    return data, run


@pytest.mark.multibackend
def test_train_evaluate_predict_commands(trained_run, capsys, tmp_path):
    data, run = trained_run
    capsys.readouterr()
    assert main(["evaluate", run, data]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "roc_auc" in out and "confusion matrix" in out
    assert main(["predict", run, os.path.join(data, "cats"), os.path.join(data, "dogs", "*.png")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "path,label,probability" and len(lines) == 1 + 12 + 6
    assert main(["predict", run, data, "--format", "json", "--output", str(tmp_path / "p.json")]) == 0
    rows = json.loads((tmp_path / "p.json").read_text())
    assert len(rows) == 24 and set(rows[0]) == {"path", "label", "probability", "probabilities"}
    assert main(["predict", run, os.path.join(data, "cats"), "--threshold", "1.0"]) == 0
    labels = [l.split(",")[1] for l in capsys.readouterr().out.strip().splitlines()[1:]]
    assert set(labels) == {"cats"}  # nothing reaches probability 1.0 of "dogs"


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "/no/such/folder"], "/no/such/folder: no such folder"),
        (["evaluate", "/no/such/run", "."], "no such run directory"),
        (["predict", "/no/such/run", "x.jpg"], "no such run directory"),
    ],
)
def test_command_errors_are_one_line_exit_2(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


def test_train_refuses_an_existing_run_dir(trained_run, capsys):
    data, run = trained_run
    assert main(["train", data, "--out", run, "--image-size", "32"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_demo_command_runs_end_to_end(tmp_path):
    """The README's main job, shortened (2 epochs), as a user runs it."""
    exe = os.path.join(os.path.dirname(sys.executable), "simplecnn")
    done = subprocess.run([exe, "demo", "--epochs", "2", "--out", str(tmp_path / "demo"),
                           "--quiet-progress"], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.count("Total params: 277,569") == 3
    assert "test accuracy" in out and "FAIL" not in out
    assert (tmp_path / "demo" / "run" / "evaluation" / "confusion_matrix.png").exists()


def test_public_api_is_lazy_and_complete():
    code = (
        "import sys, simplecnn\n"
        "assert 'keras' not in sys.modules, 'import simplecnn must not import keras'\n"
        "for name in simplecnn.__all__: getattr(simplecnn, name)\n"
        "assert simplecnn.build_model('functional').count_params() == 277569\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
