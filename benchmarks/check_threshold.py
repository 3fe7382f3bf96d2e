"""How far apart the perceptual hashes (and how alike the thumbnails) of one picture's copies
are, against those of different pictures: the thresholds behind `simplecnn check`.

    .venv/bin/python benchmarks/check_threshold.py ../shared/data/flower_photos --samples 300 \
        --json benchmarks/results/check_threshold.json

Copies: each of SAMPLES random photos, resized to half, re-encoded as JPEG quality 50,
brightened 1.3x, cropped 2% and 5% at every side. Different pictures: every pair of the folder's
photos whose hashes are within 16 bits (the only pairs a threshold could confuse), their
thumbnail similarity, and the nearest other photo of each sampled one.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
from simplecnn.check.facts import _compute, facts_of, thumb_similarity  # noqa: E402
from simplecnn.check.groups import _POPCOUNT, NEAR_DISTANCE, NEAR_SIMILARITY  # noqa: E402
from simplecnn.data import scan_folder  # noqa: E402


def _variants(image: Image.Image) -> dict[str, Image.Image]:
    w, h = image.size
    out = {"resized to half": image.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.BILINEAR)}
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=50)
    out["JPEG quality 50"] = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    out["brightened 1.3x"] = ImageEnhance.Brightness(image).enhance(1.3)
    for f in (0.02, 0.05):
        out[f"cropped {f:.0%} a side"] = image.crop((int(w * f), int(h * f), int(w * (1 - f)), int(h * (1 - f))))
    return out


def _facts_of_image(image: Image.Image, tmp: str):
    image.save(tmp, "PNG")
    return _compute(tmp)


def _distance(a: int, b: int) -> int:
    return bin((a ^ b) & (2**64 - 1)).count("1")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    dataset = scan_folder(args.data_dir, 0.0)
    paths = [p for p, _ in dataset.train + dataset.val]
    facts = facts_of(paths, dataset.root)
    rng = random.Random(0)
    tmp = "/tmp/simplecnn-threshold.png"
    copies: dict[str, list[tuple[int, float]]] = {}
    for path in rng.sample(paths, min(args.samples, len(paths))):
        with Image.open(path) as im:
            image = ImageOps.exif_transpose(im).convert("RGB")
        for name, variant in _variants(image).items():
            f = _facts_of_image(variant, tmp)
            copies.setdefault(name, []).append((_distance(f.phash, facts[path].phash), thumb_similarity(f.thumb, facts[path].thumb)))
    hashes = np.array([facts[p].phash & (2**64 - 1) for p in paths], dtype=np.uint64)
    close = []
    for i in range(len(paths)):
        d = _POPCOUNT[(hashes[i] ^ hashes[i + 1 :]).view(np.uint8)].reshape(-1, 8).sum(axis=1)
        for j in np.nonzero(d <= 16)[0]:
            j = i + 1 + int(j)
            close.append((int(d[j - i - 1]), thumb_similarity(facts[paths[i]].thumb, facts[paths[j]].thumb), paths[i], paths[j]))
    report = {"photos": len(paths), "near_distance": NEAR_DISTANCE, "near_similarity": NEAR_SIMILARITY,
              "samples": args.samples, "copies": {}, "close_pairs": []}
    for name, values in copies.items():
        d = np.array([v[0] for v in values])
        s = np.array([v[1] for v in values])
        report["copies"][name] = {"distance_p50": float(np.median(d)), "distance_p99": float(np.percentile(d, 99)),
                                  "distance_max": int(d.max()), "similarity_min": float(s.min()),
                                  "similarity_p1": float(np.percentile(s, 1)),
                                  "caught": float(((d <= NEAR_DISTANCE) & (s >= NEAR_SIMILARITY)).mean())}
    for d in range(17):
        sims = [c[1] for c in close if c[0] == d]
        if sims:
            report["close_pairs"].append({"distance": d, "pairs": len(sims), "similarity_ge_0.90": sum(x >= 0.90 for x in sims),
                                          "similarity_ge_0.95": sum(x >= 0.95 for x in sims)})
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
