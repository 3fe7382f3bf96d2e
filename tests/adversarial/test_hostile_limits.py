"""Sizes beyond the machine are refused before anything is allocated, with the estimate."""

from __future__ import annotations

import os
import resource
import time

import pytest
from catalogue import LIMITS
from world import fill, one_line_exit_2

from simplecnn.cli import main
from simplecnn.config import ModelConfig
from simplecnn.hardware import check_training_memory, training_memory_bytes


@pytest.mark.parametrize("template, what", LIMITS, ids=[w for _, w in LIMITS])
def test_a_size_beyond_the_machine_is_refused_first(world, template, what, tmp_path, capsys):
    argv = fill(template, world)
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "run")]
    start = time.perf_counter()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        code = main(argv)
    except SystemExit as exc:  # refused by the argument parser
        code = exc.code
    err = capsys.readouterr().err
    one_line_exit_2(code, err)
    assert time.perf_counter() - start < 60
    grew_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grew_mib < 1024, f"{what}: peak memory grew by {grew_mib:.0f} MiB before refusing"
    assert not os.path.exists(tmp_path / "run")
    if "memory" in what:
        assert "needs about" in err and "available" in err


def test_the_memory_refusal_says_what_would_fit():
    config = ModelConfig(input_shape=(1024, 1024, 3))
    with pytest.raises(Exception) as info:
        check_training_memory(config, 16, available=8 << 30)
    text = str(info.value)
    assert "needs about 34.0 GiB" in text and "8.0 GiB available" in text
    side = int(text.split("an image size of at most ")[1].split()[0])
    fits = config.replace(input_shape=(side, side, 3))
    assert training_memory_bytes(fits, 16) <= 8 << 30 < training_memory_bytes(
        config.replace(input_shape=(side + 8, side + 8, 3)), 16)
