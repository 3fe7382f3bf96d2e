"""Every command, its output pointed at what the user owns: refused, and nothing changes."""

from __future__ import annotations

import pytest
from catalogue import OUTPUT_PATHS
from world import fill, one_line_exit_2, snapshot

from simplecnn.cli import main


@pytest.mark.parametrize("template, what", OUTPUT_PATHS, ids=[w for _, w in OUTPUT_PATHS])
def test_an_output_on_what_the_user_owns_is_refused_and_nothing_changes(world, template, what, capsys):
    before = snapshot(world["ROOT"])
    capsys.readouterr()
    code = main(fill(template, world))
    err = capsys.readouterr().err
    one_line_exit_2(code, err)
    assert snapshot(world["ROOT"]) == before, f"{what}: something changed"
