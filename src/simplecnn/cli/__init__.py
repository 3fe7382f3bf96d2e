"""The ``simplecnn`` command: parse arguments, call one library function, print.

No ML logic lives here (``parser.py`` reads the arguments, ``commands.py`` calls the library). The
recipe flags of ``train`` and ``lr-find`` are built from :class:`simplecnn.config.TrainConfig`'s
fields (help, default, bounds), so nothing is written twice. A user error
(:class:`simplecnn.errors.UsageError`) is one line on stderr and exit code 2; anything else is a
bug, said as such, with the traceback under ``--debug``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from simplecnn.cli.parser import build_parser, train_config
from simplecnn.errors import SimplecnnError, UsageError

__all__ = ["main", "build_parser", "train_config"]


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
    except ImportError:
        raise UsageError("this command needs Keras and a backend, which this install lacks: pip "
                         "install 'simplecnn[train]' (a run exported to ONNX predicts and serves "
                         "without: --runtime onnx)") from None  # fmt: skip
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _needs_keras(args: argparse.Namespace) -> bool:
    """False for predict, evaluate and serve answered by ONNX Runtime: they never import Keras,
    so a light install (no Keras) works and starts in a fraction of a second."""
    if args.command == "check":
        return bool(args.labels or args.run)
    if args.command not in ("predict", "evaluate", "serve"):
        return args.command != "launch"
    from simplecnn.runtime import resolve_runtime

    try:
        return resolve_runtime(args.run_dir, args.runtime) == "keras"
    except SimplecnnError:
        return False  # the command itself will say what is wrong


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
    from simplecnn.cli import commands

    func: Callable[[argparse.Namespace], int] = getattr(commands, "cmd_" + args.command.replace("-", "_"))
    try:
        if not args.debug and _needs_keras(args):
            _quiet_backends()
        return func(args)
    except (SimplecnnError, OSError) as exc:
        # Ours on purpose (UsageError: yours to fix, 2; TrainingError/BackendError: 1), or the
        # operating system refusing a path the user gave (a permission, a missing folder).
        if args.debug:
            raise
        print(f"simplecnn {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, (UsageError, OSError)) else 1
    except KeyboardInterrupt:
        print(f"simplecnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        if args.debug:
            raise
        print(f"simplecnn {args.command}: internal error (a bug in simplecnn; please report it): "
              f"{type(exc).__name__}: {_one_line(exc)} (run again with --debug for the traceback)",
              file=sys.stderr)  # fmt: skip
        return 1
