"""The ``simplecnn`` command's arguments: bounded types, the flags built from TrainConfig's
fields, one small function per command, and the conversion of arguments into configs."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any, Callable

from simplecnn.backends import BACKENDS
from simplecnn.config import MAX_SIDE, STYLE_NAMES, flag_fields
from simplecnn.errors import UsageError

__all__ = ["build_parser", "model_config", "architecture", "train_config"]


# --- argument types: every number is bounded, every bound is stated ---------------------------


def _number(kind: type, low: float | None = None, high: float | None = None) -> Callable[[str], Any]:
    """An argparse type: an int or finite float in [low, high], else one clear line."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if kind is float and value is not None and not math.isfinite(value):
            value = None
        if kind is int and (value is None or value <= 0) and low is not None and low >= 1:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
        if value is None or (low is not None and value < low) or (high is not None and value > high):
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what} in [{low:g}, {high:g}], got {text!r}")
        return value

    return parse


def _or_auto(number: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: ``number``, or the word ``auto`` (None: the field's automatic choice)."""

    def parse(text: str) -> Any:
        if text.strip().lower() == "auto":
            return None
        try:
            return number(text)
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{exc} or auto") from None

    return parse


def _shape(text: str) -> tuple[int, int, int]:
    parts = text.replace("x", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) <= 0 or max(shape) > MAX_SIDE:
        raise argparse.ArgumentTypeError(
            f"expected HEIGHT,WIDTH,CHANNELS such as 256,256,3 (sides up to {MAX_SIDE}), got {text!r}"
        )
    return shape  # type: ignore[return-value]


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-shape", type=_shape, default=(256, 256, 3), metavar="H,W,C",
                   help="image shape the model takes (default: 256,256,3, the seed's)")  # fmt: skip
    p.add_argument("--num-classes", type=_number(int, 1, 100_000), default=1, metavar="N",
                   help="1: sigmoid head (the seed's, default); N >= 2: softmax over N classes")  # fmt: skip
    p.add_argument("--model-config", default=None, metavar="JSON",
                   help="a JSON file of ModelConfig fields (filters, convs, dropout, dense_units, "
                   "kernel_size) to change the seed's architecture")  # fmt: skip


def model_config(args: argparse.Namespace) -> Any:
    """ModelConfig from --model-config (if given), --input-shape and --num-classes."""
    return (architecture(args) or _default_model()).replace(input_shape=args.input_shape,
                                                              num_classes=args.num_classes)  # fmt: skip


def _default_model() -> Any:
    from simplecnn.config import ModelConfig

    return ModelConfig()


def architecture(args: argparse.Namespace) -> Any:
    """The ModelConfig of ``--model-config FILE`` (its fields over the seed's), or None."""
    from simplecnn.config import ModelConfig

    if not getattr(args, "model_config", None):
        return None
    try:
        with open(args.model_config, encoding="utf-8") as f:
            fields = json.load(f)
    except OSError as exc:
        raise UsageError(f"--model-config {args.model_config}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"--model-config {args.model_config}: not JSON ({exc})") from None
    if not isinstance(fields, dict):
        raise UsageError(f"--model-config {args.model_config}: expected a JSON object of ModelConfig fields")
    return ModelConfig.from_dict({**ModelConfig().to_dict(), **fields})


def _add_recipe_args(p: argparse.ArgumentParser) -> None:
    """DATA_DIR and one flag per TrainConfig field (help, default and bounds from the field)."""
    p.add_argument("data_dir", help="one sub-folder per class, or train/ and val/ folders of that form")
    p.add_argument("--recipe", choices=["default", "plain"], default="default",
                   help="plain: the seed tutorial's (Adam, constant lr, batch 32, no augmentation, "
                   "no BatchNorm recompute), for comparison")  # fmt: skip
    p.add_argument("--model-config", default=None, metavar="JSON",
                   help="a JSON file of ModelConfig fields (filters, convs, dropout, dense_units, "
                   "kernel_size) to train another architecture")  # fmt: skip
    for f in flag_fields():
        meta, kind = f.metadata, f.type.split(" | ")[0]
        text = meta["help"] + ("" if f.default is None else f" (default: {f.default})")
        name = "--" + f.name.replace("_", "-")
        if meta["choices"]:
            p.add_argument(name, choices=meta["choices"], type=type(meta["choices"][0]), help=text)
        elif kind == "bool":
            p.add_argument(name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            number = _number(int if kind == "int" else float, meta["low"], meta["high"])
            p.add_argument(name, type=_or_auto(number) if meta["auto"] else number,
                           metavar=meta["metavar"], help=text)  # fmt: skip


def train_config(args: argparse.Namespace) -> Any:
    """TrainConfig from the recipe (--recipe) and whichever flags were given."""
    from simplecnn.config import PLAIN_RECIPE, TrainConfig

    values = dict(PLAIN_RECIPE) if args.recipe == "plain" else {}
    for f in flag_fields():
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = value
    return TrainConfig(**values)


_THRESHOLD = _number(float, 0.0, 1.0)


# --- the parser -----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what, and where to look) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: global options, then one sub-parser per command."""
    parser = _Parser(prog="simplecnn", description="The seed tutorial's CNN classifier in three "
                     "Keras styles: summarize, compare, train, evaluate, predict, explain, export, "
                     "serve.")  # fmt: skip
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="Keras backend (default: $KERAS_BACKEND, else tensorflow)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    _add_summary(sub)
    _add_compare(sub)
    _add_train(sub)
    _add_bench(sub)
    _add_lr_find(sub)
    _add_launch(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    _add_explain(sub)
    _add_export(sub)
    _add_serve(sub)
    _add_check(sub)
    _add_demo(sub)
    return parser


def _add_summary(sub: Any) -> None:
    p = sub.add_parser("summary", help="Keras summaries plus FLOPs and activation memory")
    p.add_argument("--style", default="all", choices=["all", *STYLE_NAMES])
    p.add_argument("--expand-nested", action="store_true", help="show the subclassed blocks' layers")
    _add_model_args(p)


def _add_compare(sub: Any) -> None:
    p = sub.add_parser("compare", help="prove the three styles are one model (exit 1 if not)")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.add_argument("--backends", default="current", metavar="LIST",
                   help="current (default), all (every installed backend) or a comma list")  # fmt: skip
    p.add_argument("--plot-dir", default=None,
                   help="keep the plot_model PNGs in this folder (new PNGs, or ones simplecnn drew)")
    _add_model_args(p)


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train on a folder of images; writes a run directory")
    _add_recipe_args(p)
    p.add_argument("--out", default=None, help="run directory (default runs/DATE-STYLE)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished run in --out (only a simplecnn run is replaced)")
    p.add_argument("--resume", action="store_true",
                   help="continue the unfinished run in --out (the same command does this anyway)")
    p.add_argument("--quiet-progress", action="store_true", help="one line per epoch, no bar")
    p.add_argument("--export", choices=["onnx"], default=None,
                   help="when training ends, export the run as `simplecnn export RUN --format onnx` "
                   "does (checked), so predict/evaluate/serve answer without Keras")  # fmt: skip
    p.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="multi-process job: process 0's address ($SIMPLECNN_COORDINATOR)")
    p.add_argument("--num-processes", type=_number(int, 1, 4096), default=None,
                   help="multi-process job: how many ($SIMPLECNN_NUM_PROCESSES)")
    p.add_argument("--process-id", type=_number(int, 0, 4095), default=None,
                   help="multi-process job: this one, 0..N-1 ($SIMPLECNN_PROCESS_ID)")


def _add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="train and predict img/s per style and backend vs the roofline")
    p.add_argument("--styles", default="all", help="all (default) or a comma list")
    p.add_argument("--backends", default="installed", metavar="LIST",
                   help="installed (default), current, or a comma list")
    p.add_argument("--image-size", type=_number(int, 1, MAX_SIDE), default=256, help="(default %(default)s)")
    p.add_argument("--batch-size", type=_number(int, 1, 8192), default=16, help="(default %(default)s)")
    p.add_argument("--steps", type=_number(int, 1, 10_000), default=4,
                   help="training steps per timing (default %(default)s)")
    p.add_argument("--rounds", type=_number(int, 1, 1000), default=2,
                   help="timings per configuration, interleaved; the median is reported (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_lr_find(sub: Any) -> None:
    p = sub.add_parser("lr-find", help="loss against a growing learning rate; suggests one")
    _add_recipe_args(p)
    p.add_argument("--steps", type=_number(int, 5, 100_000), default=100, help="(default %(default)s)")
    p.add_argument("--start-lr", type=_number(float, 1e-12, 1e3), default=1e-7, help="(default %(default)s)")
    p.add_argument("--end-lr", type=_number(float, 1e-12, 1e3), default=10.0, help="(default %(default)s)")
    p.add_argument("--out", default=None,
                   help="the PNG to write (default lr_find.png; a new file or one simplecnn drew)")


def _add_launch(sub: Any) -> None:
    p = sub.add_parser("launch", help="run a train command as N local processes (JAX data parallel)")
    p.add_argument("--num-processes", type=_number(int, 1, 256), required=True)
    p.add_argument("--port", type=_number(int, 1, 65535), default=None,
                   help="coordinator port (default: a free one)")
    p.add_argument("command_args", nargs=argparse.REMAINDER, metavar="train ...")


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="metrics, confusion matrix, ROC curve, most-wrong images")
    p.add_argument("run_dir")
    p.add_argument("data_dir", help="class sub-folders named as in training")
    p.add_argument("--out", default=None, help="where to write (default RUN_DIR/evaluation)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_scoring_args(p)


def _add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="classify images: one CSV row per image")
    p.add_argument("run_dir")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or glob patterns")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--output", default=None,
                   help="write to this file instead of stdout (a new file, or one simplecnn wrote)")
    _add_scoring_args(p)


def _add_runtime_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtime", choices=["auto", "keras", "onnx", "onnx-int8"], default="auto",
                   help="what answers: auto (default) uses the run's checked ONNX export "
                   "(export/onnx/, from `simplecnn export RUN --format onnx` or `train --export "
                   "onnx`) when it has one, else Keras; onnx-int8 only when asked for")  # fmt: skip


