"""How much accelerator memory each JAX process takes, for N processes sharing one device.

By default JAX's GPU client preallocates 75% of the device's memory when the first array is
placed, in every process. That is right for one process per GPU (a Dataflow worker with
`--experiments=no_use_multiple_sdk_containers`, our default): no allocator work during
generation. It is wrong for several processes on one GPU (Dataflow's default of one SDK process
per vCPU, a local DirectRunner with --direct_num_workers=N on a GPU box): the second process
finds 25% left and fails. For them, either preallocation goes off (memory grows on demand) or
each process gets an explicit share.

The settings are environment variables read once, when JAX initialises its backend, so they
must be in place before the first JAX computation in the process: in the container's ENV
(launch/dataflow_*/Dockerfile), or in the environment a launcher hands its worker processes
(launch/local/run.py). They do nothing on CPU, so the same settings are safe everywhere.
"""

from __future__ import annotations

import os
from typing import Mapping, MutableMapping, Optional

PREALLOCATE = "XLA_PYTHON_CLIENT_PREALLOCATE"
MEM_FRACTION = "XLA_PYTHON_CLIENT_MEM_FRACTION"
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def check_memory_env(environ: Mapping[str, str] = os.environ) -> None:
    """Raises ValueError for values JAX would misread (e.g. MEM_FRACTION=75 meaning 75%)."""
    pre = environ.get(PREALLOCATE)
    if pre is not None and pre.lower() not in _TRUE + _FALSE:
        raise ValueError(f"{PREALLOCATE}={pre!r}: expected true or false")
    frac = environ.get(MEM_FRACTION)
    if frac is not None:
        try:
            value = float(frac)
        except ValueError:
            raise ValueError(f"{MEM_FRACTION}={frac!r}: expected a fraction such as .45") from None
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{MEM_FRACTION}={frac!r}: a fraction of device memory in (0, 1], "
                             "e.g. .45 for 45%")


def memory_env(processes_per_device: int, *, fraction: Optional[float] = None,
               environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables to add so `processes_per_device` JAX processes fit on one accelerator.

    One process: nothing (JAX's 75% preallocation). Several: preallocation off, or with
    `fraction` (the share of each process, e.g. 0.9 / N) preallocation kept at that share, which
    fails at start-up rather than mid-run when the processes do not fit. Variables already set
    in `environ` win: an explicit choice (a Dockerfile ENV, the user's shell) is never
    overridden, only checked.
    """
    if processes_per_device < 1:
        raise ValueError(f"processes_per_device must be >= 1, got {processes_per_device}")
    check_memory_env(environ)
    if fraction is not None and not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if processes_per_device == 1 and fraction is None:
        return {}
    if PREALLOCATE in environ or MEM_FRACTION in environ:
        return {}
    if fraction is None:
        return {PREALLOCATE: "false"}
    if fraction * processes_per_device > 1.0:
        raise ValueError(f"{processes_per_device} processes x {fraction} of the device "
                         "exceeds it")
    return {MEM_FRACTION: format(round(fraction, 3), "g")}


def backend_initialized() -> bool:
    """Whether JAX has created its backends in this process (after which the variables above
    are never read again)."""
    try:
        from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
    except ImportError:  # pragma: no cover - JAX moved it; assume the worst
        return True
    probe = getattr(xla_bridge, "backends_are_initialized", None)
    return True if probe is None else bool(probe())


def apply_memory_env(env: Mapping[str, str],
                     environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Sets `env` (from memory_env) in this process before JAX initialises; returns what changed.

    Raises RuntimeError when JAX is already initialised with different values: they would be
    silently ignored, and a process that preallocated 75% cannot give it back.
    """
    changed = {k: v for k, v in env.items() if environ.get(k) != v}
    if changed and backend_initialized():
        raise RuntimeError(
            f"JAX is already initialised in this process, so {sorted(changed)} would be "
            "ignored; set them before the first JAX computation (e.g. in the container ENV or "
            "the launcher's environment)")
    environ.update(changed)
    check_memory_env(environ)
    return changed
