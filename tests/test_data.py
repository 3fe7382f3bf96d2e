"""The folder pipeline: layouts, every image kind decoded the same way, skips recorded, batches."""

import io
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from imagegen import make_folder, make_split_folder
from PIL import Image

from simplecnn.data import (
    DataError,
    ImageBatches,
    decode_image,
    list_images,
    load_image,
    scale_pixels,
    scan_folder,
)


def _save(img: Image.Image, path, **kw) -> str:
    img.save(path, **kw)
    return str(path)


def test_classes_are_sorted_folder_names_and_split_is_seeded(tmp_path):
    make_folder(str(tmp_path), ("dogs", "cats"), per_class=10)
    a = scan_folder(tmp_path, validation_split=0.2, seed=1)
    assert a.class_names == ["cats", "dogs"] and a.layout == "classes"
    assert a.counts(a.val) == {"cats": 2, "dogs": 2}  # stratified
    assert a.counts(a.train) == {"cats": 8, "dogs": 8}
    assert scan_folder(tmp_path, 0.2, seed=1).val == a.val
    assert scan_folder(tmp_path, 0.2, seed=2).val != a.val
    assert not set(p for p, _ in a.train) & set(p for p, _ in a.val)
    none = scan_folder(tmp_path, validation_split=0.0)
    assert none.val == [] and len(none.train) == 20


@pytest.mark.parametrize("val_name", ["val", "validation"])
def test_split_layout_is_used_as_given(tmp_path, val_name):
    make_split_folder(str(tmp_path))
    if val_name != "val":
        os.rename(tmp_path / "val", tmp_path / val_name)
    d = scan_folder(tmp_path, validation_split=0.5)
    assert d.layout == "split"
    assert d.counts(d.train) == {"cats": 20, "dogs": 20}
    assert d.counts(d.val) == {"cats": 6, "dogs": 6}
    assert all(f"{os.sep}{val_name}{os.sep}" in p for p, _ in d.val)


def _kinds(tmp_path) -> dict[str, str]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8), "RGB")
    out = {
        "jpeg": _save(rgb, tmp_path / "a.jpg", quality=90),
        "png": _save(rgb, tmp_path / "a.png"),
        "bmp": _save(rgb, tmp_path / "a.bmp"),
        "webp": _save(rgb, tmp_path / "a.webp"),
        "gray": _save(rgb.convert("L"), tmp_path / "g.png"),
        "rgba": _save(rgb.convert("RGBA"), tmp_path / "t.png"),
        "palette": _save(rgb.convert("P"), tmp_path / "p.png"),
        "cmyk": _save(rgb.convert("CMYK"), tmp_path / "c.jpg"),
        "png16": _save(
            Image.fromarray((rng.integers(0, 65535, (30, 40))).astype(np.uint16)), tmp_path / "d.png"
        ),
        "tiny": _save(Image.new("RGB", (1, 1), (10, 20, 30)), tmp_path / "tiny.png"),
    }
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    out["gif"] = str(tmp_path / "anim.gif")
    return out


def test_every_image_kind_decodes_to_rgb_at_size(tmp_path):
    for kind, path in _kinds(tmp_path).items():
        arr = load_image(path, (16, 20))
        assert arr.shape == (16, 20, 3) and arr.dtype == np.uint8, kind
        assert load_image(path, (8, 8), channels=1).shape == (8, 8, 1), kind


def test_conversions_keep_the_picture(tmp_path):
    red = Image.new("RGB", (20, 20), (250, 10, 10))
    assert tuple(load_image(_save(red.convert("CMYK"), tmp_path / "c.jpg"), (4, 4))[0, 0]) == pytest.approx((250, 10, 10), abs=12)
    clear = Image.new("RGBA", (20, 20), (0, 0, 0, 0))  # fully transparent -> white
    assert load_image(_save(clear, tmp_path / "t.png"), (4, 4)).min() == 255
    deep = Image.fromarray(np.full((10, 10), 65535 // 2, np.uint16))  # 16-bit mid grey -> 127
    assert abs(int(load_image(_save(deep, tmp_path / "d.png"), (4, 4))[0, 0, 0]) - 127) <= 1
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    first = load_image(tmp_path / "a.gif", (4, 4))[0, 0]
    assert first[0] > 200 and first[2] < 50  # the first frame (red), not the second


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 20, 20))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "r.jpg") as im:
        arr = decode_image(im, (40, 20))  # shown upright: 20 wide, 40 tall
    assert arr[:10].mean() > 200 and arr[-10:].mean() < 50  # white half on top


