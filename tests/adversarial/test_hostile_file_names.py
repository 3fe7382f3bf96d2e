"""File names are bytes the user chose: they flow through every command and round-trip."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest
from catalogue import FILE_NAMES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imagegen import COLOURS, make_folder, make_image
from PIL import Image

from simplecnn.cli import main
from simplecnn.config import TrainConfig
from simplecnn.data import scan_folder
from simplecnn.files import dumps_json, read_json, write_json
from simplecnn.training import train


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    """A data folder whose cats/ holds one image under each hostile name, and a run trained on it."""
    import numpy as np

    root = tmp_path_factory.mktemp("names")
    data = make_folder(str(root / "photos"), per_class=8)
    rng = np.random.default_rng(1)
    cats = os.fsencode(os.path.join(data, "cats"))
    for name, _ in FILE_NAMES:
        make_image(COLOURS["cats"], rng).save(os.path.join(cats, name), "PNG")
    run = str(root / "run")
    train(data, run, TrainConfig(image_size=32, epochs=1, batch_size=8, validation_split=0.0), verbose=0)
    return data, run


def _paths(data: str) -> dict[bytes, str]:
    cats = os.path.join(data, "cats")
    return {name: os.path.join(cats, os.fsdecode(name)) for name, _ in FILE_NAMES}


def test_every_name_is_trained_on_and_files_json_gives_back_its_bytes(named):
    data, run = named
    record = read_json(os.path.join(run, "files.json"))
    used = {os.fsencode(os.path.join(record["data_dir"], rel)) for rel, _ in record["train"]}
    for name, what in FILE_NAMES:
        assert os.fsencode(_paths(data)[name]) in used, what
    assert not record["skipped"]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_predict_lists_every_name_as_its_bytes(named, fmt, tmp_path, capsysbinary):
    data, run = named
    out = tmp_path / f"p.{fmt}"
    assert main(["predict", run, os.path.join(data, "cats"), "--format", fmt, "--output", str(out)]) == 0
    raw = out.read_bytes()
    if fmt == "json":
        paths = [os.fsencode(r["path"]) for r in json.loads(raw.decode("utf-8"))]
    else:
        text = raw.decode("utf-8", "surrogateescape")
        paths = [os.fsencode(r[0]) for r in list(csv.reader(io.StringIO(text, newline="")))[1:]]
    for name, what in FILE_NAMES:
        assert os.fsencode(_paths(data)[name]) in paths, what
    # stdout too: the same bytes, not an error
    assert main(["predict", run, _paths(data)[FILE_NAMES[0][0]]]) == 0
    assert FILE_NAMES[0][0] in capsysbinary.readouterr().out


def test_explain_and_evaluate_take_every_name(named, tmp_path, capsysbinary):
    data, run = named
    assert main(["explain", run, os.path.join(data, "cats"), "--out", str(tmp_path / "ex")]) == 0
    rows = read_json(str(tmp_path / "ex" / "explain.json"))
    assert {os.fsencode(r["path"]) for r in rows} >= {os.fsencode(p) for p in _paths(data).values()}
    assert all(os.path.isfile(r["png"]) for r in rows)
    assert main(["evaluate", run, data, "--out", str(tmp_path / "ev")]) == 0
    assert (tmp_path / "ev" / "most_wrong.png").exists() or read_json(str(tmp_path / "ev" / "report.json"))["n"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.binary(min_size=1, max_size=40).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")), min_size=1, max_size=6, unique=True))
def test_any_name_the_filesystem_allows_is_scanned_and_round_trips_through_json(tmp_path_factory, names):
    root = tmp_path_factory.mktemp("hyp")
    make_folder(str(root / "d"), per_class=2)
    cats = os.fsencode(str(root / "d" / "cats"))
    for name in names:
        Image.new("RGB", (8, 8), (200, 60, 50)).save(os.path.join(cats, name + b".png"), "PNG")
    dataset = scan_folder(str(root / "d"), validation_split=0.0)
    found = {os.fsencode(p) for p, _ in dataset.train} | {os.fsencode(s.path) for s in dataset.skipped}
    for name in names:
        assert os.path.join(cats, name + b".png") in found
    write_json(str(root / "r.json"), [p for p, _ in dataset.train])
    assert [os.fsencode(p) for p in read_json(str(root / "r.json"))] == [os.fsencode(p) for p, _ in dataset.train]
    assert dumps_json("x").startswith('"')
