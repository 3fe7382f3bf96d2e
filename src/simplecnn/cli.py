"""The ``simplecnn`` command: parse arguments, call one library function, print.

No ML logic lives here. The recipe flags of ``train`` and ``lr-find`` are built from
:class:`simplecnn.config.TrainConfig`'s fields (help, default, bounds), so nothing is written
twice. A user error (:class:`simplecnn.errors.UsageError`) is one line on stderr and exit code 2;
anything else is a bug, said as such, with the traceback under ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, Callable

from simplecnn.backends import BACKENDS
from simplecnn.config import MAX_SIDE, STYLE_NAMES, flag_fields
from simplecnn.errors import SimplecnnError, UsageError

__all__ = ["main", "build_parser"]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


def _model_config(args: argparse.Namespace) -> Any:
    """ModelConfig from --model-config (if given), --input-shape and --num-classes."""
    return (_architecture(args) or _default_model()).replace(input_shape=args.input_shape,
                                                              num_classes=args.num_classes)  # fmt: skip


def _default_model() -> Any:
    from simplecnn.config import ModelConfig

    return ModelConfig()


def _architecture(args: argparse.Namespace) -> Any:
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
            p.add_argument(name, type=_number(int if kind == "int" else float, meta["low"], meta["high"]),
                           metavar=meta["metavar"], help=text)  # fmt: skip


def _train_config(args: argparse.Namespace) -> Any:
    """TrainConfig from the recipe (--recipe) and whichever flags were given."""
    from simplecnn.config import PLAIN_RECIPE, TrainConfig

    values = dict(PLAIN_RECIPE) if args.recipe == "plain" else {}
    for f in flag_fields():
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = value
    return TrainConfig(**values)


def _print_skipped(skipped: list, where: str) -> None:
    """Name each skipped file once, with its reason (Skipped objects or their dicts)."""
    if not skipped:
        return
    _say(f"skipped {len(skipped)} file(s) ({where}):")
    for s in skipped[:20]:
        path, reason = (s["path"], s["reason"]) if isinstance(s, dict) else (s.path, s.reason)
        _say(f"  {path}: {reason}")
    if len(skipped) > 20:
        _say(f"  ... and {len(skipped) - 20} more")


# --- commands ---------------------------------------------------------------------------------


def cmd_summary(args: argparse.Namespace) -> int:
    from simplecnn.costs import format_cost, model_cost
    from simplecnn.models import STYLES, build_model

    config = _model_config(args)
    for style in list(STYLES) if args.style == "all" else [args.style]:
        model = build_model(style, config)
        print(f"== {style} ==")
        model.summary(expand_nested=args.expand_nested)
        print(format_cost(model_cost(model)))
        print()
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from simplecnn.equivalence import TOLERANCE, compare_backends, format_compare

    rows = compare_backends(_model_config(args), args.backends, plot_dir=args.plot_dir)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print("Each style gets the Functional model's (random) weights, then must match it: "
              f"outputs in inference mode and gradients of one training step within {TOLERANCE:g}, "
              "a .keras save/load round trip, and a plot_model drawing.")  # fmt: skip
        print(format_compare(rows))
    return 0 if rows and all(r["ok"] for r in rows) else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from simplecnn.backends import parse_backends
    from simplecnn.bench import format_table, run_bench

    styles = list(STYLE_NAMES) if args.styles == "all" else [s.strip() for s in args.styles.split(",")]
    for style in styles:
        if style not in STYLE_NAMES:
            raise UsageError(f"Unknown style {style!r} in --styles. Allowed: all, {', '.join(STYLE_NAMES)}")
    report = run_bench(styles, parse_backends(args.backends), image_size=args.image_size,
                       batch_size=args.batch_size, steps=args.steps, rounds=args.rounds,
                       progress=_say)  # fmt: skip
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from simplecnn import distributed
    from simplecnn.training import train

    config = _train_config(args)
    dist = distributed.from_env(args.coordinator, args.num_processes, args.process_id)
    if dist is not None:
        if args.out is None:
            raise UsageError("a multi-process job needs --out, the same in every process")
        distributed.initialize(dist)
    out = args.out or _default_run_dir(config.style)
    result = train(args.data_dir, out, config, overwrite=args.overwrite, resume=args.resume,
                   verbose=2 if args.quiet_progress else "auto", architecture=_architecture(args))  # fmt: skip
    if distributed.process_slice()[0] != 0:
        return 0  # process 0 reports
    _print_skipped(result.skipped, f"recorded in {os.path.join(out, 'files.json')}")
    for warning in result.warnings:
        _say(f"warning: {warning}")
    if result.stopped == "nan":
        _say(f"simplecnn train: error: {result.message}")
        return 1
    best = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.best.items()))
    print(f"trained {config.style} on {len(result.class_names)} classes {result.class_names} "
          f"in {result.seconds:.1f} s; best epoch {result.best_epoch}: {best}")  # fmt: skip
    if result.input_wait:
        print(f"waiting for input: {result.input_wait['fraction']:.1%} of training time "
              f"(worst epoch {result.input_wait['worst_epoch_fraction']:.1%})")  # fmt: skip
    print(f"run directory: {out}")
    return 0


def _default_run_dir(style: str) -> str:
    import time

    return os.path.join("runs", time.strftime("%Y%m%d-%H%M%S") + f"-{style}")


def cmd_lr_find(args: argparse.Namespace) -> int:
    from simplecnn.lr_find import lr_find

    result = lr_find(args.data_dir, _train_config(args), start_lr=args.start_lr, end_lr=args.end_lr,
                     steps=args.steps, png=args.out or "lr_find.png",
                     architecture=_architecture(args))  # fmt: skip
    print(f"tried {len(result['lrs'])} learning rates from {result['lrs'][0]:.2g} to "
          f"{result['lrs'][-1]:.2g}; lowest loss at {result['min_loss_lr']:.2g}, steepest fall "
          f"at {result['steepest']:.2g}")  # fmt: skip
    print(f"suggested: --learning-rate {result['suggested']:.2g}   (plot: {result['png']})")
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    from simplecnn.distributed import launch

    failed = launch(args.num_processes, args.command_args, port=args.port, debug=args.debug)
    if failed:
        i, code = failed
        _say(f"simplecnn launch: error: process {i} of {args.num_processes} exited with code "
             f"{code}; stopped the others (run the same command again to resume from the last backup)")  # fmt: skip
        return 1
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from simplecnn.inference import evaluate

    m = evaluate(args.run_dir, args.data_dir, out_dir=args.out, threshold=args.threshold, tta=args.tta)
    if args.json:
        from simplecnn.outputs import dumps_json

        print(dumps_json(m))
        return 0
    _print_skipped(m["skipped"], "not evaluated")
    auc = "n/a (one class present)" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
    print(f"evaluated {m['n']} images of {m['class_names']} ({m['averaging']})")
    print(f"accuracy  {m['accuracy']:.4f}\nprecision {m['precision']:.4f}\n"
          f"recall    {m['recall']:.4f}\nf1        {m['f1']:.4f}\nroc_auc   {auc}")  # fmt: skip
    print("confusion matrix (rows: true, columns: predicted):")
    width = max(len(n) for n in m["class_names"])
    print(" " * (width + 2) + "  ".join(n.rjust(width) for n in m["class_names"]))
    for name, row in zip(m["class_names"], m["confusion_matrix"]):
        print(name.rjust(width) + "  " + "  ".join(str(v).rjust(width) for v in row))
    print(f"{len(m['most_wrong'])} misclassified shown in most_wrong.png; report and plots in "
          f"{m['out_dir']}")  # fmt: skip
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from simplecnn.inference import format_predictions, is_prediction_file, predict
    from simplecnn.outputs import check_file_target, write_text

    if args.output:  # refused before any work if it would replace a file simplecnn did not write
        check_file_target(args.output, "--output", is_prediction_file)
    rows, skipped = predict(args.run_dir, args.paths, threshold=args.threshold, tta=args.tta)
    text = format_predictions(rows, args.format)
    if args.output:
        write_text(args.output, text)
        _say(f"wrote {len(rows)} predictions to {args.output}")
    else:
        sys.stdout.write(text)
    _print_skipped(skipped, "not predicted")
    if not rows:
        raise UsageError("no readable image among the given paths")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from simplecnn.explain import explain_files

    def progress(row: dict) -> None:
        print(f"{row['path']}: {row['label']} ({row['probability']:.3f}) -> {row['png']}", flush=True)

    result = explain_files(args.run_dir, args.images, out_dir=args.out, layer=args.layer,
                           class_name=args.class_name, on_image=progress)  # fmt: skip
    _print_skipped(result.skipped, "not explained")
    if not result.rows:
        raise UsageError("no readable image among the given paths")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from simplecnn.export import export_run

    result = export_run(args.run_dir, args.format, out_dir=args.out, quantize=args.quantize,
                        check_images=args.check_images)  # fmt: skip
    c = result.check
    acc = ""
    if c.get("keras_accuracy") is not None:
        acc = (f"; accuracy {c['export_accuracy']:.4f} vs Keras {c['keras_accuracy']:.4f} "
               f"({c['accuracy_change']:+.4f})")  # fmt: skip
    tol = f" (tolerance {c['tolerance']:g})" if c["tolerance"] is not None else ""
    print(f"wrote {result.path}")
    print(f"check on {c['images']}: max |export - keras| = {c['max_abs_difference']:.2e}{tol}, "
          f"same label {c['label_agreement']:.1%}{acc}; {c['export_img_per_s']:.1f} img/s "
          f"(Keras {c['keras_img_per_s']:.1f}); {c['artifact_bytes'] / 1e6:.2f} MB")  # fmt: skip
    print(f"check {'passed' if c['passed'] else 'FAILED'}: {os.path.join(result.out_dir, 'check.json')}")
    return 0 if c["passed"] else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from simplecnn.serve import serve

    serve(args.run_dir, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb,
          max_batch=args.max_batch, quiet=args.quiet, say=_say)  # fmt: skip
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from simplecnn.demo import run_demo

    ok = run_demo(args.out or os.path.join("runs", "demo"), style=args.style, epochs=args.epochs,
                  seed=args.seed, quiet_progress=args.quiet_progress)  # fmt: skip
    return 0 if ok else 1


# --- parser -----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what, and where to look) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="simplecnn", description="The seed tutorial's CNN classifier in three "
                     "Keras styles: summarize, compare, train, evaluate, predict, explain, export, "
                     "serve.")  # fmt: skip
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="Keras backend (default: $KERAS_BACKEND, else tensorflow)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    styles = ["all", *STYLE_NAMES]
    image = _number(int, 1, MAX_SIDE)

    p = sub.add_parser("summary", help="Keras summaries plus FLOPs and activation memory")
    p.add_argument("--style", default="all", choices=styles)
    p.add_argument("--expand-nested", action="store_true", help="show the subclassed blocks' layers")
    _add_model_args(p)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("compare", help="prove the three styles are one model (exit 1 if not)")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.add_argument("--backends", default="current", metavar="LIST",
                   help="current (default), all (every installed backend) or a comma list")  # fmt: skip
    p.add_argument("--plot-dir", default=None,
                   help="keep the plot_model PNGs in this folder (new PNGs, or ones simplecnn drew)")
    _add_model_args(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("train", help="train on a folder of images; writes a run directory")
    _add_recipe_args(p)
    p.add_argument("--out", default=None, help="run directory (default runs/DATE-STYLE)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished run in --out (only a simplecnn run is replaced)")
    p.add_argument("--resume", action="store_true",
                   help="continue the unfinished run in --out (the same command does this anyway)")
    p.add_argument("--quiet-progress", action="store_true", help="one line per epoch, no bar")
    p.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="multi-process job: process 0's address ($SIMPLECNN_COORDINATOR)")
    p.add_argument("--num-processes", type=_number(int, 1, 4096), default=None,
                   help="multi-process job: how many ($SIMPLECNN_NUM_PROCESSES)")
    p.add_argument("--process-id", type=_number(int, 0, 4095), default=None,
                   help="multi-process job: this one, 0..N-1 ($SIMPLECNN_PROCESS_ID)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="train and predict img/s per style and backend vs the roofline")
    p.add_argument("--styles", default="all", help="all (default) or a comma list")
    p.add_argument("--backends", default="installed", metavar="LIST",
                   help="installed (default), current, or a comma list")
    p.add_argument("--image-size", type=image, default=256, help="default 256")
    p.add_argument("--batch-size", type=_number(int, 1, 8192), default=16, help="default 16")
    p.add_argument("--steps", type=_number(int, 1, 10_000), default=4,
                   help="training steps per timing (default 4)")
    p.add_argument("--rounds", type=_number(int, 1, 1000), default=2,
                   help="timings per configuration, interleaved; the median is reported (default 2)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("lr-find", help="loss against a growing learning rate; suggests one")
    _add_recipe_args(p)
    p.add_argument("--steps", type=_number(int, 5, 100_000), default=100, help="default 100")
    p.add_argument("--start-lr", type=_number(float, 1e-12, 1e3), default=1e-7, help="default 1e-7")
    p.add_argument("--end-lr", type=_number(float, 1e-12, 1e3), default=10.0, help="default 10")
    p.add_argument("--out", default=None,
                   help="the PNG to write (default lr_find.png; a new file or one simplecnn drew)")
    p.set_defaults(func=cmd_lr_find)

    p = sub.add_parser("launch", help="run a train command as N local processes (JAX data parallel)")
    p.add_argument("--num-processes", type=_number(int, 1, 256), required=True)
    p.add_argument("--port", type=_number(int, 1, 65535), default=None,
                   help="coordinator port (default: a free one)")
    p.add_argument("command_args", nargs=argparse.REMAINDER, metavar="train ...")
    p.set_defaults(func=cmd_launch)

    threshold = _number(float, 0.0, 1.0)
    p = sub.add_parser("evaluate", help="metrics, confusion matrix, ROC curve, most-wrong images")
    p.add_argument("run_dir")
    p.add_argument("data_dir", help="class sub-folders named as in training")
    p.add_argument("--out", default=None, help="where to write (default RUN_DIR/evaluation)")
    p.add_argument("--threshold", type=threshold, default=0.5, help="decision threshold (binary runs)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average over each image and its mirror image")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="classify images: one CSV row per image")
    p.add_argument("run_dir")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or glob patterns")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--output", default=None,
                   help="write to this file instead of stdout (a new file, or one simplecnn wrote)")
    p.add_argument("--threshold", type=threshold, default=0.5, help="decision threshold (binary runs)")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average over each image and its mirror image")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("explain", help="Grad-CAM heatmaps: which parts of each image drove the prediction")
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or glob patterns")
    p.add_argument("--layer", default=None, help="layer to explain (default: the last convolution)")
    p.add_argument("--class", dest="class_name", default=None,
                   help="explain this class (default: the predicted one)")
    p.add_argument("--out", default=None, help="where to write the PNGs (default RUN_DIR/explain)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("export", help="the model for other runtimes, checked against Keras")
    p.add_argument("run_dir")
    p.add_argument("--format", required=True, choices=["keras", "saved_model", "onnx", "litert"])
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="post-training int8 quantization (onnx, litert)")
    p.add_argument("--out", default=None, help="folder to write (default RUN_DIR/export/FORMAT)")
    p.add_argument("--check-images", type=_number(int, 1, 100_000), default=64,
                   help="validation images the export is checked on (default 64)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="HTTP API and web page for a run's model")
    p.add_argument("run_dir")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=_number(int, 1, 65535), default=8000, help="default 8000")
    p.add_argument("--max-upload-mb", type=_number(int, 1, 1024), default=10, help="default 10")
    p.add_argument("--max-batch", type=_number(int, 1, 1024), default=16,
                   help="most concurrent requests gathered into one model call (1: no batching; default 16)")
    p.add_argument("--quiet", action="store_true", help="no access log")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="the three styles, their proof, and a real training run")
    p.add_argument("--out", default=None, help="demo folder (default runs/demo)")
    p.add_argument("--style", default="functional", choices=STYLE_NAMES)
    p.add_argument("--epochs", type=_number(int, 1, 10_000), default=30, help="default 30")
    p.add_argument("--seed", type=_number(int, 0, 2**32 - 1), default=0, help="default 0")
    p.add_argument("--quiet-progress", action="store_true", help="one line per epoch, no bar")
    p.set_defaults(func=cmd_demo)
    return parser


def _quiet_backends() -> None:
    """Import Keras (and its backend) with TensorFlow's C++ start-up chatter silenced.

    TensorFlow prints oneDNN and CUDA-probing notices on file descriptor 2 while it is
    imported, before its log level applies; they are noise to a CLI user. Python errors raised
    by the import still propagate and are printed once stderr is back.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "keras" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``simplecnn`` command. Returns the exit code."""
    # File names are bytes the user chose: print those that are not UTF-8 as the same bytes.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and getattr(stream, "encoding", "").lower().replace("-", "") == "utf8":
            stream.reconfigure(errors="surrogateescape")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        if not args.debug:
            _quiet_backends()
        return func(args)
    except (SimplecnnError, OSError) as exc:
        # Ours on purpose (UsageError: yours to fix, 2; TrainingError/BackendError: 1), or the
        # operating system refusing a path the user gave (a permission, a missing folder).
        if args.debug:
            raise
        _say(f"simplecnn {args.command}: error: {_one_line(exc)}")
        return 2 if isinstance(exc, (UsageError, OSError)) else 1
    except KeyboardInterrupt:
        _say(f"simplecnn {args.command}: interrupted")
        return 130
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        if args.debug:
            raise
        _say(f"simplecnn {args.command}: internal error (a bug in simplecnn; please report it): "
             f"{type(exc).__name__}: {_one_line(exc)} (run again with --debug for the traceback)")  # fmt: skip
        return 1
