"""simplecnn check: every planted copy, leak and conflict is found, nothing among distinct
pictures is, train warns and can leave copies out, and planted wrong labels rank first."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from simplecnn.check import check_folder
from simplecnn.cli import main
from simplecnn.data import scan_folder
from simplecnn.files import is_own_png

# Real photos shipped inside scikit-image (distinct pictures; `cat` is `chelsea` again).
PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "horse", "page",
          "text", "clock", "immunohistochemistry", "hubble_deep_field", "retina", "brick", "grass",
          "gravel", "colorwheel", "shepp_logan_phantom", "microaneurysms")  # fmt: skip


def _photo(name: str) -> Image.Image:
    import skimage.data

    pixels = getattr(skimage.data, name)()
    if pixels.dtype != np.uint8:
        pixels = (pixels / pixels.max() * 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    return image.convert("RGB")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """train/ and val/ folders of distinct photos, with planted copies. Returns the root and the
    planted pairs: (kind, path a, path b)."""
    root = tmp_path_factory.mktemp("check") / "photos"
    names = list(PHOTOS)
    paths = {}
    for i, name in enumerate(names):
        split, cls = ("val" if i % 5 == 4 else "train"), ("a" if i % 2 else "b")
        folder = root / split / cls
        folder.mkdir(parents=True, exist_ok=True)
        paths[name] = folder / f"{name}.png"
        _photo(name).save(paths[name])
    plants = []

    def plant(kind, source, split, cls, name, make):
        folder = root / split / cls
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        make(Image.open(paths[source]).convert("RGB"), target)
        plants.append((kind, str(paths[source]), str(target)))

    plant("exact", "coffee", "train", "b", "coffee_copy.png", lambda im, t: im.save(t))
    plant("near", "rocket", "train", "b", "rocket_q60.jpg", lambda im, t: im.save(t, quality=60))
    plant("near", "astronaut", "train", "b", "astronaut_half.png",
          lambda im, t: im.resize((im.width // 2, im.height // 2)).save(t))
    plant("near", "chelsea", "train", "a", "chelsea_bright.png",
          lambda im, t: ImageEnhance.Brightness(im).enhance(1.2).save(t))
    plant("near", "clock", "train", "b", "clock_crop.png",
          lambda im, t: im.crop((6, 6, im.width - 6, im.height - 6)).save(t))
    # a leak: a copy in validation of a training photo (same class)
    plant("leak", "grass", "val", "a" if names.index("grass") % 2 else "b", "grass_again.png", lambda im, t: im.save(t))
    # a conflict: a training photo filed again under the other class
    plant("conflict", "brick", "train", "a" if names.index("brick") % 2 == 0 else "b", "brick_other.png",
          lambda im, t: im.save(t))  # fmt: skip
    return root, plants


def _pairs(report, kind):
    key = {"exact": "exact", "near": "near", "leak": "leaks", "conflict": "conflicts"}[kind]
    out = []
    for g in report["groups"][key]:
        members = g["members"] if isinstance(g, dict) else g
        out.append({m["path"] for m in members})
    return out


def test_every_planted_copy_leak_and_conflict_is_found_and_nothing_else(planted):
    root, plants = planted
    report = check_folder(root, use_cache=False)
    for kind, a, b in plants:
        assert any({a, b} <= g for g in _pairs(report, kind)), (kind, a, b)
    grouped = set().union(*(g for k in ("exact", "near") for g in _pairs(report, k)))
    planted_paths = {p for _, a, b in plants for p in (a, b)}
    assert grouped == planted_paths, f"pictures grouped that are distinct: {grouped - planted_paths}"
    kinds = [f["kind"] for f in report["findings"]]
    assert kinds[:2] == ["conflict", "leak"]  # worst first
    assert report["images"] == len(PHOTOS) + len(plants)


def test_check_sees_the_files_train_would_use_and_skip(planted, tmp_path):
    root, _ = planted
    data = tmp_path / "photos"
    shutil.copytree(root, data)
    (data / "train" / "a" / "notes.txt").write_text("not an image")
    (data / "train" / "a" / "empty.png").write_bytes(b"")
    report = check_folder(data, use_cache=False)
    dataset = scan_folder(data)
    assert sorted(s["path"] for s in report["skipped"]) == sorted(s.path for s in dataset.skipped)
    assert report["images"] == len(dataset.train) + len(dataset.val)


def test_the_check_command_writes_its_report_and_sheets_and_refuses_the_data(planted, tmp_path, capsys):
    root, _ = planted
    out = tmp_path / "report"
    assert main(["check", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "label conflicts" in printed and "leaks" in printed
    report = json.loads((out / "report.json").read_text())
    for kind in ("exact", "near", "leaks", "conflicts"):
        assert is_own_png(str(out / f"{kind}.png")) and report["sheets"][kind].endswith(f"{kind}.png")
    assert main(["check", str(root), "--out", str(out)]) == 0  # its own report is replaced
    assert main(["check", str(root), "--out", str(root / "train")]) == 2
    assert "inside the data folder" in capsys.readouterr().err


def test_train_warns_records_and_can_leave_copies_out(planted, tmp_path, capsys):
    root, plants = planted
    before = {p: open(p, "rb").read() for _, a, b in plants for p in (a, b)}
    args = ["train", str(root), "--image-size", "32", "--epochs", "1", "--batch-size", "4", "--quiet-progress"]
    assert main([*args, "--out", str(tmp_path / "kept")]) == 0
    err = capsys.readouterr().err
    assert "warning: 1 picture(s) filed under two classes" in err and "check.json" in err
    assert main([*args, "--out", str(tmp_path / "dropped"), "--drop-duplicates"]) == 0
    files = json.loads((tmp_path / "dropped" / "files.json").read_text())
    used = {os.path.join(files["data_dir"], p) for p, _ in files["train"]}
    record = json.loads((tmp_path / "dropped" / "check.json").read_text())
    for kind, a, b in plants:
        in_train = {p for p in (a, b) if f"{os.sep}train{os.sep}" in p}
        if kind == "conflict" or len(in_train) < 2:  # conflicting, or leaked into validation
            assert not in_train & used, (kind, a, b)
        else:
            assert len(in_train & used) == 1, (kind, a, b)  # one of each group kept
    assert set(record["dropped"]) and all(os.path.exists(p) for p in record["dropped"])
    assert before == {p: open(p, "rb").read() for p in before}  # the user's files untouched


@pytest.mark.slow
def test_planted_wrong_labels_rank_first(tmp_path):
    """Three red images filed among the blue ones: k-fold out-of-sample probabilities put them
    at the top of the ranking."""
    from imagegen import make_folder
    from simplecnn.check.labels import label_issues

    data = make_folder(str(tmp_path / "d"), per_class=20)
    moved = []
    for name in sorted(os.listdir(os.path.join(data, "cats")))[:3]:
        target = os.path.join(data, "dogs", "planted_" + name)
        shutil.move(os.path.join(data, "cats", name), target)
        moved.append(target)
    result = label_issues(data, folds=3, image_size=16, time_budget=60, top=10)
    top = [r["path"] for r in result["ranking"][:6]]
    assert sum(p in top for p in moved) >= 2, (top, moved)
