"""cleanvision (the reference data-health library) on a folder, for comparison with `simplecnn
check`: its exact and near duplicate sets and its other findings, and how long it took.

    python -m venv /tmp/cvenv && /tmp/cvenv/bin/pip install cleanvision   # kept out of simplecnn
    /tmp/cvenv/bin/python benchmarks/cleanvision_compare.py FOLDER --check CHECK.json [--json out.json]

CHECK.json is `simplecnn check FOLDER --json` of the same folder: the script reports how many of
cleanvision's duplicate sets simplecnn's groups contain, and the other way round.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder")
    p.add_argument("--check", required=True)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    from cleanvision import Imagelab

    files = sorted(f for f in glob.glob(os.path.join(args.folder, "**", "*"), recursive=True) if os.path.isfile(f))
    start = time.perf_counter()
    lab = Imagelab(filepaths=files)
    lab.find_issues()
    seconds = time.perf_counter() - start
    summary = {row["issue_type"]: int(row["num_images"]) for _, row in lab.issue_summary.iterrows()}
    sets = {kind: [set(s) for s in lab.info[kind]["sets"]] for kind in ("exact_duplicates", "near_duplicates")}
    with open(args.check, encoding="utf-8") as f:
        ours = json.load(f)["groups"]
    our_sets = [set(m["path"] for m in g) for g in ours["exact"] + ours["near"]]
    theirs = sets["exact_duplicates"] + sets["near_duplicates"]
    covered = lambda s, others: any(s <= o or o <= s for o in others)  # noqa: E731
    report = {
        "files": len(files), "seconds": round(seconds, 1), "issues": summary,
        "exact_sets": len(sets["exact_duplicates"]), "near_sets": len(sets["near_duplicates"]),
        "their_sets_in_ours": sum(covered(s, our_sets) for s in theirs), "their_sets": len(theirs),
        "our_groups_in_theirs": sum(covered(s, theirs) for s in our_sets), "our_groups": len(our_sets),
        "only_theirs": [sorted(s) for s in theirs if not covered(s, our_sets)],
        "only_ours": [sorted(s) for s in our_sets if not covered(s, theirs)],
    }  # fmt: skip
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
