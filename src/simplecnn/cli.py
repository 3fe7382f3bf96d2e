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

__all__ = ["main", "UsageError"]

BACKENDS = ("tensorflow", "jax", "torch")


class UsageError(ValueError):
    """A problem with what the user asked for: reported in one line, exit code 2."""


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
    if args.backends == "current":
        backends = [current]
    elif args.backends == "all":
        backends = _installed_backends()
    else:
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown:
            raise UsageError(
                f"Unknown backend(s) {unknown} in --backends. Allowed: {', '.join(BACKENDS)}, "
                "all, current"
            )
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simplecnn",
        description="The seed tutorial's CNN classifier in three Keras styles: "
        "summarize, compare, train, evaluate, predict.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument(
        "--backend", choices=BACKENDS, default=None,
        help="Keras backend (default: $KERAS_BACKEND, else tensorflow)",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("summary", help="Keras summaries plus FLOPs and activation memory")
    p.add_argument(
        "--style", default="all", choices=["all", "sequential", "functional", "subclassing"],
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
    except (ValueError, OSError) as exc:
        if args.debug:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"simplecnn {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"simplecnn {args.command}: interrupted", file=sys.stderr)
        return 130
