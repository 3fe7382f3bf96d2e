"""The command line: summary and compare output, exit codes, one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from simplecnn.cli import main

STYLE_NAMES = ("sequential", "functional", "subclassing")


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
