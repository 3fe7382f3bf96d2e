"""Photos in, pixels and batches out: folders (what there is), images (the pixel convention),
batches (what Keras trains on).

``from simplecnn.data import scan_folder`` does not import Keras; only the batches do.
"""

from __future__ import annotations

from typing import Any

from simplecnn.data.folders import (
    Dataset,
    Skipped,
    find_split,
    index_classes,
    list_images,
    scan_folder,
)
from simplecnn.data.images import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    augment,
    check_image_file,
    check_pixels,
    decode_image,
    load_image,
    scale_pixels,
    shown,
)  # fmt: skip
from simplecnn.data.reader import read_batches
from simplecnn.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS", "MAX_PIXELS", "Skipped", "Dataset", "DataError", "scan_folder",
    "list_images", "find_split", "index_classes", "load_image", "decode_image", "check_pixels",
    "check_image_file", "scale_pixels", "augment", "shown", "read_batches", "ImageBatches",
    "MirroredBatches",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in ("ImageBatches", "MirroredBatches"):
        from simplecnn.data import batches

        return getattr(batches, name)
    raise AttributeError(f"module 'simplecnn.data' has no attribute {name!r}")
