"""Every numeric flag, every absurd value: accepted within its stated bounds, else one line."""

from __future__ import annotations

import math

import pytest
from catalogue import FLAG_VALUES
from flags import POSITIONALS, numeric_flags
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simplecnn.cli import build_parser
from simplecnn.cli import train_config as _train_config

CASES = [(c, f, v) for c, f in numeric_flags() for v in FLAG_VALUES]


def _parse(command: str, flag: str, value: str, capsys):
    argv = [command, *POSITIONALS[command], f"{flag}={value}"]
    if command == "launch":
        argv.append("train")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        err = capsys.readouterr().err
        assert exc.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        return None
    return args


def _check_accepted(args, flag: str, value: str) -> None:
    """A value that parsed is a finite number (or shape) inside its bounds; a recipe builds."""
    got = getattr(args, flag.lstrip("-").replace("-", "_"))
    if got is None:  # only the word auto, where a flag takes it, parses to None
        assert value.strip().lower() == "auto", (flag, value)
        return
    for number in got if isinstance(got, tuple) else (got,):
        assert isinstance(number, (int, float)) and math.isfinite(number), (flag, value, got)
    if args.command in ("train", "lr-find"):
        _train_config(args)  # raises nothing: the parser's bounds are the config's


@pytest.mark.parametrize("command, flag, value", CASES, ids=[f"{c} {f}={v}" for c, f, v in CASES])
def test_a_flag_value_is_accepted_within_bounds_or_one_line_exit_2(command, flag, value, capsys):
    args = _parse(command, flag, value, capsys)
    if args is not None:
        assert value not in ("nan", "inf", "-inf", "abc", "", "99999999999999999999", "1e30"), (flag, value)
        _check_accepted(args, flag, value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(numeric_flags()), value=st.one_of(
    st.text(max_size=12), st.integers().map(str), st.floats().map(repr)))
def test_random_flag_text_is_accepted_within_bounds_or_one_line_exit_2(case, value, capsys):
    command, flag = case
    args = _parse(command, flag, value, capsys)
    if args is not None:
        _check_accepted(args, flag, value)
