"""The catalogue of hostile inputs the adversarial suite drives simplecnn with.

Each kind names what it throws at simplecnn and what must happen; its cases are the data the
tests in this folder are parametrized over, so the count in the table is the count that runs.
``docs/what-happens-when.md`` holds the table this module renders (a test checks they agree):

    python tests/adversarial/catalogue.py    # prints the table
"""

from __future__ import annotations

from dataclasses import dataclass

# --- output paths pointed at what the user owns ----------------------------------------------
# Placeholders: DATA (photos/, classes cats/ and dogs/), CLASS (photos/cats), IMAGE (a photo
# in it), ROOT (the folder holding photos/ and runs/), RUN (runs/run, a finished run), RUNS
# (runs/, the run's parent), MINE (a folder of the user's: notes.txt, functional.png),
# MINEFILE (mine.csv), MINEPNG (mine.png).
OUTPUT_PATHS = [
    ("train DATA --out DATA", "train into the data folder"),
    ("train DATA --out DATA --overwrite", "train into the data folder, --overwrite"),
    ("train DATA --out CLASS", "train into a class folder"),
    ("train DATA --out ROOT --overwrite", "train into the folder holding the data, --overwrite"),
    ("train DATA --out MINE", "train into a user's folder"),
    ("train DATA --out MINE --overwrite", "train into a user's folder, --overwrite"),
    ("train DATA --out RUN", "train into a finished run without --overwrite"),
    ("train DATA --out RUNS --overwrite", "train into the folder holding a run, --overwrite"),
    ("evaluate RUN DATA --out DATA", "evaluate into the data folder"),
    ("evaluate RUN DATA --out CLASS", "evaluate into a class folder"),
    ("evaluate RUN DATA --out RUN", "evaluate into the run folder itself"),
    ("evaluate RUN DATA --out RUNS", "evaluate into the run's parent"),
    ("evaluate RUN DATA --out MINE", "evaluate into a user's folder"),
    ("explain RUN IMAGE --out DATA", "explain into the data folder"),
    ("explain RUN CLASS --out CLASS", "explain a class folder into itself"),
    ("explain RUN IMAGE --out RUN", "explain into the run folder itself"),
    ("explain RUN IMAGE --out RUNS", "explain into the run's parent"),
    ("explain RUN IMAGE --out MINE", "explain into a user's folder"),
    ("export RUN --format keras --out RUN", "export into the run folder itself"),
    ("export RUN --format keras --out RUNS", "export into the run's parent"),
    ("export RUN --format keras --out MINE", "export into a user's folder"),
    ("export RUN --format keras --out RUN/evaluation", "export over the run's evaluation"),
    ("export RUN --format keras --out ROOT", "export into a folder holding the run and data"),
    ("predict RUN DATA --output MINEFILE", "predictions over a user's file"),
    ("predict RUN DATA --output IMAGE", "predictions over a photo"),
    ("predict RUN DATA --output MINE", "predictions into a folder path"),
    ("lr-find DATA --out MINEPNG --steps 5", "lr-find plot over a user's PNG"),
    ("lr-find DATA --out CLASS/lr.png --steps 5", "lr-find plot into a class folder"),
    ("compare --plot-dir MINE --input-shape 32,32,3", "plot_model PNGs over a user's PNG"),
    ("demo --out MINE --epochs 1", "demo into a user's folder"),
    ("check DATA --out DATA", "check's report into the data folder"),
    ("check DATA --out CLASS", "check's report into a class folder"),
    ("check DATA --out MINE", "check's report into a user's folder"),
    ("check DATA --out RUN", "check's report into a run"),
]

# --- file names: bytes the user chose --------------------------------------------------------
FILE_NAMES = [
    (b"bad\xff\xfe.png", "bytes that are not UTF-8"),
    (b"line\nbreak.png", "a newline"),
    (b"=cmd|' -C calc'!A0.png", "a leading = (spreadsheet formula)"),
    (b"-rf.png", "a leading -"),
    (b"  spaces  .png", "leading and trailing spaces"),
    ("사진 ü 😀.png".encode(), "non-ASCII letters and an emoji"),
    (b"quote\"comma,.png", "a quote and a comma"),
]

# --- links inside a data folder --------------------------------------------------------------
# (link inside cats/, target relative to the data folder, what happens)
LINKS = [
    ("loop", ".", "link to the data folder: cut as a loop"),
    ("up", "..", "link to the folder holding the data: cut as a loop"),
    ("self", "cats", "link to its own class folder: cut as a loop"),
    ("root", "/", "link to /: cut as a loop, never walked"),
    ("other", "dogs", "link to another class folder: skipped"),
    ("dog.png", "dogs/img_000.png", "file link into another class: skipped"),
    ("twin.png", "cats/img_001.png", "a second name for an image of the class: counted once"),
    ("dangling.png", "nowhere.png", "dangling link: skipped"),
    ("chain", "cats/chain2", "a link to a link to the data folder: cut as a loop"),
]

