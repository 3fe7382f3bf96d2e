"""``simplecnn bench``: training and predict throughput per style and backend, against a roofline.

Each backend runs in a process of its own (Keras picks its backend once per process). Inside it,
every style is measured twice, interleaved round by round so that drift of a shared machine hits
all of them alike:

* ``simplecnn``: trained as ``simplecnn train`` trains (its precision and ``jit_compile`` from
  :mod:`simplecnn.hardware`, its optimizer, schedule and weight average) and predicting as
  ``simplecnn predict`` does (the float32 model a run keeps, ``PREDICT_BATCH`` images a batch);
* ``keras_default``: ``model.compile(optimizer="adam", loss=...)`` with nothing else, float32,
  and ``model.predict``'s default batch size.

A training figure is images per second over ``steps`` optimizer steps of ``model.fit`` on random
images held in memory (no decoding), after a warm-up call that compiles; a predict figure is
``model.predict`` over the same images. The roofline is the machine's float32 matmul peak
(numpy, measured in the same run) divided by the model's FLOPs per image (``simplecnn summary``'s
count), so ``train_fraction_of_roofline`` near 1 means the step runs at float32 matmul speed.
Where training runs in bfloat16 it can pass that roofline; the backend's bfloat16 matmul peak
is then measured too and ``train_fraction_of_bfloat16_roofline`` reports against it.
``train_mfu`` (model FLOP utilisation) divides training FLOP/s by the matmul peak that the
backend itself measured on its device in the training precision: on a GPU it is the GPU's MFU.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from simplecnn.backends import run_in_backend
from simplecnn.errors import UsageError

__all__ = ["matmul_peak_gflops", "run_bench", "format_table", "NOISE_TOLERANCE"]

# Two identical configurations must agree within this (relative) for the figures to be trusted.
NOISE_TOLERANCE = 0.10


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of an n x n matmul with numpy (the BLAS numpy links)."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    a @ b  # warm-up: threads, caches
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best / 1e9


def _backend_matmul_gflops(dtype: str, n: int = 2048, repeats: int = 7) -> list[float]:
    """[min, median, max] GFLOP/s of an n x n matmul in ``dtype`` on the current Keras backend
    (the spread shows how steady the machine was; figures are divided by the median)."""
    import keras

    rng = np.random.default_rng(0)
    a = keras.ops.convert_to_tensor(rng.random((n, n), dtype=np.float32), dtype=dtype)
    b = keras.ops.convert_to_tensor(rng.random((n, n), dtype=np.float32), dtype=dtype)
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
        rates.append(2.0 * n**3 / (time.perf_counter() - t) / 1e9)
    rates.sort()
    return [rates[0], float(np.median(rates)), rates[-1]]


def _models(style: str, setting: str, config: Any, steps_per_epoch: int) -> tuple[Any, Any, str]:
    """(model to train, model to predict with, training precision) for one setting.

    ``keras_default``: float32, ``compile(optimizer="adam")`` (jit_compile "auto"), one model.
    ``simplecnn``: as ``simplecnn train`` trains (its precision, jit_compile, optimizer,
    schedule and weight average) and as ``simplecnn predict`` predicts (the float32 model a
    run keeps, with the trained weights).
    """
    from simplecnn.config import TrainConfig
    from simplecnn.models import build_model
    from simplecnn.training import build_training_model, float32_model

    if setting == "keras_default":
        model = build_model(style, config)
        model.compile(optimizer="adam", loss="binary_crossentropy")
        return model, model, "float32"
    model = build_training_model(style, config, TrainConfig(), steps_per_epoch)
    precision = model.dtype_policy.name
    if precision == "float32":
        return model, model, precision
    return model, float32_model(style, config), precision


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure every (style, setting) of one backend; runs in that backend's process."""
    import resource

    import keras

    from simplecnn.config import ModelConfig
    from simplecnn.training import PREDICT_BATCH, unshare_weights

    size, batch, steps = spec["image_size"], spec["batch_size"], spec["steps"]
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n = max(batch * steps, 4 * PREDICT_BATCH)  # predict: at least 4 batches a timing
    x = rng.random((n, size, size, 3), dtype=np.float32)
    y = rng.integers(0, 2, (n, 1)).astype(np.float32)
    xt, yt = x[: batch * steps], y[: batch * steps]
    config = ModelConfig(input_shape=(size, size, 3))
    # Predict batch: simplecnn predict's; Keras's own default (32) for keras_default.
    predict_batch = {"simplecnn": PREDICT_BATCH, "keras_default": None}
    runs = _warm_up(spec["styles"], config, x, y, batch, steps, predict_batch)
    # Interleaved rounds (A B A B ...). The simplecnn and keras_default predict rows run the same
    # float32 computation at the same batch: they are the noise control. Rounds go on (up to 3x
    # the asked number) until their medians agree within NOISE_TOLERANCE.
    rounds = 0
    while True:
        for (style, setting), r in runs.items():
            t = time.perf_counter()
            r["model"].fit(xt, yt, batch_size=batch, epochs=1, shuffle=False, verbose=0)
            r["train_s"].append(time.perf_counter() - t)
            unshare_weights(r["model"])
            r["predict_s"].append(_timed_predict(r["predictor"], x, predict_batch[setting]))
        rounds += 1
        disagreement = _disagreement(runs, len(x))
        if rounds >= spec["rounds"] and (disagreement <= NOISE_TOLERANCE or rounds >= 3 * spec["rounds"]):
            break
    out = []
    for (style, setting), r in runs.items():
        train_rates = sorted(len(xt) / t for t in r["train_s"])
        predict_rates = sorted(len(x) / t for t in r["predict_s"])
        out.append({
            "style": style, "setting": setting, "precision": r["precision"],
            "warmup_s": r["warmup_s"],
            "train_img_per_s": float(np.median(train_rates)),
            "predict_img_per_s": float(np.median(predict_rates)),
            "train_img_per_s_spread": [train_rates[0], float(np.median(train_rates)), train_rates[-1]],
            "predict_img_per_s_spread": [predict_rates[0], float(np.median(predict_rates)), predict_rates[-1]],
        })  # fmt: skip
    peaks = {"float32": _backend_matmul_gflops("float32")}
    if any(r["precision"] == "mixed_bfloat16" for r in out):
        peaks["bfloat16"] = _backend_matmul_gflops("bfloat16")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"backend": keras.backend.backend(), "keras": keras.__version__,
            "peak_rss_mib": peak_kib / 1024, "backend_matmul_gflops": peaks,
            "predict_batch": PREDICT_BATCH, "runs": out,
            "noise": {"rounds": rounds, "identical_predict_disagreement": disagreement,
                      "noisy": disagreement > NOISE_TOLERANCE}}  # fmt: skip


