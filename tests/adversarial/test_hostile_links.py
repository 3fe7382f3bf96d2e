"""Links in a class folder never count an image under a class folder it does not sit in."""

from __future__ import annotations

import os
import time

import pytest
from catalogue import LINKS
from imagegen import make_folder

from simplecnn.data import scan_folder


@pytest.mark.parametrize("name, target, what", LINKS, ids=[w for _, _, w in LINKS])
def test_a_link_in_a_class_folder_counts_nothing_from_elsewhere(tmp_path, name, target, what):
    data = make_folder(str(tmp_path / "photos"), per_class=4, formats=("png",))
    cats = os.path.join(data, "cats")
    if name == "chain":  # cats/chain -> cats/chain2 -> the data folder
        os.symlink(data, os.path.join(cats, "chain2"))
    dest = target if target == "/" else os.path.normpath(os.path.join(data, target))
    os.symlink(dest, os.path.join(cats, name))
    start = time.perf_counter()
    dataset = scan_folder(data, validation_split=0.0)
    assert time.perf_counter() - start < 10, "the link was walked"
    real_cats = os.path.realpath(cats)
    counted = {label: [] for label in range(2)}
    for path, label in dataset.train:
        counted[label].append(os.path.realpath(path))
    # Every image counted as a cat physically sits in cats/ (or is a photo outside the data),
    # every dog in dogs/, and no file is counted twice.
    assert all(p.startswith(real_cats + os.sep) for p in counted[0]), what
    assert all(p.startswith(os.path.realpath(os.path.join(data, "dogs")) + os.sep) for p in counted[1])
    everything = counted[0] + counted[1]
    assert len(everything) == len(set(everything)) == 8, (what, len(everything))
    link = os.path.join(cats, name)
    reasons = {s.path: s.reason for s in dataset.skipped}  # the link is named, with the reason
    assert any(p == link or p.startswith(link + os.sep) for p in reasons), (what, reasons)


def test_a_link_to_a_photo_outside_the_data_is_used(tmp_path):
    """Photo libraries linked into class folders (a common way to avoid copies) still work."""
    data = make_folder(str(tmp_path / "photos"), per_class=3, formats=("png",))
    library = make_folder(str(tmp_path / "library"), classes=("cats",), per_class=1, seed=9, formats=("png",))
    os.symlink(os.path.join(library, "cats", "img_000.png"), os.path.join(data, "cats", "from_library.png"))
    dataset = scan_folder(data, validation_split=0.0)
    assert os.path.join(data, "cats", "from_library.png") in [p for p, _ in dataset.train]