def _add_scoring_args(p: argparse.ArgumentParser) -> None:
    """How evaluate and predict turn probabilities into labels, and what answers."""
    _add_runtime_arg(p)
    p.add_argument("--threshold", type=_THRESHOLD, default=0.5, help="decision threshold (binary runs)")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average over each image and its mirror image")


def _add_explain(sub: Any) -> None:
    p = sub.add_parser("explain", help="Grad-CAM heatmaps: which parts of each image drove the prediction")
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or glob patterns")
    p.add_argument("--layer", default=None, help="layer to explain (default: the last convolution)")
    p.add_argument("--class", dest="class_name", default=None,
                   help="explain this class (default: the predicted one)")
    p.add_argument("--out", default=None, help="where to write the PNGs (default RUN_DIR/explain)")


def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="the model for other runtimes, checked against Keras")
    p.add_argument("run_dir")
    p.add_argument("--format", required=True, choices=["keras", "saved_model", "onnx", "litert"])
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="post-training int8 quantization (onnx, litert)")
    p.add_argument("--out", default=None, help="folder to write (default RUN_DIR/export/FORMAT)")
    p.add_argument("--check-images", type=_number(int, 1, 100_000), default=64,
                   help="validation images the export is checked on (default %(default)s)")


def _add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="HTTP API and web page for a run's model")
    p.add_argument("run_dir")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=_number(int, 1, 65535), default=8000, help="(default %(default)s)")
    p.add_argument("--max-upload-mb", type=_number(int, 1, 1024), default=10, help="(default %(default)s)")
    p.add_argument("--max-batch", type=_number(int, 1, 1024), default=16,
                   help="most concurrent requests gathered into one model call (1: no batching; default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no access log")
    _add_runtime_arg(p)


