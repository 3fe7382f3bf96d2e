"""Grad-CAM for every style: which parts of an image drove the prediction.

Keras's own Grad-CAM example builds a sub-model ``keras.Model(model.inputs, [layer.output,
model.output])``. That needs a graph of symbolic tensors, which a subclassed model does not
have and a Sequential model loaded from a file may not have either (keras-team/keras#20116,
keras-team/keras-io#1903). simplecnn's three styles share their leaf layers, in order and by
name (:func:`simplecnn.models.leaf_layers`), so Grad-CAM here runs those layers itself: the
layers up to the chosen one give the feature maps A, the rest give the class score y, and the
heatmap is ``relu(sum_k mean_ij(dy/dA_ijk) * A_k)``, scaled to [0, 1] per image. The three
styles, given the same weights, give the same heatmap.

The score is the class's logit (before sigmoid or softmax), as in the Grad-CAM paper: a
saturated probability would give vanishing gradients. For a binary model the logit of the
explained class is ``+z`` for the second class and ``-z`` for the first.

The gradient is the one backend-specific step (:func:`simplecnn.backends.gradients`);
everything else is ``keras.ops``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Sequence

import keras
import numpy as np
from keras import ops
from PIL import Image, ImageDraw, ImageFont, ImageOps

from simplecnn.backends import gradients
from simplecnn.data import scale_pixels
from simplecnn.errors import UsageError
from simplecnn.heads import class_probabilities
from simplecnn.models import leaf_layers

__all__ = ["GradCam", "gradcam", "conv_layer_names", "overlay", "display_image", "explain_figure",
           "explain_picture", "explain_files", "ExplainResult"]


@dataclass
class GradCam:
    """Grad-CAM results for a batch of images.

    Attributes:
        heatmaps: float32 ``(N, h, w)`` in [0, 1], at the chosen layer's resolution.
        probabilities: float64 ``(N, classes)``: one probability per class (a binary model's
            sigmoid output ``p`` becomes ``[1 - p, p]``).
        class_indices: the class each heatmap explains (the predicted one unless chosen).
        layer: the name of the layer whose feature maps were used.
    """

    heatmaps: np.ndarray
    probabilities: np.ndarray
    class_indices: np.ndarray
    layer: str


def conv_layer_names(model: keras.Model) -> list[str]:
    """Names of the layers Grad-CAM can use: those with image-like (4-D) outputs, in order."""
    names = []
    for layer in leaf_layers(model):
        if isinstance(layer, (keras.layers.GlobalMaxPooling2D, keras.layers.GlobalAveragePooling2D,
                              keras.layers.Flatten, keras.layers.Dense)):
            break
        names.append(layer.name)
    return names


def _split(model: keras.Model, layer_name: str | None):
    layers = leaf_layers(model)
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise ValueError("the model has no convolution layer to explain")
    if layer_name is None:
        cut = convs[-1]
    else:
        allowed = conv_layer_names(model)
        if layer_name not in allowed:
            raise UsageError(
                f"Unknown layer {layer_name!r} for Grad-CAM. Allowed: {', '.join(allowed)}"
            )
        cut = next(i for i, layer in enumerate(layers) if layer.name == layer_name)
    last = layers[-1]
    if not isinstance(last, keras.layers.Dense):
        raise ValueError(f"the model's last layer must be Dense, not {type(last).__name__}")
    return layers[: cut + 1], layers[cut + 1 : -1], last, layers[cut].name


def _run(layers: Sequence[keras.layers.Layer], x):
    for layer in layers:
        x = layer(x, training=False)
    return x


def gradcam(
    model: keras.Model,
    images: np.ndarray,
    layer: str | None = None,
    class_index: int | None = None,
) -> GradCam:
    """Grad-CAM heatmaps for uint8 images ``(N, H, W, C)`` at the model's input size.

    Args:
        model: a simplecnn model of any style (or any model whose leaf layers run in order,
            ending in a Dense layer).
        images: uint8 pixels, as :func:`simplecnn.data.load_image` gives them.
        layer: the layer to explain; default: the last convolution.
        class_index: the class to explain; default: each image's predicted class.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C). Received shape {images.shape}")
    features_part, rest, dense, layer_name = _split(model, layer)
    binary = dense.units == 1
    classes = 2 if binary else dense.units
    if class_index is not None and not 0 <= class_index < classes:
        raise ValueError(f"class_index must be in [0, {classes}). Received: {class_index}")

    x = scale_pixels(images)
    features = _run(features_part, ops.convert_to_tensor(x))

    def logits(a):
        h = _run(rest, a)
        return ops.matmul(h, dense.kernel) + dense.bias

    z = ops.convert_to_numpy(logits(features)).astype(np.float64)
    if binary:
        probs = class_probabilities(1.0 / (1.0 + np.exp(-z)))
    else:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
    chosen = (
        np.full(len(images), class_index) if class_index is not None else probs.argmax(axis=1)
    )
    if binary:
        select = np.where(chosen == 1, 1.0, -1.0).astype(np.float32)[:, None]
    else:
        select = np.eye(classes, dtype=np.float32)[chosen]
    select = ops.convert_to_tensor(select)

    # Each image's score depends only on its own features (inference mode), so the gradient
    # of the batch sum is every image's own gradient.
    grads = gradients(lambda a: ops.sum(logits(a[0]) * select), [features])[0]
    a = ops.convert_to_numpy(features).astype(np.float64)
    weights = grads.astype(np.float64).mean(axis=(1, 2))  # (N, k)
    cam = np.maximum(np.einsum("nhwk,nk->nhw", a, weights), 0.0)
    top = cam.reshape(len(cam), -1).max(axis=1)
    cam = np.where(top[:, None, None] > 0, cam / np.where(top > 0, top, 1.0)[:, None, None], 0.0)
    return GradCam(cam.astype(np.float32), probs, chosen.astype(int), layer_name)