# --- uploads to `serve` -------------------------------------------------------------------------
# (name, status) for fixed bodies; the hypothesis test adds random ones.
UPLOADS = [
    ("empty file", 400), ("JPEG cut inside its header", 400), ("PNG cut inside its header", 400),
    ("PNG with a bad checksum", 400), ("WebP cut short", 400), ("GIF cut short", 400),
    ("BMP cut short", 400), ("TIFF (a real image of another type)", 415), ("PDF", 415),
    ("HTML", 415), ("bytes over the upload limit", 413), ("two files in one request", 400),
    ("the file under another field name", 400), ("?explain=banana", 400),
    ("an image over the pixel limit", 413),
]

# --- flag values --------------------------------------------------------------------------------
FLAG_VALUES = ["nan", "inf", "-inf", "-1", "0", "1e30", "99999999999999999999", "3.5", "abc", ""]

# --- faults ---------------------------------------------------------------------------------------
FAULTS = [
    "a second train into a run being trained",
    "evaluate into a run being trained",
    "export into a run being trained",
    "a lock left by a killed process",
    "kill -9 during bfloat16 training, resume, export onnx and litert",
    "a file that decodes badly during evaluate",
    "a full disk",
    "serve on a port in use",
    "serve on a host that is not an address",
    "serve on port 99999",
]

# --- limits ---------------------------------------------------------------------------------------
LIMITS = [
    ("train DATA --image-size 100000", "an image side over 8192"),
    ("train DATA --image-size 4096", "a step that does not fit in memory (estimate refused)"),
    ("train DATA --epochs 99999999999999999999", "epochs beyond any machine"),
    ("train DATA --batch-size 100000", "a batch beyond the bound"),
    ("compare --input-shape 8192,8192,3", "compare at a size that does not fit in memory"),
    ("bench --image-size 8192", "bench at a size that does not fit in memory"),
]


@dataclass(frozen=True)
class Kind:
    name: str
    what: str
    outcome: str
    cases: int


def kinds() -> list[Kind]:
    from flags import numeric_flags  # the flag list is read from the parser itself

    return [
        Kind("output paths", "an output path that is the data, inside it, around it, the run, "
             "its parent, or a folder or file simplecnn did not make, for every command",
             "refused: one line, exit 2; every existing file unchanged byte for byte",
             len(OUTPUT_PATHS)),
        Kind("file names", "names that are not UTF-8, hold newlines, start with = or -, ...",
             "trained, listed in files.json, predicted (CSV and JSON), explained and "
             "evaluated; each name round-trips to the same bytes", len(FILE_NAMES)),
        Kind("links", "links in a class folder to the data, its parent, /, another class, a "
             "file of another class, itself, nowhere",
             "an image is counted only under the class folder it sits in; loops cut, the rest "
             "skipped with the reason", len(LINKS)),
        Kind("uploads", "bodies posted to serve's /predict: truncated, corrupt, foreign, "
             "oversized, several files, bad parameters (plus random bodies, hypothesis)",
             "a JSON error with 400, 413 or 415 as the README says; never a 500", len(UPLOADS)),
        Kind("flag values", "every numeric flag of every command given each of "
             f"{', '.join(repr(v) for v in FLAG_VALUES)} (plus random text, hypothesis)",
             "accepted within the stated bounds, else one line and exit 2",
             len(numeric_flags()) * len(FLAG_VALUES)),
        Kind("faults", "concurrent writers, killed processes, a bad file mid-report, a full "
             "disk, a port in use", "one line and exit 2 (or a resumed run); nothing "
             "half-written", len(FAULTS)),
        Kind("limits", "sizes and counts beyond what the machine holds",
             "refused before anything is allocated, with the estimate and what would fit",
             len(LIMITS)),
    ]  # fmt: skip


def render_table() -> str:
    """The markdown table of docs/what-happens-when.md's catalogue section."""
    lines = ["| kind | what is thrown at simplecnn | what simplecnn does | cases |", "|---|---|---|---|"]
    for k in kinds():
        lines.append(f"| {k.name} | {k.what} | {k.outcome} | {k.cases} |")
    lines.append(f"| **all** | | | **{sum(k.cases for k in kinds())}** |")
    return "\n".join(lines)


if __name__ == "__main__":
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    print(render_table())
