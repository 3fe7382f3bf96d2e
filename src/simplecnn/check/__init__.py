"""``simplecnn check``: a health report of a photo folder before training.

It scans the folder exactly as ``train`` does (the same files used, the same files skipped with
the same reasons), then finds:

* **exact copies** (the same decoded pixels) and **near copies** (resized, re-encoded,
  brightened, slightly cropped: perceptual hashes close together), grouped;
* **leaks**: a group with members in both training and validation (the folder's own split, or
  the seeded split ``train`` would make), which makes validation figures look better than the
  model is;
* **label conflicts**: a group filed under two classes;
* class counts and imbalance, image sizes and aspect ratios, colour modes, tiny and extreme
  images;

and says what to do about each, one line per finding, worst first, with a contact sheet (PNG) of
each kind of group and a JSON report. ``check_folder`` returns the same report as a dict.
Likely wrong labels (which needs a model) are :mod:`simplecnn.check.labels`'.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

from simplecnn.check.facts import Facts, facts_of, thumb_similarity
from simplecnn.check.groups import NEAR_DISTANCE, NEAR_SIMILARITY, exact_groups, near_groups
from simplecnn.data import Dataset, scan_folder

__all__ = ["check_folder", "groups_of", "findings_of", "write_report", "check_before_training",
           "NEAR_DISTANCE"]  # fmt: skip

TINY = 32  # a side under this many pixels is too small to learn from
# Entropy (bits) under which a picture is nearly blank: hymenoptera's "image not found"
# placeholder measured 1.9 bits, the 1st percentile of real photos 4.6 (median 7.3).
LOW_INFORMATION = 2.5
EXTREME_ASPECT = 4.0  # a longer side this many times the shorter one loses most of it when resized


def check_folder(data_dir: str | os.PathLike, validation_split: float = 0.2, seed: int = 0,
                 use_cache: bool = True) -> dict[str, Any]:  # fmt: skip
    """The health report of ``data_dir`` (see the module docstring); nothing is written.

    ``validation_split`` and ``seed`` are ``train``'s: without a train/val folder split, the
    report checks the split ``train`` would make with them.
    """
    start = time.perf_counter()
    dataset = scan_folder(data_dir, validation_split, seed)
    items = [(p, label, "train") for p, label in dataset.train] + [(p, label, "val") for p, label in dataset.val]
    scanned = time.perf_counter()
    facts = facts_of([p for p, _, _ in items], dataset.root, use_cache=use_cache)
    hashed = time.perf_counter()
    report = _describe(dataset, items, facts)
    report["groups"] = groups_of(items, [facts[p] for p, _, _ in items], dataset.class_names)
    report["findings"] = findings_of(report)
    report["seconds"] = {"scan": round(scanned - start, 2), "decode_and_hash": round(hashed - scanned, 2),
                         "group_and_report": round(time.perf_counter() - hashed, 2)}  # fmt: skip
    return report


def _describe(dataset: Dataset, items: list[tuple[str, int, str]], facts: dict[str, Facts]) -> dict[str, Any]:
    """Counts, sizes, modes, tiny and extreme images, skipped files."""
    names = dataset.class_names
    counts = {split: dict(Counter(names[l] for _, l, s in items if s == split)) for split in ("train", "val")}
    totals = Counter(names[l] for _, l, _ in items)
    sizes = [(facts[p].width, facts[p].height) for p, _, _ in items if not facts[p].error]
    aspect = [max(w, h) / max(1, min(w, h)) for w, h in sizes]
    entry = lambda p, l, s: {"path": p, "class": names[l], "split": s}  # noqa: E731
    return {
        "data_dir": os.path.abspath(dataset.root), "layout": dataset.layout, "classes": names,
        "images": len(items), "counts": counts, "totals": dict(totals),
        "imbalance": max(totals.values()) / max(1, min(totals.values())) if totals else 1.0,
        "sizes": {"min_side": min((min(s) for s in sizes), default=0),
                  "max_side": max((max(s) for s in sizes), default=0),
                  "median_width": sorted(w for w, _ in sizes)[len(sizes) // 2] if sizes else 0,
                  "median_height": sorted(h for _, h in sizes)[len(sizes) // 2] if sizes else 0,
                  "max_aspect": round(max(aspect, default=1.0), 2)},
        "modes": dict(Counter(facts[p].mode for p, _, _ in items if not facts[p].error)),
        "tiny": [entry(p, l, s) for p, l, s in items if not facts[p].error and min(facts[p].width, facts[p].height) < TINY],
        "extreme_aspect": [entry(p, l, s) for p, l, s in items if not facts[p].error
                           and max(facts[p].width, facts[p].height) / max(1, min(facts[p].width, facts[p].height)) > EXTREME_ASPECT],
        "unreadable": [{**entry(p, l, s), "reason": facts[p].error} for p, l, s in items if facts[p].error],
        "low_information": [entry(p, l, s) for p, l, s in items if not facts[p].error and facts[p].entropy < LOW_INFORMATION],
        "skipped": [s.to_dict() for s in dataset.skipped],
        "warnings": dataset.warnings,
    }  # fmt: skip


def groups_of(items: list[tuple[str, int, str]], facts: list[Facts], names: list[str]) -> dict[str, list]:
    """Exact and near groups, and which of them leak across the split or conflict across classes.

    Each group is a list of ``{"path", "class", "split"}``; a near group that holds the same
    members as an exact one is not listed twice.
    """
    exact = exact_groups([f.exact for f in facts])
    decoded = [i for i, f in enumerate(facts) if not f.error]
    exact_sets = {frozenset(e) for e in exact}
    def same(a: int, b: int) -> bool:
        return thumb_similarity(facts[decoded[a]].thumb, facts[decoded[b]].thumb) >= NEAR_SIMILARITY

    near = [[decoded[j] for j in g] for g in near_groups([facts[i].phash for i in decoded], same)]
    near = [g for g in near if frozenset(g) not in exact_sets]
    as_entries = lambda g: [{"path": items[i][0], "class": names[items[i][1]], "split": items[i][2]} for i in g]  # noqa: E731
    every = [("exact", g) for g in exact] + [("near", g) for g in near]
    return {
        "exact": [as_entries(g) for g in exact],
        "near": [as_entries(g) for g in near],
        "leaks": [{"kind": k, "members": as_entries(g)} for k, g in every
                  if len({items[i][2] for i in g}) > 1],
        "conflicts": [{"kind": k, "members": as_entries(g)} for k, g in every
                      if len({items[i][1] for i in g}) > 1],
    }  # fmt: skip


def findings_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One finding per kind of problem, worst first: what, how many, and what to do."""
    g = report["groups"]
    extra = lambda groups: sum(len(x["members"] if isinstance(x, dict) else x) - 1 for x in groups)  # noqa: E731
    rules = [
        ("conflict", len(g["conflicts"]), f"{len(g['conflicts'])} picture(s) filed under two or more classes "
         "(label conflicts): keep each in its right class only"),
        ("leak", len(g["leaks"]), f"{len(g['leaks'])} picture(s) in both training and validation (leaks: "
         "validation looks better than the model is): keep one copy, or train with --drop-duplicates"),
        ("duplicate", len(g["exact"]), f"{len(g['exact'])} group(s) of exact copies ({extra(g['exact'])} "
         "extra files): they weigh those pictures more in training; remove the copies or use --drop-duplicates"),
        ("near-duplicate", len(g["near"]), f"{len(g['near'])} group(s) of near copies ({extra(g['near'])} "
         "extra files: resized, re-encoded or edited versions): check the contact sheet, remove the extras"),
        ("unreadable", len(report["unreadable"]), f"{len(report['unreadable'])} file(s) passed the scan but "
         "did not decode: replace or remove them"),
        ("imbalance", report["imbalance"] >= 1.5, f"classes are imbalanced ({report['imbalance']:.1f}x "
         f"between the largest and smallest: {report['totals']}): add images to the small ones, or train "
         "with --class-weight balanced"),
        ("low-information", len(report["low_information"]), f"{len(report['low_information'])} nearly "
         "blank image(s) (placeholders, flat colour): check them; remove what is not a photo of the class"),
        ("tiny", len(report["tiny"]), f"{len(report['tiny'])} image(s) under {TINY} px on a side: too small "
         "to learn from; replace them with larger ones"),
        ("extreme-aspect", len(report["extreme_aspect"]), f"{len(report['extreme_aspect'])} image(s) over "
         f"{EXTREME_ASPECT:g}:1: squeezed to a square when resized; crop them to the subject"),
        ("skipped", len(report["skipped"]), f"{len(report['skipped'])} file(s) skipped (not usable images; "
         "reasons in the report): remove them or convert them"),
        ("modes", len(report["modes"]) > 1, f"colour modes {report['modes']}: all are converted to RGB, "
         "nothing to do unless grayscale images stand for a class"),
    ]  # fmt: skip
    return [{"kind": kind, "count": int(count), "message": message} for kind, count, message in rules if count]


