"""Keras against ONNX Runtime for using a trained run: start-up, a folder of photos, and the
runtime's own matmul peak, measured A/B/A/B in one run.

    .venv/bin/python benchmarks/runtimes.py RUN_DIR PHOTO FOLDER [--repeats 5] [--json out.json]

RUN_DIR must hold a checked ONNX export (``simplecnn export RUN_DIR --format onnx``). Each repeat
runs, for each runtime in turn: ``simplecnn predict RUN_DIR PHOTO --runtime R`` (one image, the
whole process) and ``simplecnn predict RUN_DIR FOLDER --runtime R`` (every photo of FOLDER, the
whole process, img/s). Figures are min / median / max over the repeats. The ONNX Runtime
matmul peak (float32, 2048x2048, the CPU execution provider with its default threads) gives the
roofline of the folder figure: img/s x forward FLOPs per image / peak. Run with nothing else on
the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

RUNTIMES = ("keras", "onnx")


def _wall(cmd: list[str]) -> float:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.strip()[-800:]}")
    return seconds


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def onnx_matmul_peak_gflops(n: int = 2048, repeats: int = 7) -> dict[str, float]:
    """GFLOP/s of an n x n float32 MatMul in ONNX Runtime (CPU provider, default threads)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm", [a, b], [c])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"a": rng.random((n, n), dtype=np.float32), "b": rng.random((n, n), dtype=np.float32)}
    session.run(None, feeds)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feeds)
        rates.append(2.0 * n**3 / (time.perf_counter() - start) / 1e9)
    return _spread(rates)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("photo")
    p.add_argument("folder")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    exe = os.path.join(os.path.dirname(sys.executable), "simplecnn")
    n_photos = sum(1 for _, _, files in os.walk(args.folder) for _ in files)
    one: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    folder: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    for i in range(args.repeats):  # A B A B ...
        for runtime in RUNTIMES:
            one[runtime].append(_wall([exe, "predict", args.run_dir, args.photo, "--runtime", runtime]))
            seconds = _wall([exe, "predict", args.run_dir, args.folder, "--runtime", runtime])
            folder[runtime].append(n_photos / seconds)
        print(f"repeat {i + 1}: " + ", ".join(f"{r} {one[r][-1]:.2f} s / {folder[r][-1]:.1f} img/s"
                                             for r in RUNTIMES), file=sys.stderr, flush=True)  # fmt: skip
    with open(os.path.join(args.run_dir, "run.json"), encoding="utf-8") as f:
        meta = json.load(f)
    from simplecnn.config import ModelConfig
    from simplecnn.costs import model_cost
    from simplecnn.models import build_model

    forward_flops = model_cost(build_model("functional", ModelConfig.from_dict(meta["model_config"]))).forward_flops
    peak = onnx_matmul_peak_gflops()
    report = {
        "cpu": _cpu_name(), "photos": n_photos, "image_size": meta["model_config"]["input_shape"][:2],
        "forward_gflop_per_image": forward_flops / 1e9,
        "one_image_seconds": {r: _spread(v) for r, v in one.items()},
        "folder_img_per_s": {r: _spread(v) for r, v in folder.items()},
        "onnxruntime_matmul_gflops": peak,
        "onnx_folder_fraction_of_matmul_peak": statistics.median(folder["onnx"]) * forward_flops / 1e9 / peak["median"],
    }  # fmt: skip
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 0


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
