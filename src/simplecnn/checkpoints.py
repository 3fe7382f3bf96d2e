"""Model files of a run: saved atomically, loaded with Keras's safe mode and checked against
the run, and the per-epoch backups a killed run resumes from. (The Keras side of runs.py.)"""

from __future__ import annotations

import os
import shutil
from typing import Any

import keras
import numpy as np

from simplecnn.config import ModelConfig
from simplecnn.errors import RunError
from simplecnn.files import atomic_write, disk_full_error, is_disk_full, write_json
from simplecnn.heads import head_units
from simplecnn.models import leaf_layers
from simplecnn.runs import BACKUP_DIR, MODEL_FILE, Backup, latest_backup

__all__ = ["save_model_atomic", "load_model_file", "check_model", "save_backup", "restore_seed_states",
           "Backup", "latest_backup"]  # fmt: skip


def save_model_atomic(model: keras.Model, path: str) -> None:
    """Save a .keras file under a temporary name, then rename: never a half-written model."""
    with atomic_write(path, suffix=".keras") as tmp:
        model.save(tmp)


def load_model_file(path: str) -> keras.Model:
    """``keras.models.load_model`` with Keras's safe mode on, and one clear error.

    Safe mode refuses ``Lambda`` layers and other arbitrary code; there is deliberately no
    way to turn it off from simplecnn.
    """
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise RunError(f"{path}: cannot read the model file ({exc.strerror})") from None
    if magic != b"PK\x03\x04":
        raise RunError(f"{path}: not a Keras model file (.keras files are zip archives)")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a bad or hostile file
        text = " ".join(str(exc).split())
        if "Lambda" in text or "safe_mode" in text:
            raise RunError(
                f"{path}: refused: the model contains a Lambda layer or other arbitrary code, "
                "which Keras's safe mode does not load"
            ) from None
        raise RunError(f"{path}: corrupt or incomplete Keras model file ({text[:200]})") from None


def check_model(model: keras.Model, config: ModelConfig, class_names: list[str], model_path: str) -> None:
    """Raise RunError unless ``model`` takes the run's input shape and gives its classes."""
    expected_out = head_units(len(class_names))
    in_shape = getattr(model, "input_shape", None)  # subclassed models have none
    if in_shape is None and isinstance(getattr(model, "config", None), ModelConfig):
        in_shape = (None, *model.config.input_shape)
    if in_shape is not None and tuple(in_shape[1:]) != tuple(config.input_shape):
        raise RunError(
            f"{model_path}: the model takes images of shape {tuple(in_shape[1:])} but the run "
            f"was trained at {tuple(config.input_shape)}; the model file does not belong to this run"
        )
    try:
        out_shape = tuple(model.compute_output_shape((None, *config.input_shape)))
    except Exception:
        raise RunError(
            f"{model_path}: the model does not take the run's input shape {config.input_shape}"
        ) from None
    if out_shape[-1] != expected_out:
        raise RunError(
            f"{model_path}: the model has {out_shape[-1]} outputs but the run has "
            f"{len(class_names)} classes {class_names}; the model file does not belong to this run"
        )


def _seed_states(model: keras.Model) -> dict[str, list[int]]:
    return {
        layer.name: [int(v) for v in keras.ops.convert_to_numpy(layer.seed_generator.state.value)]
        for layer in leaf_layers(model)
        if getattr(layer, "seed_generator", None) is not None
    }


def restore_seed_states(model: keras.Model, states: dict[str, list[int]]) -> None:
    """Give dropout layers back the random-generator state they had at the backup."""
    for layer in leaf_layers(model):
        gen = getattr(layer, "seed_generator", None)
        if gen is not None and layer.name in states:
            gen.state.assign(np.asarray(states[layer.name], dtype=gen.state.dtype))


def save_backup(run_dir: str, model: keras.Model, epochs_done: int, state: dict[str, Any]) -> None:
    """Write ``backup/epoch-NNNN/`` (model with optimizer, state.json) atomically; drop older ones.

    The folder is filled under a temporary name and renamed, so a kill leaves the previous
    backup or this one, complete.
    """
    root = os.path.join(run_dir, BACKUP_DIR)
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, f"epoch-{epochs_done:04d}")
    tmp = os.path.join(root, f".tmp-epoch-{epochs_done:04d}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        model.save(os.path.join(tmp, MODEL_FILE))
        write_json(os.path.join(tmp, "state.json"), {**state, "seed_states": _seed_states(model)})
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # never a half backup left taking space
        if is_disk_full(exc):
            raise disk_full_error(final, exc) from exc
        raise
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    for name in os.listdir(root):
        if name != os.path.basename(final):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