SHEETS = {"exact": "exact copies", "near": "near copies", "leaks": "leaks: in training and validation",
          "conflicts": "label conflicts: under two classes"}  # fmt: skip


def write_report(report: dict[str, Any], out_dir: str | os.PathLike, data_dir: str | os.PathLike) -> dict[str, str]:
    """``report.json`` and a contact sheet per kind of group (``exact.png``, ``near.png``,
    ``leaks.png``, ``conflicts.png``) into ``out_dir``, a new folder or an earlier check's
    (replaced whole; never a folder simplecnn did not make, never inside the data).

    Returns:
        kind -> the PNG written (kinds with no group have none).
    """
    import shutil

    from simplecnn.check.sheets import contact_sheet
    from simplecnn.files import write_json
    from simplecnn.outputs import check_place, check_replaceable, make_temp_folder, swap_in

    out_dir = os.fspath(out_dir)
    check_place(out_dir, "--out", data=[os.fspath(data_dir)])
    check_replaceable(out_dir, "check", "--out")
    tmp = make_temp_folder(out_dir, "check")
    try:
        sheets = {}
        for kind, title in SHEETS.items():
            groups = [g["members"] if isinstance(g, dict) else g for g in report["groups"][kind]]
            if contact_sheet(groups, title, os.path.join(tmp, f"{kind}.png")):
                sheets[kind] = os.path.join(out_dir, f"{kind}.png")
        for kind, title in (("low_information", "nearly blank"), ("tiny", f"under {TINY} px"),
                            ("extreme_aspect", f"over {EXTREME_ASPECT:g}:1")):  # fmt: skip
            found = report.get(kind) or []
            rows = [found[i : i + 6] for i in range(0, len(found), 6)]
            if contact_sheet(rows, title, os.path.join(tmp, f"{kind}.png")):
                sheets[kind] = os.path.join(out_dir, f"{kind}.png")
        if report.get("labels"):
            ranked = [{"path": r["path"], "class": f"filed {r['class']}", "split": f"looks {r['predicted']}"}
                      for r in report["labels"]["ranking"]]  # fmt: skip
            rows = [ranked[i : i + 6] for i in range(0, len(ranked), 6)]
            if contact_sheet(rows, "likely wrong labels, least plausible first", os.path.join(tmp, "labels.png")):
                sheets["labels"] = os.path.join(out_dir, "labels.png")
        write_json(os.path.join(tmp, "report.json"), {**report, "sheets": sheets})
        swap_in(tmp, out_dir, "check", "--out")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sheets


