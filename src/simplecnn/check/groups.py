"""Groups of the same picture: exact copies (same decoded pixels) and near copies (perceptual
hashes within a Hamming distance), by union-find over the pairs found."""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["NEAR_DISTANCE", "NEAR_SIMILARITY", "exact_groups", "near_groups"]

# Two pictures are near copies when their pHashes are at most NEAR_DISTANCE bits apart (of 64)
# and their 16x16 thumbnails correlate at least NEAR_SIMILARITY (brightness- and contrast-free).
# Measured on the flower photos (benchmarks/check_threshold.py, benchmarks/results/
# check_threshold.json): copies resized to half, re-encoded at JPEG quality 50 or brightened
# 1.3x were at most 14 bits apart with similarity >= 0.94; 2%-a-side crops at most 14 with
# similarity >= 0.85 (1st percentile 0.92); among pairs of the set's own photos within 14
# bits, those at >= 0.90 were all the same scene (burst shots, re-edits), and different
# pictures of the same kind of flower reached 0.87-0.89.
NEAR_DISTANCE = 14
NEAR_SIMILARITY = 0.90

# popcount of every byte value
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def exact_groups(keys: list[str]) -> list[list[int]]:
    """Indices of the items sharing a key (groups of two or more), in order of first item."""
    by: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        if key:
            by.setdefault(key, []).append(i)
    return [g for g in by.values() if len(g) > 1]


def near_groups(hashes: list[int], same: Callable[[int, int], bool] = lambda i, j: True,
                max_distance: int = NEAR_DISTANCE, chunk: int = 512) -> list[list[int]]:  # fmt: skip
    """Indices of the items whose 64-bit hashes are within ``max_distance`` bits of another's
    and that ``same(i, j)`` confirms, grouped transitively (groups of two or more). Pairwise in
    chunks: n x n popcounts, with memory bounded by ``chunk`` x n x 8 bytes."""
    n = len(hashes)
    if n < 2:
        return []
    h = np.array([x & (2**64 - 1) for x in hashes], dtype=np.uint64)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, n, chunk):
        block = h[start : start + chunk, None] ^ h[None, :]  # (chunk, n)
        distances = _POPCOUNT[block.view(np.uint8)].reshape(block.shape[0], n, 8).sum(axis=2)
        rows, cols = np.nonzero(distances <= max_distance)
        for r, c in zip(rows + start, cols):
            if r < c:
                a, b = find(int(r)), find(int(c))
                if a != b and same(int(r), int(c)):
                    parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]
