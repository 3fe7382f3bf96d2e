"""The fast defaults: precision and jit_compile by hardware, the float32 kept model, the decoded
image cache, and the input-wait measurement."""

import json
import time

import keras
import numpy as np
import pytest
from imagegen import make_folder

from simplecnn import hardware
from simplecnn.cli import main
from simplecnn.config import CACHE_BELOW_BYTES, TrainConfig
from simplecnn.data import ImageBatches
from simplecnn.training import evaluate, train


@pytest.fixture
def flags(monkeypatch):
    """Pretend the CPU reports the given feature flags (and that there is no GPU)."""

    def set_flags(*names):
        monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(names))
        monkeypatch.setattr(hardware, "_gpu_capability", lambda backend: None)

    return set_flags


@pytest.mark.parametrize("backend", ["tensorflow", "torch", "jax"])
def test_auto_precision_is_bfloat16_only_where_measured_fast(flags, backend):
    flags("avx2", "fma")
    assert hardware.training_precision("auto", backend) == "float32"
    flags("avx512f", "avx512_bf16")
    # JAX's CPU backend measured no gain from bfloat16; TensorFlow and PyTorch about 2x.
    expected = "float32" if backend == "jax" else "mixed_bfloat16"
    assert hardware.training_precision("auto", backend) == expected
    flags("amx_bf16")
    assert hardware.training_precision("auto", backend) == expected
    # An explicit choice is kept whatever the hardware.
    assert hardware.training_precision("float32", backend) == "float32"
    assert hardware.training_precision("mixed_bfloat16", backend) == "mixed_bfloat16"


def test_gpus_of_compute_capability_8_get_bfloat16(monkeypatch):
    monkeypatch.setattr(hardware, "_gpu_capability", lambda backend: (9, 0))
    assert hardware.training_precision("auto", "jax") == "mixed_bfloat16"
    assert hardware.jit_compile("tensorflow") == "auto"  # XLA is left on for GPUs
    monkeypatch.setattr(hardware, "_gpu_capability", lambda backend: (7, 5))
    assert hardware.training_precision("auto", "torch") == "float32"


def test_xla_is_off_for_tensorflow_on_a_cpu(flags):
    flags()
    assert hardware.jit_compile("tensorflow") is False
    assert hardware.jit_compile("jax") == "auto" and hardware.jit_compile("torch") == "auto"


def test_bad_precision_is_refused(capsys):
    with pytest.raises(ValueError, match="precision must be one of"):
        hardware.training_precision("float16")
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="float16")
    with pytest.raises(SystemExit) as exit_:
        main(["train", "somewhere", "--precision", "float16"])
    assert exit_.value.code == 2
    assert "invalid choice: 'float16'" in capsys.readouterr().err


def test_dtype_policy_is_restored_after_an_error():
    before = keras.config.dtype_policy().name
    with pytest.raises(RuntimeError):
        with hardware.dtype_policy("mixed_bfloat16"):
            assert keras.config.dtype_policy().name == "mixed_bfloat16"
            raise RuntimeError("boom")
    assert keras.config.dtype_policy().name == before


def test_cpu_flags_are_read_from_proc_cpuinfo():
    flags = hardware.cpu_flags()
    assert isinstance(flags, frozenset)
    with open("/proc/cpuinfo") as f:  # simplecnn's set-up targets Linux
        text = f.read()
    assert ("sse2" in flags) == (" sse2" in text)


def test_decoded_images_are_cached_while_they_fit():
    config = TrainConfig(image_size=256)
    per_image = 256 * 256 * 3
    assert config.cache_for(CACHE_BELOW_BYTES // per_image)
    assert not config.cache_for(CACHE_BELOW_BYTES // per_image + 1)  # beyond: streamed
    assert TrainConfig(cache=True).cache_for(10**9) and not TrainConfig(cache=False).cache_for(1)


@pytest.mark.multibackend
def test_bfloat16_training_keeps_a_float32_model(tmp_path):
    data = make_folder(str(tmp_path / "pets"), per_class=16)
    run = tmp_path / "run"
    config = TrainConfig(image_size=32, epochs=6, batch_size=8, precision="mixed_bfloat16")
    result = train(data, run, config, verbose=0)
    meta = json.loads((run / "run.json").read_text())
    assert meta["precision"] == "mixed_bfloat16" and meta["cache"] is True
    trained = result.model
    assert trained.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert trained.get_layer("predictions").compute_dtype == "float32"  # probabilities in float32
    kept = keras.models.load_model(run / "model.keras")
    assert {layer.dtype_policy.name for layer in kept.layers} == {"float32"}
    assert kept.count_params() == trained.count_params()
    # The kept model is the best epoch's weights in float32, compiled like the trained one,
    # and it learned the easy task; its loss is the bfloat16 validation loss up to rounding.
    assert kept.optimizer.__class__ is trained.optimizer.__class__
    got = kept.evaluate(ImageBatches([(p, l) for p, l in _val_items(data, config)], image_size=(32, 32),
                                     batch_size=8), verbose=0, return_dict=True)  # fmt: skip
    assert got["loss"] == pytest.approx(result.best["val_loss"], rel=0.05, abs=0.01)
    assert evaluate(run, data)["accuracy"] >= 0.9
    wait = result.input_wait
    assert 0.0 <= wait["fraction"] <= wait["worst_epoch_fraction"] <= 1.0 and wait["seconds"] >= 0
    assert meta["input_wait"] == wait


def _val_items(data, config):
    from simplecnn.data import scan_folder

    return scan_folder(data, config.validation_split, config.seed).val


def test_float32_training_matches_the_kept_model_exactly(tmp_path):
    """With float32 there is no twin: model.keras is the trained model at its best epoch."""
    data = make_folder(str(tmp_path / "pets"), per_class=8)
    config = TrainConfig(image_size=32, epochs=1, batch_size=8, precision="float32", ema_epochs=0)
    result = train(data, tmp_path / "run", config, verbose=0)
    kept = keras.models.load_model(tmp_path / "run" / "model.keras")
    for a, b in zip(kept.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_input_wait_counts_time_blocked_on_decoding(tmp_path, monkeypatch):
    data = make_folder(str(tmp_path / "pets"), per_class=8)
    items = [(str(p), 0) for p in sorted((tmp_path / "pets" / "cats").iterdir())]
    batches = ImageBatches(items, image_size=(16, 16), batch_size=2, workers=1)
    slow = batches._make_batch
    monkeypatch.setattr(batches, "_make_batch", lambda *a: (time.sleep(0.05), slow(*a))[1])
    for i in range(len(batches)):
        batches[i]
    assert batches.wait_seconds >= 0.05 * len(batches)
    # Read ahead, a consumer slower than decoding hardly waits.
    ahead = ImageBatches(items, image_size=(16, 16), batch_size=2, workers=2, max_queue_size=4)
    ahead[0]
    start = ahead.wait_seconds
    for i in range(1, len(ahead)):
        time.sleep(0.2)
        ahead[i]
    assert ahead.wait_seconds - start < 0.05 and data
