"""LoRA adapters shipped inside the package, trained on the embedded default model.

An adapter is named in three ways wherever one is accepted (`load_model(adapter=...)`, the
model handler, `pipelines.refine --adapter`):

  a path        an adapter directory written by pipelines/adapt.py (local or gs://);
  shipped:TASK  the adapter this package ships for TASK (see SHIPPED), found in the installed
                package of the process that loads it: a Dataflow worker resolves it in its own
                site-packages, not at the launcher's path;
  none / empty  no adapter.

`pipelines.refine --adapter=auto` (its default) picks `shipped:TASK` when the job runs the
embedded default model and the task has a shipped adapter, and no adapter otherwise: an adapter
only fits the weights it was trained on.

Shipped adapters, each with the command that reproduces it in the README (Model adaptation):
  pii        rank-8 LoRA on q/k/v/o/gate/up/down of SmolLM2-135M-Instruct, float16 (4.9 MB).
  toxicity   the same shape, trained on verified rewrites of public tweets (4.9 MB).
"""

from __future__ import annotations

import os
from typing import Optional

SHIPPED = ("pii", "toxicity")
AUTO = "auto"  # resolved per job by `auto_adapter`, never loaded as such
_PREFIX = "shipped:"
_NONE = ("", "none")


def shipped_path(task: str) -> str:
    """The directory of the adapter shipped for `task`."""
    if task not in SHIPPED:
        raise ValueError(f"no adapter is shipped for task {task!r}; shipped: {SHIPPED}")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), task)
    if not os.path.exists(os.path.join(path, "adapter.safetensors")):
        raise FileNotFoundError(f"the adapter shipped for {task!r} is missing from {path}: "
                                "a broken install?")
    return path


def adapter_path(adapter: Optional[str]) -> Optional[str]:
    """The adapter directory (or file) to merge for a spec (see the module docstring), or
    None for no adapter."""
    if adapter is None or adapter.strip().lower() in _NONE:
        return None
    if adapter.startswith(_PREFIX):
        return shipped_path(adapter[len(_PREFIX):])
    if adapter == AUTO:
        raise ValueError(f"adapter {AUTO!r} depends on the job's task and model: resolve it "
                         "with gdr_beam.adapters.auto_adapter(task, model) first")
    return adapter


def auto_adapter(task: str, model: Optional[str]) -> Optional[str]:
    """`shipped:TASK` when `model` is the embedded default (None) and TASK has a shipped
    adapter, else None."""
    return f"{_PREFIX}{task}" if model is None and task in SHIPPED else None
