"""Run directories: every file of one is written and read here.

A run directory holds everything later steps need, with paths relative to it, so it can be
copied elsewhere and still work:

    .simplecnn         marks the folder as a simplecnn run (see simplecnn.outputs)
    model.keras        the best model (lowest validation loss), float32, written atomically
    run.json           model config, class names, image size, pixel convention, recipe, versions
    history.csv        one row per epoch (Keras CSVLogger)
    curves.png         loss and accuracy per epoch
    files.json         every file used (train / validation) and every file skipped, with why
    logs/              TensorBoard logs
    backup/            while training: the last finished epoch (model, optimizer, random state)
    evaluation/        what `evaluate` writes (report.json and PNGs), unless told otherwise
    export/FORMAT/     what `export` writes
    explain/           what `explain` writes

Every file is written under a temporary name and renamed into place, so a kill at any moment
leaves either the old file or the new one, never half of one; a command writing into a run
holds its lock (:class:`simplecnn.outputs.RunLock`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from simplecnn.config import ModelConfig, TrainConfig
from simplecnn.data import Dataset, Skipped
from simplecnn.errors import RunError
from simplecnn.files import (
    read_json,
    write_json,
    write_text,
)  # fmt: skip
from simplecnn.locks import RunLock
from simplecnn.outputs import check_place, claim_folder, remove_own_folder

__all__ = [
    "RunError", "Run", "read_run", "load_run", "read_history", "truncate_history", "Backup",
    "latest_backup", "MODEL_FILE", "RUN_FILE", "HISTORY_FILE", "CURVES_FILE", "FILES_FILE",
    "LOG_DIR", "BACKUP_DIR", "CHECK_FILE", "PIXELS", "open_run", "write_record", "write_files_record",
    "read_record", "run_lock_if_inside",
]  # fmt: skip

MODEL_FILE = "model.keras"
RUN_FILE = "run.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
FILES_FILE = "files.json"
CHECK_FILE = "check.json"  # copies, leaks and label conflicts found before training
LOG_DIR = "logs"
BACKUP_DIR = "backup"

# The pixel convention, recorded in run.json (simplecnn.data.images is where it is applied).
PIXELS = "RGB (or L), EXIF-oriented, bilinear resize of the whole image, uint8 / 255"


# --- opening a run to train into -------------------------------------------------------------


def open_run(
    out_dir: str, config: TrainConfig, data_dir: str, overwrite: bool, resume: bool
) -> tuple["Backup | None", RunLock, bool]:
    """Make ``out_dir`` ready for ``train`` and lock it.

    ``out_dir`` must be new, empty or a simplecnn run, and never the data folder, inside it or
    around it. A run left unfinished with the same settings resumes from its last finished epoch
    (the same command again after a kill); a finished run is replaced only with ``overwrite``,
    and only if it holds nothing but what simplecnn writes.

    Returns:
        The backup to resume from (or None), the held lock, and whether the folder was created
        by this call.
    """
    check_place(out_dir, "--out", data=[data_dir])
    created = claim_folder(out_dir, "run", "--out", replace=False)
    lock = RunLock(out_dir, "train")
    try:
        lock.acquire()
        if overwrite:
            claim_folder(out_dir, "run", "--out", replace=True)
        meta = read_record(out_dir)
        if meta is None:
            if resume:
                raise RunError(f"{out_dir}: nothing to resume (no unfinished run there); drop --resume")
            claim_folder(out_dir, "run", "--out", replace=True)  # a run killed before its run.json
            return None, lock, created
        if meta.get("status") != "training":
            raise RunError(
                f"{out_dir}: run directory already exists (a finished run); pass --overwrite to "
                "replace it or choose another --out"
            )
        if meta.get("train_config") != config.to_dict() or meta.get("data_dir") != os.path.abspath(data_dir):
            raise RunError(
                f"{out_dir}: holds an unfinished run with other settings or data; run the same "
                "command to resume it, or pass --overwrite to start again"
            )
        backup = latest_backup(out_dir)
        if backup is None:  # killed before the first epoch finished: nothing to keep
            claim_folder(out_dir, "run", "--out", replace=True)
        return backup, lock, created
    except BaseException:
        lock.release()
        if created:
            remove_own_folder(out_dir, "run")
        raise


def read_record(run_dir: str) -> dict[str, Any] | None:
    """run.json as a dict, or None if it is missing or unreadable."""
    try:
        meta = read_json(os.path.join(run_dir, RUN_FILE))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def write_record(run_dir: str, meta: dict[str, Any]) -> None:
    """Write run.json (atomically)."""
    write_json(os.path.join(run_dir, RUN_FILE), meta)


def write_files_record(run_dir: str, dataset: Dataset, failed: list[Skipped]) -> None:
    """files.json: every file used for training and validation, every file skipped and why,
    with paths relative to the data folder."""
    root, names = dataset.root, dataset.class_names
    write_json(os.path.join(run_dir, FILES_FILE), {
        "data_dir": os.path.abspath(root),
        "train": [[os.path.relpath(p, root), names[l]] for p, l in dataset.train],
        "val": [[os.path.relpath(p, root), names[l]] for p, l in dataset.val],
        "skipped": [{"path": os.path.relpath(s.path, root), "reason": s.reason}
                    for s in [*dataset.skipped, *failed]],  # fmt: skip
    })  # fmt: skip


def read_history(path: str, rows: int | None = None) -> dict[str, list[float]]:
    """history.csv -> {metric: [value per epoch]}; keep the first ``rows`` rows if given."""
    if not os.path.isfile(path):
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    if rows is not None:
        records = records[:rows]
    out: dict[str, list[float]] = {}
    for record in records:
        for key, value in record.items():
            if key != "epoch" and value not in (None, "", "NA"):  # CSVLogger writes NA for absent keys
                out.setdefault(key, []).append(float(value))
    return out


def truncate_history(path: str, rows: int) -> None:
    """Keep the header and the first ``rows`` epochs of history.csv (atomically)."""
    if not os.path.isfile(path):
        return
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        lines = f.readlines()
    write_text(path, "".join(lines[: rows + 1]))


# --- loading --------------------------------------------------------------------------------


@dataclass
class Run:
    """A run directory: what it was trained with, and its model (loaded with Keras, checked
    against the run, on first use: reading a run's metadata needs no Keras)."""

    path: str
    meta: dict[str, Any]
    _model: Any = field(default=None, repr=False)

    @property
    def model(self) -> Any:
        """The run's ``model.keras`` as a ``keras.Model`` (loaded on first use)."""
        if self._model is None:
            from simplecnn.checkpoints import check_model, load_model_file

            path = os.path.join(self.path, MODEL_FILE)
            model = load_model_file(path)
            check_model(model, ModelConfig.from_dict(self.meta["model_config"]), self.class_names, path)
            self._model = model
        return self._model

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def image_size(self) -> tuple[int, int]:
        h, w, _ = self.meta["model_config"]["input_shape"]
        return (h, w)

    @property
    def channels(self) -> int:
        return int(self.meta["model_config"]["input_shape"][2])

    @property
    def num_outputs(self) -> int:
        return int(self.meta["model_config"]["num_classes"])

    @property
    def style(self) -> str | None:
        return self.meta.get("style") or self.meta.get("train_config", {}).get("style")

    def files(self, split: str) -> list[tuple[str, int]]:
        """The ``(path, label)`` pairs of the run's ``"train"`` or ``"val"`` images (files.json),
        as absolute paths; empty if the record is gone."""
        try:
            record = read_json(os.path.join(self.path, FILES_FILE))
        except (OSError, ValueError):
            return []
        root, names = record.get("data_dir", ""), self.class_names
        return [(rel if os.path.isabs(rel) else os.path.join(root, rel), names.index(name))
                for rel, name in record.get(split, []) if name in names]  # fmt: skip


def run_lock_if_inside(run_dir: str, out_dir: str, command: str) -> Any:
    """The run's lock when ``out_dir`` lies inside the run (so a run being trained is never
    written into by another command at the same time); a no-op context otherwise."""
    real_run, real_out = os.path.realpath(run_dir), os.path.realpath(out_dir)
    if real_out.startswith(real_run.rstrip(os.sep) + os.sep):
        return RunLock(run_dir, command)
    return contextlib.nullcontext()


def read_run(run_dir: str | os.PathLike) -> Run:
    """A run directory's metadata, checked, without loading its model (no Keras needed).

    Raises:
        RunError: the folder is not a finished run directory, or its run.json is unreadable.
    """
    run_dir = os.fspath(run_dir)
    meta_path = os.path.join(run_dir, RUN_FILE)
    if not os.path.isdir(run_dir):
        raise RunError(f"{run_dir}: no such run directory; pass the --out folder of a train run")
    if not os.path.isfile(meta_path) or not os.path.isfile(os.path.join(run_dir, MODEL_FILE)):
        raise RunError(
            f"{run_dir}: not a run directory (needs {RUN_FILE} and {MODEL_FILE}); pass the "
            "--out folder of a finished `simplecnn train`"
        )
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        ModelConfig.from_dict(meta["model_config"])
        list(meta["class_names"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{meta_path}: unreadable run description ({exc})") from None
    return Run(run_dir, meta)


def load_run(run_dir: str | os.PathLike) -> Run:
    """Load a run directory's model and metadata, and check that they agree.

    Raises:
        RunError: the folder is not a finished run directory, its model cannot be loaded, or
            the model does not take the run's input shape or give its number of classes.
    """
    run = read_run(run_dir)
    run.model  # noqa: B018 - load and check now, so a bad model file fails here
    return run


# --- backups (resume after a kill; checkpoints.py writes them) --------------------------------

_BACKUP_RE = re.compile(r"^epoch-(\d{4,})$")


@dataclass
class Backup:
    """The state of a run after ``epochs_done`` finished epochs."""

    path: str
    epochs_done: int
    state: dict[str, Any]


def latest_backup(run_dir: str) -> Backup | None:
    """The newest complete backup of ``run_dir``, or None."""
    root = os.path.join(run_dir, BACKUP_DIR)
    if not os.path.isdir(root):
        return None
    found = sorted(
        (int(m.group(1)), name)
        for name in os.listdir(root)
        if (m := _BACKUP_RE.match(name))
    )
    for epochs_done, name in reversed(found):
        path = os.path.join(root, name)
        try:
            with open(os.path.join(path, "state.json"), encoding="utf-8") as f:
                state = json.load(f)
        except (OSError, ValueError):
            continue
        if os.path.isfile(os.path.join(path, MODEL_FILE)):
            return Backup(path, epochs_done, state)
    return None


# Keras-side names that lived here before checkpoints.py; importing them loads Keras.
_CHECKPOINTS = ("save_model_atomic", "load_model_file", "save_backup", "restore_seed_states")


def __getattr__(name: str) -> Any:
    if name in _CHECKPOINTS:
        from simplecnn import checkpoints

        return getattr(checkpoints, name)
    raise AttributeError(f"module 'simplecnn.runs' has no attribute {name!r}")
