"""Training checkpoints: everything a killed run needs to continue exactly where it was.

    <output_dir>/checkpoints/step_000200/
        trainable.safetensors   the trainable leaves (LoRA A/B, or all params), f32
        opt_state.safetensors   the optimizer state's leaves, flattened in tree order
        state.json              step, seed, run fingerprint, loss history, time and tokens

A checkpoint is written to `step_N.tmp` and renamed when complete, so a kill during the write
leaves the previous checkpoint as the latest. The optimizer state is restored into the tree
structure of a freshly initialised optimizer (the same optax chain), so no pickling is needed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Optional

import jax
import numpy as np

_STEP_DIR = re.compile(r"^step_(\d{6,})$")


def _flatten(tree) -> dict:
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def _unflatten(like, flat: dict):
    leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
    out = []
    for path, leaf in leaves:
        key = jax.tree_util.keystr(path)
        if key not in flat:
            raise ValueError(f"checkpoint has no entry {key}")
        arr = flat[key]
        if arr.shape != np.shape(leaf):
            raise ValueError(f"checkpoint entry {key}: shape {arr.shape}, expected "
                             f"{np.shape(leaf)}")
        out.append(arr.astype(np.asarray(leaf).dtype))
    return jax.tree_util.tree_unflatten(treedef, out)


def save(directory: str, step: int, trainable, opt_state, state: dict, keep: int = 2) -> str:
    from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel
    final = os.path.join(directory, f"step_{step:06d}")
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    save_file(_flatten(trainable), os.path.join(tmp, "trainable.safetensors"))
    save_file(_flatten(opt_state), os.path.join(tmp, "opt_state.safetensors"))
    with open(os.path.join(tmp, "state.json"), "w", encoding="utf-8") as f:
        json.dump(dict(state, step=step), f, indent=1, sort_keys=True)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    for old in steps(directory)[:-keep] if keep > 0 else []:
        shutil.rmtree(os.path.join(directory, f"step_{old:06d}"), ignore_errors=True)
    return final


def steps(directory: str) -> list[int]:
    """Complete checkpoints in `directory`, oldest first."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        m = _STEP_DIR.match(name)
        if m and os.path.exists(os.path.join(directory, name, "state.json")):
            found.append(int(m.group(1)))
    return sorted(found)


def latest(directory: str) -> Optional[str]:
    found = steps(directory)
    return os.path.join(directory, f"step_{found[-1]:06d}") if found else None


def restore(path: str, trainable_like, opt_state_like) -> tuple:
    """(trainable, opt_state, state dict) from a checkpoint directory."""
    from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
    trainable = _unflatten(trainable_like, load_file(os.path.join(path, "trainable.safetensors")))
    opt_state = _unflatten(opt_state_like, load_file(os.path.join(path, "opt_state.safetensors")))
    with open(os.path.join(path, "state.json"), encoding="utf-8") as f:
        state = json.load(f)
    return trainable, opt_state, state