def _warm_up(styles: list[str], config: Any, x: np.ndarray, y: np.ndarray, batch: int, steps: int,
             predict_batch: dict[str, int | None]) -> dict[tuple[str, str], dict[str, Any]]:  # fmt: skip
    """Each (style, setting)'s models, after a first fit and predict (compiling), timed."""
    from simplecnn.training import unshare_weights

    runs: dict[tuple[str, str], dict[str, Any]] = {}
    for style in styles:
        for setting in ("simplecnn", "keras_default"):
            model, predictor, precision = _models(style, setting, config, steps)
            t = time.perf_counter()
            model.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0)
            unshare_weights(model)
            if predictor is not model:
                predictor.set_weights(model.get_weights())
            predictor.predict(x, batch_size=predict_batch[setting], verbose=0)
            runs[(style, setting)] = {"model": model, "predictor": predictor, "precision": precision,
                                      "warmup_s": time.perf_counter() - t,
                                      "train_s": [], "predict_s": []}  # fmt: skip
    return runs


def _timed_predict(model: Any, x: np.ndarray, batch: int | None) -> float:
    t = time.perf_counter()
    model.predict(x, batch_size=batch, verbose=0)
    return time.perf_counter() - t


def _disagreement(runs: dict, n: int) -> float:
    """The largest relative gap between the medians of the identical predict configurations
    (simplecnn's and Keras defaults' float32 predict, per style)."""
    gaps = [0.0]
    for (style, setting), r in runs.items():
        if setting == "simplecnn":
            a = float(np.median(r["predict_s"]))
            b = float(np.median(runs[(style, "keras_default")]["predict_s"]))
            gaps.append(abs(a - b) / max(a, b))
    return max(gaps)


