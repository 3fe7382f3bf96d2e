"""`simplecnn bench`: the report's figures, the roofline arithmetic, and its errors."""

import json

import pytest

from simplecnn import hardware
from simplecnn.bench import matmul_peak_gflops
from simplecnn.cli import main
from simplecnn.training import PREDICT_BATCH

REQUIRED = ("train_img_per_s", "predict_img_per_s", "keras_default_train_img_per_s",
            "keras_default_predict_img_per_s", "roofline_train_img_per_s",
            "roofline_predict_img_per_s")  # fmt: skip


def test_matmul_peak_is_a_plausible_rate():
    gflops = matmul_peak_gflops(n=256, repeats=2)
    assert 0.1 < gflops < 1e5


@pytest.mark.multibackend
def test_bench_json_has_every_figure_and_a_consistent_roofline(capsys):
    assert main(["bench", "--json", "--styles", "functional,subclassing", "--backends", "current",
                 "--image-size", "32", "--batch-size", "4", "--steps", "2", "--rounds", "1"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    rows = report["rows"]
    assert [r["style"] for r in rows] == ["functional", "subclassing"]
    model = report["model"]
    # The seed model at 32x32: 64x fewer FLOPs than at 256x256 (12.31 / 36.69 GFLOP there).
    assert model["forward_gflop_per_image"] == pytest.approx(12.31 / 64, rel=0.01)
    assert model["train_gflop_per_image"] == pytest.approx(36.69 / 64, rel=0.01)
    peak = report["machine"]["matmul_peak_gflops"]
    for r in rows:
        assert all(r[k] > 0 for k in REQUIRED)
        assert r["roofline_train_img_per_s"] == pytest.approx(peak / model["train_gflop_per_image"])
        assert r["roofline_predict_img_per_s"] == pytest.approx(peak / model["forward_gflop_per_image"])
        assert r["train_fraction_of_roofline"] == pytest.approx(
            r["train_img_per_s"] / r["roofline_train_img_per_s"])
        assert r["train_ratio_to_keras_default"] == pytest.approx(
            r["train_img_per_s"] / r["keras_default_train_img_per_s"])
        assert r["peak_rss_mib"] > 50 and r["warmup_s"] > 0
        # simplecnn's row is measured with the precision `simplecnn train` picks here.
        assert r["precision"] == hardware.training_precision("auto")
        assert r["predict_batch"] == PREDICT_BATCH
        if r["precision"] == "mixed_bfloat16":
            bf16 = r["backend_matmul_gflops"]["bfloat16"]
            assert r["train_fraction_of_bfloat16_roofline"] == pytest.approx(
                r["train_img_per_s"] * model["train_gflop_per_image"] / bf16)
        else:
            assert r["train_fraction_of_bfloat16_roofline"] is None
        own = r["backend_matmul_gflops"]["bfloat16" if r["precision"] == "mixed_bfloat16" else "float32"]
        assert r["train_mfu"] == pytest.approx(r["train_img_per_s"] * model["train_gflop_per_image"] / own)


@pytest.mark.parametrize(
    "argv, fragment",
    [(["bench", "--styles", "recurrent"], "Unknown style 'recurrent'"),
     (["bench", "--backends", "theano"], "Unknown backend")],
)  # fmt: skip
def test_bench_user_errors(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_bench_reports_spreads_and_the_noise_control(capsys):
    assert main(["bench", "--json", "--styles", "functional", "--backends", "current",
                 "--image-size", "32", "--batch-size", "4", "--steps", "2", "--rounds", "2"]) == 0  # fmt: skip
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    for key in ("train_img_per_s_spread", "predict_img_per_s_spread"):
        low, mid, high = row[key]
        assert 0 < low <= mid <= high
    assert row[key.replace("_spread", "")] == mid
    noise = row["noise"]
    assert 2 <= noise["rounds"] <= 6 and noise["noisy"] == (noise["identical_predict_disagreement"] > 0.10)
    low, mid, high = row["backend_matmul_gflops_spread"]["float32"]
    assert low <= mid <= high and row["backend_matmul_gflops"]["float32"] == mid


def test_the_noise_control_compares_the_identical_predict_configurations():
    from simplecnn.bench import _disagreement

    runs = {("functional", "simplecnn"): {"predict_s": [1.0, 1.0, 2.0]},
            ("functional", "keras_default"): {"predict_s": [1.25, 1.2, 1.3]}}  # fmt: skip
    assert _disagreement(runs, 64) == pytest.approx(0.2)