def _add_check(sub: Any) -> None:
    p = sub.add_parser("check", help="a health report of a photo folder: copies, leaks, label conflicts, ...")
    p.add_argument("data_dir", help="one sub-folder per class, or train/ and val/ folders of that form")
    p.add_argument("--out", default=None, help="write report.json and contact sheets (PNG) into this folder")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--validation-split", type=_number(float, 0.0, 0.99), default=0.2, metavar="FRACTION",
                   help="the split train would make, checked for leaks (default %(default)s)")
    p.add_argument("--seed", type=_number(int, 0, 2**32 - 1), default=0, help="train's seed (default %(default)s)")
    p.add_argument("--labels", action="store_true",
                   help="also rank likely wrong labels (k-fold out-of-sample probabilities; trains "
                   "a model per fold within --time-budget)")
    p.add_argument("--run", default=None, metavar="RUN",
                   help="rank likely wrong labels with this run's model instead (fast; in-sample "
                   "for its training images)")
    p.add_argument("--time-budget", type=_number(float, 10.0, 86400.0), default=600.0, metavar="SECONDS",
                   help="for --labels: training time over all folds (default %(default)s)")


def _add_demo(sub: Any) -> None:
    p = sub.add_parser("demo", help="the three styles, their proof, and a real training run")
    p.add_argument("--out", default=None, help="demo folder (default runs/demo)")
    p.add_argument("--style", default="functional", choices=STYLE_NAMES)
    p.add_argument("--epochs", type=_number(int, 1, 10_000), default=30, help="(default %(default)s)")
    p.add_argument("--seed", type=_number(int, 0, 2**32 - 1), default=0, help="(default %(default)s)")
    p.add_argument("--quiet-progress", action="store_true", help="one line per epoch, no bar")
