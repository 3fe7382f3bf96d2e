"""The ``simplecnn`` command: parse arguments, call one library function, print.

No ML logic lives here. A user error is one line on stderr and exit code 2; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any, Callable

from simplecnn.config import PRECISIONS
from simplecnn.errors import TrainingError, UsageError

__all__ = ["main", "UsageError"]

BACKENDS = ("tensorflow", "jax", "torch")
STYLE_NAMES = ("sequential", "functional", "subclassing")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _shape(text: str) -> tuple[int, int, int]:
    parts = text.replace("x", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected HEIGHT,WIDTH,CHANNELS such as 256,256,3, got {text!r}"
        )
    return shape  # type: ignore[return-value]


def _model_config(args: argparse.Namespace) -> Any:
    from simplecnn.config import ModelConfig

    return ModelConfig(input_shape=args.input_shape, num_classes=args.num_classes)


def _styles(choice: str) -> list[str]:
    from simplecnn.models import STYLES

    return list(STYLES) if choice == "all" else [choice]


# --- commands ---------------------------------------------------------------------------------


def cmd_summary(args: argparse.Namespace) -> int:
    from simplecnn.costs import format_cost, model_cost
    from simplecnn.models import build_model

    config = _model_config(args)
    for style in _styles(args.style):
        model = build_model(style, config)
        print(f"== {style} ==")
        model.summary(expand_nested=args.expand_nested)
        print(format_cost(model_cost(model)))
        print()
    return 0


def _compare_rows_other_backend(backend: str, args: argparse.Namespace) -> list[dict]:
    """Run ``compare --json`` under another backend in a child process (one backend a process)."""
    cmd = [
        sys.executable, "-m", "simplecnn", "--backend", backend, "compare", "--json",
        "--input-shape", ",".join(map(str, args.input_shape)),
        "--num-classes", str(args.num_classes),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.stdout.strip().startswith("["):
        return json.loads(done.stdout)
    reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return [{"style": "-", "backend": backend, "ok": False, "failures": [reason]}]


def _installed_backends() -> list[str]:
    import importlib.util

    modules = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
    return [b for b in BACKENDS if importlib.util.find_spec(modules[b]) is not None]


def _backend_list(text: str, current: str) -> list[str]:
    """--backends: "current", "all" / "installed", or a comma list of backend names."""
    if text == "current":
        return [current]
    if text in ("all", "installed"):
        return _installed_backends()
    backends = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise UsageError(
            f"Unknown backend(s) {unknown or [text]} in --backends. Allowed: "
            f"{', '.join(BACKENDS)}, all (or installed), current"
        )
    missing = [b for b in backends if b not in _installed_backends()]
    if missing:
        raise UsageError(
            f"backend(s) {missing} not installed; install the extra, e.g. pip install "
            f"'simplecnn[{missing[0]}]'"
        )
    return backends


def cmd_bench(args: argparse.Namespace) -> int:
    from simplecnn.bench import format_table, run_bench

    styles = list(STYLE_NAMES) if args.styles == "all" else [s.strip() for s in args.styles.split(",")]
    for style in styles:
        if style not in STYLE_NAMES:
            raise UsageError(f"Unknown style {style!r} in --styles. Allowed: all, {', '.join(STYLE_NAMES)}")
    backends = _backend_list(args.backends, os.environ.get("KERAS_BACKEND", "tensorflow"))
    report = run_bench(styles, backends, image_size=args.image_size, batch_size=args.batch_size,
                       steps=args.steps, rounds=args.rounds,
                       progress=lambda m: print(m, file=sys.stderr, flush=True))  # fmt: skip
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def _format_compare(rows: list[dict]) -> str:
    header = (
        "style", "backend", "total", "trainable", "non-train", "output",
        "max|dout|", "max|dgrad|", "save/load", "plot_model", "ok",
    )  # fmt: skip
    table = [header]
    for r in rows:
        if "total_params" not in r:
            table.append((r["style"], r["backend"], *["-"] * 8, "FAIL"))
            continue
        table.append(
            (
                r["style"],
                r["backend"],
                f"{r['total_params']:,}",
                f"{r['trainable_params']:,}",
                f"{r['non_trainable_params']:,}",
                "(" + ", ".join("None" if d is None else str(d) for d in r["output_shape"]) + ")",
                f"{r['max_output_diff']:.2e}",
                f"{r['max_grad_diff']:.2e}",
                f"{r['save_load_diff']:.2e}",
                "yes" if r["plot_ok"] else "NO",
                "ok" if r["ok"] else "FAIL",
            )
        )
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in table]
    lines.insert(1, "-" * len(lines[0]))
    for r in rows:
        for failure in r.get("failures", []):
            lines.append(f"FAIL {r['style']} on {r['backend']}: {failure}")
    return "\n".join(lines)


def cmd_compare(args: argparse.Namespace) -> int:
    from simplecnn.equivalence import TOLERANCE

    current = os.environ.get("KERAS_BACKEND", "tensorflow")
    backends = _backend_list(args.backends, current)
    rows: list[dict] = []
    for backend in backends:
        if backend == current:
            from simplecnn.equivalence import compare_styles

            checks = compare_styles(_model_config(args), plot_dir=args.plot_dir)
            rows += [c.to_dict() for c in checks]
        else:
            rows += _compare_rows_other_backend(backend, args)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(
            "Each style gets the Functional model's (random) weights, then must match it: "
            f"outputs in inference mode and gradients of one training step within {TOLERANCE:g}, "
            "a .keras save/load round trip, and a plot_model drawing."
        )
        print(_format_compare(rows))
    return 0 if rows and all(r["ok"] for r in rows) else 1


def _print_skipped(skipped: list, where: str) -> None:
    if not skipped:
        return
    print(f"skipped {len(skipped)} file(s) ({where}):", file=sys.stderr)
    for s in skipped[:20]:
        print(f"  {s.path}: {s.reason}", file=sys.stderr)
    if len(skipped) > 20:
        print(f"  ... and {len(skipped) - 20} more", file=sys.stderr)


def _default_run_dir(style: str) -> str:
    import time

    return os.path.join("runs", time.strftime("%Y%m%d-%H%M%S") + f"-{style}")


# TrainConfig fields the train and lr-find commands take as flags (None: the recipe's value).
_RECIPE_FLAGS = (
    "style", "image_size", "epochs", "batch_size", "validation_split", "seed", "augment",
    "class_weight", "optimizer", "weight_decay", "learning_rate", "schedule", "warmup_epochs",
    "precise_bn", "ema_epochs", "patience", "cache", "time_budget", "precision",
)  # fmt: skip


def _train_config(args: argparse.Namespace) -> Any:
    """TrainConfig from the recipe (--recipe) and whichever flags were given."""
    from simplecnn.config import PLAIN_RECIPE, TrainConfig

    values = dict(PLAIN_RECIPE) if getattr(args, "recipe", "default") == "plain" else {}
    for name in _RECIPE_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    return TrainConfig(**values)


def cmd_train(args: argparse.Namespace) -> int:
    from simplecnn.config import TrainConfig
    from simplecnn.training import train

    config = _train_config(args)
    from simplecnn import distributed

    dist = distributed.from_env(args.coordinator, args.num_processes, args.process_id)
    if dist is not None:
        distributed.initialize(dist)
        if args.out is None:
            raise UsageError("a multi-process job needs --out, the same in every process")
    out = args.out or _default_run_dir(config.style)
    result = train(args.data_dir, out, config, overwrite=args.overwrite, resume=args.resume,
                   verbose=2 if args.quiet_progress else "auto")  # fmt: skip
    if not distributed.is_chief():
        return 0  # process 0 reports
    _print_skipped(result.skipped, f"recorded in {os.path.join(out, 'files.json')}")
    if result.stopped == "nan":
        print(f"simplecnn train: error: {result.message}", file=sys.stderr)
        return 1
    best = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.best.items()))
    print(f"trained {config.style} on {len(result.class_names)} classes {result.class_names} "
          f"in {result.seconds:.1f} s; best epoch {result.best_epoch}: {best}")  # fmt: skip
    if result.input_wait:
        print(f"waiting for input: {result.input_wait['fraction']:.1%} of training time "
              f"(worst epoch {result.input_wait['worst_epoch_fraction']:.1%})")  # fmt: skip
    print(f"run directory: {out}")
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    from simplecnn.lr_find import lr_find

    png = args.out or "lr_find.png"
    result = lr_find(args.data_dir, _train_config(args), start_lr=args.start_lr,
                     end_lr=args.end_lr, steps=args.steps, png=png)  # fmt: skip
    print(f"tried {len(result['lrs'])} learning rates from {result['lrs'][0]:.2g} to "
          f"{result['lrs'][-1]:.2g}; lowest loss at {result['min_loss_lr']:.2g}, steepest fall "
          f"at {result['steepest']:.2g}")  # fmt: skip
    print(f"suggested: --learning-rate {result['suggested']:.2g}   (plot: {result['png']})")
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    """Start N local processes of one multi-process job and watch them."""
    import signal
    import socket
    import time

    if not args.command_args or args.command_args[0] != "train":
        raise UsageError("launch runs a train command: simplecnn launch --num-processes 2 train DATA --out RUN")
    port = args.port
    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    procs = []
    for i in range(args.num_processes):
        env = {
            **os.environ,
            "KERAS_BACKEND": "jax",
            "SIMPLECNN_COORDINATOR": f"127.0.0.1:{port}",
            "SIMPLECNN_NUM_PROCESSES": str(args.num_processes),
            "SIMPLECNN_PROCESS_ID": str(i),
        }
        cmd = [sys.executable, "-m", "simplecnn", *(["--debug"] if args.debug else []), *args.command_args]
        procs.append(subprocess.Popen(cmd, env=env))
    failed = None
    try:
        while True:
            codes = [p.poll() for p in procs]  # poll every process, each time
            failed = next(((i, c) for i, c in enumerate(codes) if c not in (None, 0)), None)
            if failed or all(c == 0 for c in codes):
                break
            time.sleep(0.2)
    finally:
        if failed or any(p.poll() is None for p in procs):
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            deadline = time.time() + 10
            for p in procs:
                try:
                    p.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    p.kill()
    if failed:
        i, code = failed
        print(f"simplecnn launch: error: process {i} of {args.num_processes} exited with code {code}; "
              "stopped the others (run the same command again to resume from the last backup)",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from simplecnn.training import evaluate

    m = evaluate(args.run_dir, args.data_dir, out_dir=args.out, threshold=args.threshold, tta=args.tta)
    if args.json:
        print(json.dumps({k: v for k, v in m.items()}, indent=2))
        return 0
    _print_skipped([type("S", (), s)() for s in m["skipped"]], "not evaluated")
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
    import csv
    import io

    from simplecnn.training import predict

    rows, skipped = predict(args.run_dir, args.paths, threshold=args.threshold, tta=args.tta)
    if args.format == "json":
        text = json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    else:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["path", "label", "probability"])
        for r in rows:
            writer.writerow([r["path"], r["label"], f"{r['probability']:.6f}"])
        text = buf.getvalue()
    if args.output:
        tmp = args.output + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, args.output)
        print(f"wrote {len(rows)} predictions to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    _print_skipped(skipped, "not predicted")
    if not rows:
        raise UsageError("no readable image among the given paths")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from simplecnn.data import Skipped, list_images, load_image
    from simplecnn.errors import DataError
    from simplecnn.explain import display_image, explain_picture
    from simplecnn.runs import load_run, write_json

    run = load_run(args.run_dir)
    names = run.class_names
    class_index = None
    if args.class_name is not None:
        if args.class_name not in names:
            raise UsageError(f"unknown class {args.class_name!r} for --class. Allowed: {', '.join(names)}")
        class_index = names.index(args.class_name)
    files, skipped = list_images(args.images)
    out = args.out or os.path.join(args.run_dir, "explain")
    os.makedirs(out, exist_ok=True)
    rows = []
    used: set[str] = set()
    for path in files:
        try:
            pixels = load_image(path, run.image_size, run.channels)
            shown = display_image(path)
        except DataError as exc:
            skipped.append(Skipped(path, str(exc).split(": ", 1)[-1]))
            continue
        figure, cam = explain_picture(run.model, pixels, shown, names, args.layer, class_index)
        i = int(cam.probabilities[0].argmax())  # the prediction (--class may explain another)
        label, prob = names[i], float(cam.probabilities[0, i])
        stem = os.path.splitext(os.path.basename(path))[0]
        name, n = f"{stem}_gradcam.png", 1
        while name in used:  # same file name in two folders
            n += 1
            name = f"{stem}_{n}_gradcam.png"
        used.add(name)
        target = os.path.join(out, name)
        figure.save(target + ".tmp.png")
        os.replace(target + ".tmp.png", target)
        rows.append({"path": path, "label": label, "probability": prob, "layer": cam.layer,
                     "explains": names[int(cam.class_indices[0])], "png": target})
        print(f"{path}: {label} ({prob:.3f}) -> {target}")
    write_json(os.path.join(out, "explain.json"), rows)
    _print_skipped(skipped, "not explained")
    if not rows:
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
               f"({c['accuracy_change']:+.4f})")
    tol = f" (tolerance {c['tolerance']:g})" if c["tolerance"] is not None else ""
    print(f"wrote {result.path}")
    print(f"check on {c['images']}: max |export - keras| = {c['max_abs_difference']:.2e}{tol}, "
          f"same label {c['label_agreement']:.1%}{acc}; {c['export_img_per_s']:.1f} img/s "
          f"(Keras {c['keras_img_per_s']:.1f}); {c['artifact_bytes'] / 1e6:.2f} MB")
    print(f"check {'passed' if c['passed'] else 'FAILED'}: {os.path.join(result.out_dir, 'check.json')}")
    return 0 if c["passed"] else 1


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise UsageError("serve needs FastAPI and uvicorn: pip install 'simplecnn[serve]'") from None
    from simplecnn.serve import create_app

    app = create_app(args.run_dir, max_upload_bytes=args.max_upload_mb * 1024 * 1024,
                     max_batch=args.max_batch)  # fmt: skip
    print(f"serving {args.run_dir} on http://{args.host}:{args.port}/ (API: /predict, /health, /docs)",
          file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning" if args.quiet else "info")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile
    import time

    from simplecnn.config import TrainConfig
    from simplecnn.demo import write_lfw_folders
    from simplecnn.equivalence import compare_styles
    from simplecnn.models import STYLES, build_model
    from simplecnn.training import evaluate, predict, train

    start = time.perf_counter()
    out = args.out or os.path.join("runs", "demo")
    print("== 1. The seed's model in three Keras styles ==")
    for style in STYLES:
        build_model(style).summary()
    print("\n== 2. Proof they are one model (simplecnn compare) ==")
    rows = [c.to_dict() for c in compare_styles()]
    print(_format_compare(rows))
    print("\n== 3. Train on real images: faces vs. background from LFW (scikit-image's lfw_subset) ==")
    data = os.path.join(out, "data")
    if os.path.isdir(out) and not set(os.listdir(out)) <= {"data", "run"}:
        raise UsageError(f"{out}: exists and is not a demo folder; choose another --out")
    import shutil

    shutil.rmtree(out, ignore_errors=True)  # a previous demo's data/ and run/
    counts = write_lfw_folders(data, seed=args.seed)
    print(f"wrote {sum(sum(c.values()) for c in counts.values())} PNG files to {data}: "
          + "; ".join(f"{k} {v}" for k, v in counts.items()))  # fmt: skip
    run_dir = os.path.join(out, "run")
    config = TrainConfig(style=args.style, image_size=32, epochs=args.epochs, batch_size=16,
                         seed=args.seed, learning_rate=3e-3, patience=8)  # fmt: skip
    result = train(data, run_dir, config, verbose=2 if args.quiet_progress else "auto")
    print(f"trained {args.style} in {result.seconds:.1f} s; best epoch {result.best_epoch}: "
          f"val_accuracy {result.best.get('val_accuracy', float('nan')):.3f}")  # fmt: skip
    print("\n== 4. Evaluate on the held-out test images ==")
    m = evaluate(run_dir, os.path.join(data, "test"))
    print(f"test accuracy {m['accuracy']:.3f}, ROC-AUC {m['roc_auc']:.3f}, F1 {m['f1']:.3f} "
          f"on {m['n']} images never seen in training")  # fmt: skip
    preds, _ = predict(run_dir, [os.path.join(data, "test", "face")])
    print(f"predict on {os.path.join(data, 'test', 'face')}: "
          f"{sum(p['label'] == 'face' for p in preds)}/{len(preds)} called 'face'")
    print(f"\nrun directory: {run_dir} (model.keras, run.json, history.csv, curves.png, logs/, "
          "evaluation/confusion_matrix.png, roc_curve.png, most_wrong.png)")
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    ok = all(r["ok"] for r in rows)
    return 0 if ok else 1


# --- parser -----------------------------------------------------------------------------------


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--input-shape", type=_shape, default=(256, 256, 3), metavar="H,W,C",
        help="image shape the model takes (default: 256,256,3, the seed's)",
    )  # fmt: skip
    p.add_argument(
        "--num-classes", type=_positive_int, default=1, metavar="N",
        help="1: sigmoid head (the seed's, default); N >= 2: softmax over N classes",
    )  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what, and where to look) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _add_recipe_args(p: argparse.ArgumentParser) -> None:
    """DATA_DIR and the recipe flags shared by train and lr-find (defaults: TrainConfig's)."""
    p.add_argument("data_dir", help="one sub-folder per class, or train/ and val/ folders of that form")
    p.add_argument("--recipe", choices=["default", "plain"], default="default",
                   help="plain: the seed tutorial's (Adam, constant lr, batch 32, no augmentation, "
                   "no BatchNorm recompute), for comparison")
    p.add_argument("--style", choices=STYLE_NAMES, help="default functional")
    p.add_argument("--image-size", type=_positive_int, help="side in pixels (default 256)")
    p.add_argument("--epochs", type=_positive_int, help="at most this many (default 20)")
    p.add_argument("--batch-size", type=_positive_int, help="default 16")
    p.add_argument("--validation-split", type=float,
                   help="held-out fraction when there is no val/ folder (default 0.2; 0: none)")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random flip, rotation and zoom (default: on below 10,000 training images)")
    p.add_argument("--class-weight", choices=["balanced"], default=None)
    p.add_argument("--optimizer", choices=["adam", "adamw"], help="default adam")
    p.add_argument("--weight-decay", type=float, help="AdamW's (default 0.004)")
    p.add_argument("--learning-rate", type=float, help="peak learning rate (default 1e-3)")
    p.add_argument("--schedule", choices=["cosine", "constant"],
                   help="cosine: warm-up then cosine decay (default)")
    p.add_argument("--warmup-epochs", type=int, help="default 1")
    p.add_argument("--precise-bn", action=argparse.BooleanOptionalAction, default=None,
                   help="recompute BatchNorm statistics before each validation (default on)")
    p.add_argument("--ema-epochs", type=float, metavar="N",
                   help="validate and keep a moving average of the weights over about N epochs "
                   "(0: raw weights)")
    p.add_argument("--patience", type=_positive_int, help="stop after N epochs without a better validation loss (default: off)")
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=None,
                   help="keep decoded images in memory (default: when they fit in 1 GiB)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="training arithmetic (default auto: bfloat16 where the hardware is fast "
                   "at it); the kept model is float32")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="stop before an epoch that would run past this much training time")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="simplecnn",
        description="The seed tutorial's CNN classifier in three Keras styles: "
        "summarize, compare, train, evaluate, predict.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument(
        "--backend", choices=BACKENDS, default=None,
        help="Keras backend (default: $KERAS_BACKEND, else tensorflow)",
    )  # fmt: skip
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )

    p = sub.add_parser("summary", help="Keras summaries plus FLOPs and activation memory")
    p.add_argument(
        "--style", default="all", choices=["all", *STYLE_NAMES],
    )  # fmt: skip
    p.add_argument("--expand-nested", action="store_true", help="show the subclassed blocks' layers")
    _add_model_args(p)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("compare", help="prove the three styles are one model (exit 1 if not)")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.add_argument(
        "--backends", default="current", metavar="LIST",
        help="current (default), all (every installed backend) or a comma list",
    )  # fmt: skip
    p.add_argument("--plot-dir", default=None, help="keep the plot_model PNGs in this folder")
    _add_model_args(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("train", help="train on a folder of images; writes a run directory")
    _add_recipe_args(p)
    p.add_argument("--out", default=None, help="run directory (default runs/DATE-STYLE)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--resume", action="store_true",
                   help="continue the unfinished run in --out (the same command does this anyway)")
    p.add_argument("--quiet-progress", action="store_true", help="one line per epoch, no bar")
    p.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="multi-process job: process 0's address ($SIMPLECNN_COORDINATOR)")
    p.add_argument("--num-processes", type=_positive_int, default=None,
                   help="multi-process job: how many ($SIMPLECNN_NUM_PROCESSES)")
    p.add_argument("--process-id", type=int, default=None,
                   help="multi-process job: this one, 0..N-1 ($SIMPLECNN_PROCESS_ID)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="train and predict img/s per style and backend vs the roofline")
    p.add_argument("--styles", default="all", help="all (default) or a comma list")
    p.add_argument("--backends", default="installed", metavar="LIST",
                   help="installed (default), current, or a comma list")
    p.add_argument("--image-size", type=_positive_int, default=256)
    p.add_argument("--batch-size", type=_positive_int, default=16)
    p.add_argument("--steps", type=_positive_int, default=4, help="training steps per timing")
    p.add_argument("--rounds", type=_positive_int, default=2,
                   help="timings per configuration, interleaved; the median is reported")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("lr-find", help="loss against a growing learning rate; suggests one")
    _add_recipe_args(p)
    p.add_argument("--steps", type=_positive_int, default=100)
    p.add_argument("--start-lr", type=float, default=1e-7)
    p.add_argument("--end-lr", type=float, default=10.0)
    p.add_argument("--out", default=None, help="the PNG to write (default lr_find.png)")
    p.set_defaults(func=cmd_lr_find)

    p = sub.add_parser("launch", help="run a train command as N local processes (JAX data parallel)")
    p.add_argument("--num-processes", type=_positive_int, required=True)
    p.add_argument("--port", type=int, default=None, help="coordinator port (default: a free one)")
    p.add_argument("command_args", nargs=argparse.REMAINDER, metavar="train ...")
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("evaluate", help="metrics, confusion matrix, ROC curve, most-wrong images")
    p.add_argument("run_dir")
    p.add_argument("data_dir", help="class sub-folders named as in training")
    p.add_argument("--out", default=None, help="where to write (default RUN_DIR/evaluation)")
    p.add_argument("--threshold", type=float, default=0.5, help="decision threshold (binary runs)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average over each image and its mirror image")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="classify images: one CSV row per image")
    p.add_argument("run_dir")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or glob patterns")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--output", default=None, help="write to this file instead of stdout")
    p.add_argument("--threshold", type=float, default=0.5, help="decision threshold (binary runs)")
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
    p.add_argument("--check-images", type=_positive_int, default=64,
                   help="validation images the export is checked on (default 64)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="HTTP API and web page for a run's model")
    p.add_argument("run_dir")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-upload-mb", type=_positive_int, default=10)
    p.add_argument("--max-batch", type=_positive_int, default=16,
                   help="most concurrent requests gathered into one model call (1: no batching)")
    p.add_argument("--quiet", action="store_true", help="no access log")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="the three styles, their proof, and a real training run")
    p.add_argument("--out", default=None, help="demo folder (default runs/demo)")
    p.add_argument("--style", default="functional", choices=STYLE_NAMES)
    p.add_argument("--epochs", type=_positive_int, default=30)
    p.add_argument("--seed", type=int, default=0)
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        if not args.debug:
            _quiet_backends()
        return func(args)
    except (ValueError, OSError, TrainingError) as exc:
        if args.debug:
            raise
        print(f"simplecnn {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1 if isinstance(exc, TrainingError) else 2
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        if args.debug:
            raise
        print(f"simplecnn {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(run again with --debug for the traceback)", file=sys.stderr)  # fmt: skip
        return 1
    except KeyboardInterrupt:
        print(f"simplecnn {args.command}: interrupted", file=sys.stderr)
        return 130
