#!/usr/bin/env bash
# The whole recorded comparison of docs/recipe.md ("Measurements"): simplecnn's default recipe
# (--image-size auto) against the seed tutorial's plain recipe (256 px), in budgets of 5 and 15
# minutes, seeds 0, 1, 2, on hymenoptera, flower_photos and the lfw faces. About six and a half
# hours of wall-clock training with nothing else running; a rerun skips every run already in a
# cell's runs.jsonl, so it can be stopped and taken up again.
#
#     bash benchmarks/recipe_grid.sh            # DATA=../shared/data LFW=<a folder to write>
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
LFW=${LFW:-${TMPDIR:-/tmp}/simplecnn_lfw}
PY=.venv/bin/python
[ -d "$LFW" ] || $PY -c "import sys; from simplecnn.demo import write_lfw_folders; write_lfw_folders(sys.argv[1])" "$LFW"

cell() {  # folder, budget in seconds, results folder
    $PY benchmarks/recipe_comparison.py "$1" --recipes default --sizes auto --budgets "$2" --seeds 0 1 2 --out "$3"
    $PY benchmarks/recipe_comparison.py "$1" --recipes plain --sizes 256 --budgets "$2" --seeds 0 1 2 --out "$3"
}

R=benchmarks/results
cell "$DATA/hymenoptera_data" 300 $R/recipe_auto_hymenoptera_300
cell "$DATA/flower_photos" 300 $R/recipe_candidates_flowers_300
cell "$LFW" 300 $R/recipe_auto_lfw_300
cell "$DATA/hymenoptera_data" 900 $R/recipe_auto_hymenoptera_900
cell "$DATA/flower_photos" 900 $R/recipe_auto_flowers_900
cell "$LFW" 900 $R/recipe_auto_lfw_900
