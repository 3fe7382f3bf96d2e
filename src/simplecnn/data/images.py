"""One image file -> uint8 pixels at the model's size: the pixel convention, in one place.

Decode with Pillow, apply the EXIF orientation, convert to RGB (or L), resize the whole image
(no crop) to the model's input with bilinear filtering and keep uint8; :func:`scale_pixels`
(x / 255) turns that into the model's input just before the model. Train, evaluate, predict,
export and serve all go through here, so there is no train/serve skew. No Keras here.
"""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image, ImageOps

from simplecnn.config import MIX_ALPHA
from simplecnn.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS", "MAX_PIXELS", "scale_pixels", "decode_image", "check_pixels", "load_image",
    "check_image_file", "augment", "mix_batch", "shown",
]  # fmt: skip

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
# Images above this many pixels are refused (Pillow's own decompression-bomb limit, made an
# error here rather than Pillow's warning; Pillow's global setting is left as it is).
MAX_PIXELS = 89_478_485


def scale_pixels(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> the model's input: float32 in [0, 1]. The one place pixels are scaled."""
    return np.asarray(images, dtype=np.float32) * np.float32(1.0 / 255.0)


def _to_mode(image: Image.Image, channels: int) -> Image.Image:
    """Any Pillow mode (palette, RGBA, CMYK, 16-bit, float) -> 'RGB' or 'L'."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and 32-bit grayscale: rescale to 8 bits (convert('L') would clip at 255).
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        image = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels become white, as on a web page.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    target = "L" if channels == 1 else "RGB"
    return image if image.mode == target else image.convert(target)


def decode_image(image: Image.Image, size: tuple[int, int], channels: int = 3) -> np.ndarray:
    """An open Pillow image -> uint8 array ``(height, width, channels)`` at ``size``."""
    height, width = size
    if image.format == "JPEG":
        # Let libjpeg decode at a reduced scale when the photo is much larger than needed.
        image.draft("RGB" if channels == 3 else "L", (width, height))
    image.seek(0)  # animated GIF/WebP: the first frame
    image = ImageOps.exif_transpose(image)
    image = _to_mode(image, channels)
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
    arr = np.asarray(image, dtype=np.uint8)
    return arr.reshape(height, width, channels)


def check_pixels(image: Image.Image) -> None:
    """Raise Pillow's DecompressionBombError for an image over ``MAX_PIXELS`` (from its header)."""
    if image.width * image.height > MAX_PIXELS:
        raise Image.DecompressionBombError(f"{image.width}x{image.height} pixels")


def load_image(path: str | os.PathLike, size: tuple[int, int], channels: int = 3) -> np.ndarray:
    """Read and decode one image file (see :func:`decode_image`).

    Raises:
        DataError: the file is not a readable image; the message names it (``path`` and
            ``reason`` are set too).
    """
    try:
        with Image.open(path) as image:
            check_pixels(image)
            return decode_image(image, size, channels)
    except Image.DecompressionBombError:
        reason = f"image too large (over {MAX_PIXELS:,} pixels); resize it or remove it"
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = f"not a readable image ({' '.join(str(exc).split())})"
    raise DataError(f"{shown(path)}: {reason}", path=os.fspath(path), reason=reason)


# How each format's file ends; a file without it was probably cut short.
_ENDINGS = {"JPEG": b"\xff\xd9", "PNG": b"IEND", "GIF": b";"}


def check_image_file(path: str) -> str | None:
    """None if ``path`` is an image Pillow can decode, else the reason it is not.

    Cheap for good files: the header gives format and size, and the file's last bytes show
    whether it is complete. Only a file that looks cut short is decoded in full to decide.
    """
    try:
        size = os.path.getsize(path)
        if size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                return (
                    f"image too large ({image.width}x{image.height} pixels, over {MAX_PIXELS:,}: "
                    "decompression-bomb guard)"
                )
            ending = _ENDINGS.get(image.format or "")
            if ending is None:
                return None
            with open(path, "rb") as f:
                f.seek(max(0, size - 1024))
                tail = f.read()
            if ending in tail:
                return None
            image.load()  # looks cut short: decode it all to be sure
            return None
    except Image.DecompressionBombError:
        return f"image too large (over {MAX_PIXELS:,} pixels: decompression-bomb guard)"
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = " ".join(str(exc).split())
        if "truncated" in reason.lower():
            return f"truncated or corrupt image ({reason})"
        return f"not a readable image ({reason})"


def shown(path: str | os.PathLike) -> str:
    """A path as text to show a person: bytes that are not UTF-8 become U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flip, rotation, zoom, shift, brightness and contrast of one uint8 image.

    Horizontal flip (p=0.5), rotation +-10 degrees, zoom 0.9-1.1 and a shift of up to 10% of
    each side in one bilinear affine warp (Pillow), then brightness and contrast scaled by
    0.8-1.2 each.
    """
    if rng.random() < 0.5:
        image = image[:, ::-1]
    angle = rng.uniform(-10.0, 10.0)
    zoom = rng.uniform(0.9, 1.1)
    h, w = image.shape[:2]
    dx, dy = rng.uniform(-0.1, 0.1) * w, rng.uniform(-0.1, 0.1) * h
    pil = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else np.ascontiguousarray(image))
    # Inverse affine map (output -> input): the output's centre samples the input at the centre
    # shifted by (dx, dy); around it, rotate by `angle` and scale by 1/zoom.
    cos, sin = math.cos(math.radians(angle)) / zoom, math.sin(math.radians(angle)) / zoom
    ox, oy = w / 2.0, h / 2.0
    cx, cy = ox + dx, oy + dy
    matrix = (cos, sin, cx - cos * ox - sin * oy, -sin, cos, cy + sin * ox - cos * oy)
    pil = pil.transform((w, h), Image.Transform.AFFINE, matrix, Image.Resampling.BILINEAR)
    out = np.asarray(pil, dtype=np.float32).reshape(h, w, image.shape[-1])
    mean = out.mean()
    out = (out - mean) * rng.uniform(0.8, 1.2) + mean * rng.uniform(0.8, 1.2)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)



