"""Data parallelism over the local devices of one worker: one model, several accelerators.

A worker VM with several GPUs (or a TPU host with several chips) runs one SDK process that
sees all of them. Rather than one model copy per process and device, the engine keeps one copy
of the parameters replicated on every device and splits each generation batch by rows:

    mesh        1-D `jax.sharding.Mesh` over the devices, axis "data"
    parameters  replicated (PartitionSpec())
    batch       tokens, per-row state and the KV cache split on their leading (batch) axis
    padding     the batch is padded to a multiple of the device count, so shards are equal

Rows never interact in a decoder forward pass, so no collective runs during generation: each
device decodes its own rows and jit follows the input shardings. The model is small enough to
fit on one device (that is what one worker serves); tensor parallelism is out of scope.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "data"
# A container image sets GDR_BEAM_DEVICES=all so that a worker whose one SDK process owns several
# GPUs or TPU chips uses them all, with no change to the pipeline (launch/dataflow_*/Dockerfile).
DEVICES_ENV = "GDR_BEAM_DEVICES"
Devices = Union[None, str, Sequence[jax.Device]]


def resolve_devices(device: Optional[jax.Device] = None, devices: Devices = None
                    ) -> list[jax.Device]:
    """The devices a model runs on; one device means no sharding at all.

    device: one device (default jax.devices()[0]). devices: None (just `device`), "all"
    (jax.local_devices(): every accelerator this process owns), or an explicit list.
    With neither given, $GDR_BEAM_DEVICES ("all") stands in for `devices`.
    """
    if device is None and devices is None:
        devices = os.environ.get(DEVICES_ENV) or None
    if devices is None:
        return [device or jax.devices()[0]]
    if device is not None:
        raise ValueError("give load_model either device= or devices=, not both")
    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(f"devices must be None, 'all' or a list of devices, got {devices!r}"
                             f" (also the only value ${DEVICES_ENV} may take)")
        chosen = list(jax.local_devices())
    else:
        chosen = list(devices)
    if not chosen:
        raise ValueError("devices is empty")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"devices lists a device twice: {chosen}")
    platforms = {d.platform for d in chosen}
    if len(platforms) > 1:
        raise ValueError(f"devices mix platforms {sorted(platforms)}; use one kind")
    here = jax.process_index()
    remote = [d for d in chosen if d.process_index != here]
    if remote:
        # A multi-host mesh would need every host to run the same program in lockstep, which
        # Beam workers (independent processes) never do.
        raise ValueError(f"devices {remote} belong to another process; only local devices")
    return chosen


class DataParallel:
    """Shardings for replicated parameters and a batch split across `devices`."""

    def __init__(self, devices: Sequence[jax.Device]):
        if len(devices) < 2:
            raise ValueError("DataParallel needs at least two devices")
        self.devices = list(devices)
        self.mesh = Mesh(np.asarray(self.devices), (AXIS,))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.batch = NamedSharding(self.mesh, PartitionSpec(AXIS))

    @property
    def size(self) -> int:
        return len(self.devices)

    def __repr__(self):
        return f"DataParallel({self.size} x {self.devices[0].platform})"

    def pad_batch(self, n: int) -> int:
        """The smallest multiple of the device count that is >= n (equal shards)."""
        return -(-n // self.size) * self.size

    def put_params(self, tree):
        return jax.device_put(tree, self.replicated)

    def put_batch(self, array):
        """A host array whose leading axis is the batch, split across the devices."""
        return jax.device_put(array, self.batch)

    def constrain(self, tree):
        """Inside jit: batch-leading arrays split by rows, scalars replicated. Pins the layout
        of what prefill creates (the KV cache starts as zeros, which carry no sharding) and of
        what the decode loop hands back, so every call sees the same input shardings."""
        def one(x):
            sharding = self.replicated if x.ndim == 0 else self.batch
            return jax.lax.with_sharding_constraint(x, sharding)
        return jax.tree.map(one, tree)
