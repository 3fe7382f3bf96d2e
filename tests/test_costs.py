"""FLOPs and activation memory: the seed model's costs pinned, the same for every style."""

import pytest

from simplecnn.costs import format_cost, model_cost
from simplecnn.models import STYLES, build_model

# 2 x multiply-adds of the four convolutions and two Dense layers at 256x256x3.
SEED_FORWARD_FLOPS = 12_306_120_960
SEED_TRAIN_FLOPS = 36_691_870_464


@pytest.mark.parametrize("style", STYLES)
def test_seed_flops_and_activations(style):
    cost = model_cost(build_model(style))
    assert cost.forward_flops == SEED_FORWARD_FLOPS
    assert cost.train_flops == SEED_TRAIN_FLOPS
    by_name = {row.name: row for row in cost.layers}
    # block1_conv2: 256*256*64 outputs, each 3*3*64 multiply-adds
    assert by_name["block1_conv2"].mult_adds == 256 * 256 * 64 * 3 * 3 * 64
    assert by_name["block1_conv2"].activation_bytes == 256 * 256 * 64 * 4
    assert by_name["block1_pool"].flops == 0
    assert sum(r.params for r in cost.layers) == 277_569
    assert cost.activation_bytes == 69_207_044


def test_cost_scales_with_image_area(small_config):
    small = model_cost(build_model("functional", small_config))
    # 32x32 has 1/64 of the pixels of 256x256; the Dense head is independent of image size.
    head = 2 * (128 * 128 + 128)
    assert (small.forward_flops - head) * 64 == SEED_FORWARD_FLOPS - head


def test_format_cost_has_totals():
    text = format_cost(model_cost(build_model("sequential")))
    assert "Forward FLOPs: 12.31 GFLOP per image" in text
    assert "Training FLOPs (forward + backward): 36.69 GFLOP per image" in text
    assert "block2_conv2 (Conv2D)" in text and "Forward activations: 66.00 MiB" in text