def mix_batch(
    images: np.ndarray, targets: np.ndarray, kind: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Mixup or CutMix of one batch: each image mixed with a partner from the same batch.

    One proportion ``lam`` ~ Beta(alpha, alpha) per batch and a random pairing (a permutation
    of the batch), as timm's batch mode does. ``mixup`` blends each whole image with its
    partner, ``lam`` of its own; ``cutmix`` pastes the partner's pixels over one random box
    whose area is about ``1 - lam`` of the image (clipped at the edges, and ``lam`` set to the
    share of the image left its own). The targets are mixed in the same proportion: float
    targets (a 0/1 column for the sigmoid head, one-hot rows for a softmax).

    Args:
        images: ``(n, height, width, channels)`` floats (the scaled batch).
        targets: ``(n, units)`` float targets.
        kind: ``"mixup"`` or ``"cutmix"``.
        rng: the batch's generator (the seed, the epoch and the batch fix the mixing).
    """
    if kind not in MIX_ALPHA:
        raise ValueError(f"unknown mixing {kind!r}: choose from {', '.join(MIX_ALPHA)}")
    if targets.ndim != 2:
        raise ValueError(f"mixing needs (n, units) float targets, got shape {targets.shape}")
    n = len(images)
    if n < 2:
        return images, targets
    alpha = MIX_ALPHA[kind]
    lam = float(rng.beta(alpha, alpha))
    partner = rng.permutation(n)
    if kind == "mixup":
        mixed = lam * images + (1.0 - lam) * images[partner]
    else:
        h, w = images.shape[1:3]
        side = math.sqrt(1.0 - lam)
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y0, y1 = max(0, cy - round(h * side / 2)), min(h, cy + round(h * side / 2))
        x0, x1 = max(0, cx - round(w * side / 2)), min(w, cx + round(w * side / 2))
        mixed = images.copy()
        mixed[:, y0:y1, x0:x1] = images[partner, y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    mixed_targets = lam * targets + (1.0 - lam) * targets[partner]
    return mixed.astype(images.dtype, copy=False), mixed_targets.astype(np.float32)