def test_unusable_files_are_skipped_with_reasons(tmp_path):
    make_folder(str(tmp_path), per_class=4)
    cats = tmp_path / "cats"
    (cats / "empty.jpg").write_bytes(b"")
    (cats / "page.jpg").write_text("<html>not an image</html>")
    (cats / ".DS_Store").write_bytes(b"\0\0")
    (cats / "Thumbs.db").write_bytes(b"\0")
    (cats / "notes.txt").write_text("hello")
    (cats / "nested").mkdir()
    Image.new("RGB", (9, 9)).save(cats / "nested" / "deep photo é.png")
    (cats / "loop").symlink_to(cats, target_is_directory=True)
    d = scan_folder(tmp_path, 0.0)
    reasons = {os.path.basename(s.path): s.reason for s in d.skipped}
    assert "empty file" in reasons["empty.jpg"]
    assert "not a readable image" in reasons["page.jpg"]
    assert "hidden" in reasons[".DS_Store"] and "system" in reasons["Thumbs.db"]
    assert "extension" in reasons["notes.txt"]
    assert "loop" in reasons["loop"]
    assert any(p.endswith("deep photo é.png") for p, _ in d.train)
    assert d.counts(d.train) == {"cats": 5, "dogs": 4}


@pytest.mark.parametrize(
    "setup, fragment",
    [
        (lambda p: None, "no such folder"),
        (lambda p: make_folder(str(p), ("cats",), per_class=3), "at least two"),
        (lambda p: (make_folder(str(p), per_class=3), os.mkdir(p / "eels")), "['eels'] hold no readable image"),
    ],
)
def test_unusable_folders_raise_one_clear_error(tmp_path, setup, fragment):
    root = tmp_path / "data"
    if setup(root) is None and not root.exists() and fragment != "no such folder":
        root.mkdir()
    with pytest.raises(DataError) as info:
        scan_folder(root)
    assert fragment in str(info.value) and str(root) in str(info.value)


def test_list_images_expands_files_folders_and_globs(tmp_path):
    make_folder(str(tmp_path), per_class=3)
    files, _ = list_images([str(tmp_path / "cats"), str(tmp_path / "dogs" / "*.png"),
                            str(tmp_path / "dogs" / "img_000.jpg")])  # fmt: skip
    assert len(files) == 3 + 1 + 1
    with pytest.raises(DataError, match="no such file"):
        list_images([str(tmp_path / "nope*.jpg")])


def test_scale_pixels_is_the_one_convention():
    x = scale_pixels(np.array([[0, 128, 255]], np.uint8))
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    assert x[0, 1] == pytest.approx(128 / 255)


def test_batches_are_seeded_and_labelled(tmp_path):
    make_folder(str(tmp_path), per_class=10)
    items = scan_folder(tmp_path, 0.0).train
    a = ImageBatches(items, (16, 16), batch_size=8, shuffle=True, augment=True, seed=3, workers=1)
    b = ImageBatches(items, (16, 16), batch_size=8, shuffle=True, augment=True, seed=3, workers=1)
    xa, ya = a[0]
    xb, yb = b[0]
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    assert xa.shape == (8, 16, 16, 3) and ya.shape == (8, 1) and ya.dtype == np.float32
    assert len(a) == 3 and a[2][0].shape[0] == 4
    first = a.paths
    a.on_epoch_end()
    assert a.paths != first and sorted(a.paths) == sorted(first)  # reshuffled per epoch
    multi = ImageBatches(items, (16, 16), batch_size=4, num_classes=3, workers=1)
    assert multi[0][1].dtype == np.int32 and multi[0][1].shape == (4,)


def test_augmentation_changes_pixels_but_not_shape(tmp_path):
    make_folder(str(tmp_path), per_class=4)
    items = scan_folder(tmp_path, 0.0).train
    plain = ImageBatches(items, (24, 24), batch_size=8, workers=1)[0][0]
    aug = ImageBatches(items, (24, 24), batch_size=8, augment=True, workers=1)[0][0]
    assert plain.shape == aug.shape and np.abs(plain - aug).mean() > 0.01


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2048))
def test_decoder_on_arbitrary_bytes_returns_image_or_clear_error(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("fuzz") / "x.jpg"
    path.write_bytes(blob)
    try:
        arr = load_image(path, (8, 8))
    except DataError as exc:
        assert str(path) in str(exc)
    else:
        assert arr.shape == (8, 8, 3)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["PNG", "GIF", "BMP", "WEBP", "JPEG"]), st.integers(0, 400), st.integers(0, 255))
def test_decoder_on_truncated_and_corrupted_images(tmp_path_factory, fmt, cut, byte):
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (byte, 0, 0)).save(buf, format=fmt)
    data = bytearray(buf.getvalue())
    if cut < len(data):
        data[cut] = byte
    data = data[: max(1, len(data) - cut)]
    path = tmp_path_factory.mktemp("trunc") / "x.img"
    path.write_bytes(bytes(data))
    try:
        assert load_image(path, (8, 8)).shape == (8, 8, 3)
    except DataError:
        pass