def check_before_training(dataset: Dataset, drop: bool = False) -> tuple[dict[str, Any], list[str]]:
    """``train``'s part of the check: copies, leaks and label conflicts across its split.

    With ``drop``, ``dataset.train`` loses the copies (changed in place; files are never
    touched): of each group with no member in validation, all training members but the first;
    of a group with a member in validation (a leak), every training member; of a group under
    two classes (a conflict: which label is right is not known), every training member.

    Returns:
        The record (groups, findings, what was dropped) and one warning line per kind found.
    """
    items = [(p, label, "train") for p, label in dataset.train] + [(p, label, "val") for p, label in dataset.val]
    facts = facts_of([p for p, _, _ in items], dataset.root)
    groups = groups_of(items, [facts[p] for p, _, _ in items], dataset.class_names)
    dropped: list[str] = []
    if drop:
        for group in groups["exact"] + groups["near"]:
            train = sorted(m["path"] for m in group if m["split"] == "train")
            leaked_or_conflicting = any(m["split"] == "val" for m in group) or len({m["class"] for m in group}) > 1
            dropped += train if leaked_or_conflicting else train[1:]
        gone = set(dropped)
        dataset.train = [(p, label) for p, label in dataset.train if p not in gone]
    counts = {"conflicts": len(groups["conflicts"]), "leaks": len(groups["leaks"]),
              "copies": len(groups["exact"]) + len(groups["near"])}  # fmt: skip
    words = {"conflicts": "picture(s) filed under two classes (label conflicts)",
             "leaks": "picture(s) in both training and validation (leaks)",
             "copies": "group(s) of exact or near copies"}  # fmt: skip
    warnings = [f"{n} {words[k]}" for k, n in counts.items() if n]
    if dropped:
        warnings.append(f"--drop-duplicates left {len(dropped)} copied file(s) out of training")
    elif warnings:
        warnings.append("train with --drop-duplicates to leave the copies out of training")
    return {"groups": groups, "counts": counts, "dropped": sorted(dropped)}, warnings
