"""Every numeric flag of every command, read from the parser itself (so a new flag is tested)."""

from __future__ import annotations

import argparse

from simplecnn.cli import build_parser

# What each command needs before its flags (placeholders the tests fill in).
POSITIONALS = {
    "summary": [], "compare": [], "train": ["DATA"], "bench": [], "lr-find": ["DATA"],
    "launch": ["--num-processes", "2"], "evaluate": ["RUN", "DATA"], "predict": ["RUN", "IMAGE"],
    "explain": ["RUN", "IMAGE"], "export": ["RUN", "--format", "keras"], "serve": ["RUN"],
    "demo": [], "check": ["DATA"],
}  # fmt: skip


def numeric_flags() -> list[tuple[str, str]]:
    """``(command, --flag)`` for every option that takes a number (or ``auto``) or a shape."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = []
    for command, p in sub.choices.items():
        for action in p._actions:
            kind = getattr(action.type, "__qualname__", "")
            if action.option_strings and kind.startswith(("_number", "_or_auto", "_shape")):
                out.append((command, action.option_strings[0]))
    return sorted(out)
