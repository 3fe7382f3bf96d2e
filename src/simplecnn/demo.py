"""The built-in demo: the three styles, the proof they are one model, and a real training run
on a small data set that ships inside scikit-image (faces vs. non-faces from LFW)."""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

__all__ = ["write_lfw_folders", "run_demo", "LFW_CLASSES"]

# skimage.data.lfw_subset(): 200 grayscale 25x25 crops, the first 100 faces, the next 100 not.
LFW_CLASSES = ("background", "face")


def write_lfw_folders(root: str, seed: int = 0, fractions: tuple[float, float] = (0.6, 0.2)) -> dict[str, Any]:
    """Write ``lfw_subset`` as PNG files in ``root/{train,val,test}/{background,face}/``.

    Each class is split, seeded, into train / validation / test by ``fractions`` (the rest is
    test), so the demo goes through the same folder pipeline as a user's photos.

    Returns:
        ``{"train": {...counts}, "val": {...}, "test": {...}}``.
    """
    from PIL import Image
    from skimage.data import lfw_subset

    images = lfw_subset()  # (200, 25, 25) floats in [0, 1]
    labels = np.array([1] * 100 + [0] * 100)  # 1: face
    rng = np.random.default_rng(seed)
    counts: dict[str, dict[str, int]] = {s: {c: 0 for c in LFW_CLASSES} for s in ("train", "val", "test")}
    for label, name in enumerate(LFW_CLASSES):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_train = int(len(idx) * fractions[0])
        n_val = int(len(idx) * fractions[1])
        parts = {"train": idx[:n_train], "val": idx[n_train : n_train + n_val], "test": idx[n_train + n_val :]}
        for split, members in parts.items():
            folder = os.path.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in members:
                pixels = np.clip(images[i] * 255.0 + 0.5, 0, 255).astype(np.uint8)
                Image.fromarray(pixels, "L").save(os.path.join(folder, f"lfw_{i:03d}.png"))
            counts[split][name] = len(members)
    return counts


def run_demo(
    out: str, style: str = "functional", epochs: int = 30, seed: int = 0, quiet_progress: bool = False,
    say: Callable[[str], None] = print,
) -> bool:  # fmt: skip
    """The main job: the three styles' summaries, the proof they are one model, then a real run
    on the lfw faces through the same folder pipeline as a user's photos, evaluated and used.

    ``out`` is a demo folder (new, or one a previous demo made: it is replaced). Returns
    whether every step passed (the style comparison included).
    """
    import time

    from simplecnn.config import TrainConfig
    from simplecnn.equivalence import compare_styles, format_compare
    from simplecnn.inference import evaluate, predict
    from simplecnn.models import STYLES, build_model
    from simplecnn.outputs import claim_folder
    from simplecnn.training import train

    start = time.perf_counter()
    claim_folder(out, "demo", "--out", replace=True, replace_hint="the demo replaces it")
    say("== 1. The seed's model in three Keras styles ==")
    for name in STYLES:
        build_model(name).summary()  # Keras prints it
    say("\n== 2. Proof they are one model (simplecnn compare) ==")
    rows = [c.to_dict() for c in compare_styles()]
    say(format_compare(rows))
    say("\n== 3. Train on real images: faces vs. background from LFW (scikit-image's lfw_subset) ==")
    data = os.path.join(out, "data")
    counts = write_lfw_folders(data, seed=seed)
    say(f"wrote {sum(sum(c.values()) for c in counts.values())} PNG files to {data}: "
        + "; ".join(f"{k} {v}" for k, v in counts.items()))  # fmt: skip
    run_dir = os.path.join(out, "run")
    config = TrainConfig(style=style, image_size=32, epochs=epochs, batch_size=16, seed=seed,
                         learning_rate=3e-3, patience=8)  # fmt: skip
    result = train(data, run_dir, config, verbose=2 if quiet_progress else "auto")
    say(f"trained {style} in {result.seconds:.1f} s; best epoch {result.best_epoch}: "
        f"val_accuracy {result.best.get('val_accuracy', float('nan')):.3f}")  # fmt: skip
    say("\n== 4. Evaluate on the held-out test images ==")
    m = evaluate(run_dir, os.path.join(data, "test"))
    say(f"test accuracy {m['accuracy']:.3f}, ROC-AUC {m['roc_auc']:.3f}, F1 {m['f1']:.3f} "
        f"on {m['n']} images never seen in training")  # fmt: skip
    faces = os.path.join(data, "test", "face")
    preds, _ = predict(run_dir, [faces])
    say(f"predict on {faces}: {sum(p['label'] == 'face' for p in preds)}/{len(preds)} called 'face'")
    say(f"\nrun directory: {run_dir} (model.keras, run.json, history.csv, curves.png, logs/, "
        "evaluation/confusion_matrix.png, roc_curve.png, most_wrong.png)")
    say(f"demo finished in {time.perf_counter() - start:.0f} s")
    return all(r["ok"] for r in rows)