# --- pictures -------------------------------------------------------------------------------


def overlay(image: np.ndarray | Image.Image, heatmap: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The heatmap, resized to the image and coloured (jet), blended over it."""
    import matplotlib

    base = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    base = base.convert("RGB")
    heat = Image.fromarray(np.uint8(np.clip(heatmap, 0, 1) * 255), "L").resize(
        base.size, Image.Resampling.BILINEAR
    )
    colours = matplotlib.colormaps["jet"](np.asarray(heat) / 255.0)[..., :3]
    coloured = Image.fromarray(np.uint8(colours * 255), "RGB")
    return Image.blend(base, coloured, alpha)


def display_image(path: str | os.PathLike | BinaryIO, longest: int = 320) -> Image.Image:
    """An image file (path or file object) as a person sees it (EXIF-oriented RGB), at most
    ``longest`` px a side."""
    with Image.open(path) as im:
        im.seek(0)
        im = ImageOps.exif_transpose(im).convert("RGB")
        im.thumbnail((longest, longest), Image.Resampling.LANCZOS)
        return im.copy()


def explain_figure(image: Image.Image, heatmap: np.ndarray, caption: str) -> Image.Image:
    """Side by side: the image and its Grad-CAM overlay, with a caption above."""
    width, height = image.size
    font = ImageFont.load_default(size=max(12, min(20, width // 16)))
    bar = font.size + 12
    out = Image.new("RGB", (2 * width + 8, height + bar), "white")
    out.paste(image, (0, bar))
    out.paste(overlay(image, heatmap), (width + 8, bar))
    ImageDraw.Draw(out).text((4, 5), caption, fill="black", font=font)
    return out


def explain_picture(
    model: keras.Model,
    pixels: np.ndarray,
    shown: Image.Image,
    class_names: Sequence[str],
    layer: str | None = None,
    class_index: int | None = None,
) -> tuple[Image.Image, GradCam]:
    """Grad-CAM of one image (uint8 pixels at the model's size) drawn over ``shown``, captioned
    with the explained class, its probability and the layer: what `explain` and `serve` show."""
    cam = gradcam(model, pixels[None], layer=layer, class_index=class_index)
    i = int(cam.class_indices[0])
    caption = f"{class_names[i]} ({cam.probabilities[0, i]:.2f}) | Grad-CAM: {cam.layer}"
    return explain_figure(shown, cam.heatmaps[0], caption), cam


# --- explaining files (the `explain` command) ----------------------------------------------


@dataclass
class ExplainResult:
    """What :func:`explain_files` returns: one row per picture written, the files skipped."""

    rows: list[dict]
    skipped: list
    out_dir: str


def explain_files(
    run_dir: str | os.PathLike,
    paths: Sequence[str],
    out_dir: str | os.PathLike | None = None,
    layer: str | None = None,
    class_name: str | None = None,
    on_image: Callable[[dict], None] | None = None,
) -> ExplainResult:
    """Write a Grad-CAM picture (``NAME_gradcam.png``) per image, and ``explain.json``.

    Args:
        run_dir: the run whose model is explained.
        paths: image files, folders or glob patterns.
        out_dir: where the pictures go (default ``RUN_DIR/explain``); the folder is replaced
            whole, and only if simplecnn made it.
        layer: the layer to explain (default: the last convolution).
        class_name: the class to explain (default: each image's predicted one).
        on_image: called with each row as it is done (progress).

    Returns:
        The rows (``path``, ``label`` and ``probability`` predicted, ``explains``, ``layer``,
        ``png``), the skipped files and the folder.
    """
    from simplecnn.data import list_images
    from simplecnn.errors import UsageError
    from simplecnn.files import write_json
    from simplecnn.outputs import check_place, check_replaceable, make_temp_folder, swap_in
    from simplecnn.runs import load_run, run_lock_if_inside

    run = load_run(run_dir)
    names = run.class_names
    class_index = None
    if class_name is not None:
        if class_name not in names:
            raise UsageError(f"unknown class {class_name!r} for --class. Allowed: {', '.join(names)}")
        class_index = names.index(class_name)
    out = os.fspath(out_dir or os.path.join(os.fspath(run_dir), "explain"))
    check_place(out, "--out", data=[p for p in paths if os.path.isdir(p)], runs=[os.fspath(run_dir)])
    check_replaceable(out, "explain", "--out")
    files, skipped = list_images(paths)
    rows: list[dict] = []
    with run_lock_if_inside(os.fspath(run_dir), out, "explain"):
        tmp = make_temp_folder(out, "explain")
        try:
            used: set[str] = set()
            for path in files:
                row = _explain_file(run, path, tmp, out, used, layer, class_index, skipped)
                if row is not None:
                    rows.append(row)
                    if on_image is not None:
                        on_image(row)
            write_json(os.path.join(tmp, "explain.json"), rows)
            if rows:
                swap_in(tmp, out, "explain", "--out")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return ExplainResult(rows, skipped, out)


def _explain_file(run: Any, path: str, tmp: str, out: str, used: set[str], layer: str | None,
                  class_index: int | None, skipped: list) -> dict | None:  # fmt: skip
    """Write one image's Grad-CAM picture into ``tmp``; its row, or None (recorded as skipped)."""
    from simplecnn.data import Skipped, load_image
    from simplecnn.errors import DataError

    try:
        pixels = load_image(path, run.image_size, run.channels)
        shown = display_image(path)
    except (DataError, OSError) as exc:
        skipped.append(Skipped(path, getattr(exc, "reason", None) or str(exc)))
        return None
    names = run.class_names
    figure, cam = explain_picture(run.model, pixels, shown, names, layer, class_index)
    i = int(cam.probabilities[0].argmax())  # the prediction (the explained class may differ)
    name = _picture_name(path, used)
    figure.save(os.path.join(tmp, name), "PNG")
    return {"path": path, "label": names[i], "probability": float(cam.probabilities[0, i]),
            "layer": cam.layer, "explains": names[int(cam.class_indices[0])],
            "png": os.path.join(out, name)}  # fmt: skip


def _picture_name(path: str, used: set[str]) -> str:
    """``STEM_gradcam.png``, numbered when two images share a file name."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name, n = f"{stem}_gradcam.png", 1
    while name in used:
        n += 1
        name = f"{stem}_{n}_gradcam.png"
    used.add(name)
    return name