def run_bench(
    styles: Sequence[str],
    backends: Sequence[str],
    image_size: int = 256,
    batch_size: int = 16,
    steps: int = 4,
    rounds: int = 2,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure each style on each backend; returns the machine figures and one row per pair.

    Each row has ``train_img_per_s`` / ``predict_img_per_s`` (simplecnn's compile), the same for
    Keras's defaults (``keras_default_*``) and their ratios, the roofline figures and fractions,
    the warm-up (compile) seconds and the backend process's peak resident memory.
    """
    import keras

    from simplecnn.config import ModelConfig
    from simplecnn.costs import model_cost
    from simplecnn.hardware import check_training_memory
    from simplecnn.models import build_model

    for name, value in (("image_size", image_size), ("batch_size", batch_size),
                        ("steps", steps), ("rounds", rounds)):  # fmt: skip
        if not (isinstance(value, int) and value > 0):
            raise UsageError(f"bench: {name} must be a positive integer. Received: {value!r}")
    check_training_memory(ModelConfig(input_shape=(image_size, image_size, 3)), batch_size)
    say = progress or (lambda _: None)
    say("measuring the float32 matmul peak (numpy, 2048x2048)")
    peak = matmul_peak_gflops()
    cost = model_cost(build_model("functional", ModelConfig(input_shape=(image_size, image_size, 3))))
    roof_train = peak * 1e9 / cost.train_flops
    roof_predict = peak * 1e9 / cost.forward_flops
    spec = {"styles": list(styles), "image_size": image_size, "batch_size": batch_size,
            "steps": steps, "rounds": rounds}  # fmt: skip
    rows = []
    for backend in backends:
        say(f"{backend}: {len(styles)} style(s) x 2 settings, {rounds} round(s) of {steps} steps "
            f"at {image_size}x{image_size}, batch {batch_size}")  # fmt: skip
        result = run_in_backend(backend, "simplecnn.bench", [json.dumps(spec)])
        by = {(r["style"], r["setting"]): r for r in result["runs"]}
        rows += [_row(backend, style, by[(style, "simplecnn")], by[(style, "keras_default")],
                      result, cost, roof_train, roof_predict) for style in styles]  # fmt: skip
    return {
        "machine": {"cpus": os.cpu_count(), "matmul_peak_gflops": peak,
                    "keras": keras.__version__},  # fmt: skip
        "model": {"image_size": image_size, "forward_gflop_per_image": cost.forward_flops / 1e9,
                  "train_gflop_per_image": cost.train_flops / 1e9},  # fmt: skip
        "settings": {"batch_size": batch_size, "steps": steps, "rounds": rounds},
        "rows": rows,
    }


def _row(backend: str, style: str, ours: dict[str, Any], default: dict[str, Any], result: dict[str, Any],
         cost: Any, roof_train: float, roof_predict: float) -> dict[str, Any]:  # fmt: skip
    """One configuration's figures: simplecnn's and Keras's defaults, against the rooflines."""
    spreads = result["backend_matmul_gflops"]  # [min, median, max] per precision
    peaks = {k: v[1] for k, v in spreads.items()}
    bf16 = ours["precision"] == "mixed_bfloat16"
    # Model FLOP utilisation: training FLOP/s over the device's matmul peak in the training
    # precision (its median), both measured by the backend on its device (on a GPU, the GPU's),
    # so it holds where numpy's CPU roofline does not.
    mfu = ours["train_img_per_s"] * cost.train_flops / (peaks["bfloat16" if bf16 else "float32"] * 1e9)
    return {
        "backend": backend, "style": style, "precision": ours["precision"],
        "predict_batch": result["predict_batch"],
        "train_img_per_s": ours["train_img_per_s"],
        "predict_img_per_s": ours["predict_img_per_s"],
        "train_img_per_s_spread": ours["train_img_per_s_spread"],
        "predict_img_per_s_spread": ours["predict_img_per_s_spread"],
        "keras_default_predict_img_per_s_spread": default["predict_img_per_s_spread"],
        "keras_default_train_img_per_s": default["train_img_per_s"],
        "keras_default_predict_img_per_s": default["predict_img_per_s"],
        "train_ratio_to_keras_default": ours["train_img_per_s"] / default["train_img_per_s"],
        "predict_ratio_to_keras_default": ours["predict_img_per_s"] / default["predict_img_per_s"],
        "roofline_train_img_per_s": roof_train,
        "roofline_predict_img_per_s": roof_predict,
        "train_fraction_of_roofline": ours["train_img_per_s"] / roof_train,
        "predict_fraction_of_roofline": ours["predict_img_per_s"] / roof_predict,
        "warmup_s": ours["warmup_s"],
        "peak_rss_mib": result["peak_rss_mib"],
        "backend_matmul_gflops": peaks,
        "backend_matmul_gflops_spread": spreads,
        "noise": result["noise"],
        "train_mfu": mfu,
        # The same, named for bfloat16 rows (None for float32 ones).
        "train_fraction_of_bfloat16_roofline": mfu if bf16 else None,
    }  # fmt: skip


def format_table(report: dict[str, Any]) -> str:
    """The report as text: one row per configuration with each figure's min-max, then the
    noise control's verdict and the MFU line."""
    m, rows = report["machine"], report["rows"]
    if not rows:
        return "no rows"
    lines = [
        f"float32 matmul peak {m['matmul_peak_gflops']:.1f} GFLOP/s (numpy) on {m['cpus']} CPU(s); model "
        f"{report['model']['forward_gflop_per_image']:.2f} GFLOP/image forward, "
        f"{report['model']['train_gflop_per_image']:.2f} per training image; roofline "
        f"{rows[0]['roofline_train_img_per_s']:.2f} train / {rows[0]['roofline_predict_img_per_s']:.2f} "
        "predict img/s",
        "img/s: median of the rounds [min-max]",
        f"{'backend':<11}{'style':<13}{'precision':<16}{'train img/s':>22}{'(keras)':>9}{'roof':>6}"
        f"{'predict img/s':>24}{'(keras)':>9}{'roof':>6}{'warm-up s':>11}{'peak MiB':>10}",
    ]  # fmt: skip
    for r in rows:
        lines.append(
            f"{r['backend']:<11}{r['style']:<13}{r['precision']:<16}{_spread(r['train_img_per_s_spread']):>22}"
            f"{r['keras_default_train_img_per_s']:>9.2f}{r['train_fraction_of_roofline']:>6.0%}"
            f"{_spread(r['predict_img_per_s_spread']):>24}{r['keras_default_predict_img_per_s']:>9.2f}"
            f"{r['predict_fraction_of_roofline']:>6.0%}{r['warmup_s']:>11.1f}{r['peak_rss_mib']:>10.0f}"
        )  # fmt: skip
    lines.append("")
    for backend in dict.fromkeys(r["backend"] for r in rows):
        noise = next(r["noise"] for r in rows if r["backend"] == backend)
        verdict = ("TOO NOISY TO TELL: differences under that are not measured" if noise["noisy"]
                   else "within the 10% the figures are trusted to")  # fmt: skip
        lines.append(f"{backend}: the two identical float32 predict configurations differed by "
                     f"{noise['identical_predict_disagreement']:.0%} after {noise['rounds']} rounds: "
                     f"{verdict}")  # fmt: skip
    lines.append("roof: fraction of the float32 roofline. Train MFU (training FLOP/s over the "
                 "backend's own median matmul peak in the training precision, [min-max] of that "
                 "peak): " + ", ".join(
                     f"{r['backend']} {r['style']} {r['train_mfu']:.0%} ({r['precision']} peak "
                     f"{_spread(r['backend_matmul_gflops_spread'][_peak_key(r)], 0)} GFLOP/s)"
                     for r in rows))  # fmt: skip
    return "\n".join(lines)


def _peak_key(row: dict[str, Any]) -> str:
    return "bfloat16" if row["precision"] == "mixed_bfloat16" else "float32"


def _spread(values: list[float], digits: int = 2) -> str:
    low, mid, high = values
    return f"{mid:.{digits}f} [{low:.{digits}f}-{high:.{digits}f}]"


if __name__ == "__main__":  # the per-backend worker: python -m simplecnn.bench SPEC_JSON
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
