"""Parallelism over the local devices of one worker: one model, several accelerators.

A worker VM with several GPUs (or a TPU host with several chips) runs one SDK process that
sees all of them. The engine keeps one copy of the model across them, on a 2-D
`jax.sharding.Mesh` of shape (data, model):

    data axis    each generation batch is split by rows (tokens, per-row state, KV cache);
                 rows never interact in a decoder pass, so this axis needs no collective
    model axis   tensor parallelism (the Megatron split) for a model larger than one device:
                 q/k/v and gate/up projections split by output columns, o_proj and down_proj
                 by input rows (one all-reduce after each), embeddings by hidden columns, the
                 head by vocab columns, the KV cache by kv heads (replicated when they do not
                 divide), norms replicated
    padding      the batch is padded to a multiple of the data-axis size, so shards are equal

Only the layouts are chosen here: jit partitions the same program the single device runs
(GSPMD), so results equal single-device results up to float summation order. A weight whose
split axis does not divide by the model-axis size stays replicated (logged). The fused q|k|v
and gate|up kernels are split as stored, so a shard boundary need not fall on a head or on the
gate/up seam; XLA then moves activations between devices in the layer (small at decode time),
never weights.

`devices="all"` (or $GDR_BEAM_DEVICES=all) is the pure data-parallel mesh (n x 1);
`mesh="2x4"` (or $GDR_BEAM_MESH=2x4) asks for data 2 x model 4.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gdr_beam.model.llama import LayerCache

AXIS = "data"
MODEL_AXIS = "model"
# "DxM": data x model devices, e.g. GDR_BEAM_MESH=1x4 runs a model too large for one chip
# over the 4 chips of a TPU v5e 2x2 worker.
MESH_ENV = "GDR_BEAM_MESH"
MeshSpec = Union[None, str, Sequence[int], Mesh]
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


def parse_mesh(spec: Union[str, Sequence[int]]) -> tuple[int, int]:
    """"2x4" or (2, 4) -> (data, model) sizes."""
    try:
        parts = spec.lower().split("x") if isinstance(spec, str) else list(spec)
        data, model = (int(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"mesh must be 'DATAxMODEL' such as '2x4' (or a (data, model) pair),"
                         f" got {spec!r}") from None
    if data < 1 or model < 1:
        raise ValueError(f"mesh sizes must be >= 1, got {spec!r}")
    return data, model


def resolve_mesh(mesh: MeshSpec = None, device: Optional[jax.Device] = None,
                 devices: Devices = None) -> Optional[Mesh]:
    """The (data, model) mesh a model runs on, or None for one device.

    mesh: a jax Mesh with axes ("data", "model"), "DxM" / (D, M) over the first D*M local
    devices (or of `devices` when that is a list), or None: then $GDR_BEAM_MESH if set and no
    device was named, else `device` / `devices` as resolve_devices reads them (several devices:
    an n x 1 data-parallel mesh).
    """
    if mesh is None and device is None and devices in (None, "all"):
        mesh = os.environ.get(MESH_ENV) or None
    if isinstance(mesh, Mesh):
        if tuple(mesh.axis_names) != (AXIS, MODEL_AXIS):
            raise ValueError(f"a mesh needs axes ({AXIS!r}, {MODEL_AXIS!r}), got "
                             f"{mesh.axis_names}")
        chosen = list(mesh.devices.flat)
        resolve_devices(devices=chosen)  # same checks: local, one platform, no repeats
    elif mesh is not None:
        if device is not None:
            raise ValueError("give load_model either device= or mesh=, not both")
        data, model = parse_mesh(mesh)
        pool = (resolve_devices(devices=devices) if devices not in (None, "all")
                else list(jax.local_devices()))
        if data * model > len(pool):
            raise ValueError(f"mesh {data}x{model} needs {data * model} devices; this process "
                             f"has {len(pool)}")
        chosen = pool[:data * model]
        mesh = Mesh(np.asarray(chosen).reshape(data, model), (AXIS, MODEL_AXIS))
    else:
        chosen = resolve_devices(device, devices)
        mesh = Mesh(np.asarray(chosen).reshape(len(chosen), 1), (AXIS, MODEL_AXIS))
    return None if len(chosen) == 1 else mesh


def _divides(n: int, k: int) -> bool:
    return k == 1 or n % k == 0


def param_spec(path: tuple, shape: tuple, model: int) -> PartitionSpec:
    """The Megatron split of one parameter of the Decoder tree (see the module docstring),
    by its path and shape; replicated where the split axis does not divide."""
    name = "/".join(str(p) for p in path)
    # (axis to split, for parameters whose name ends so)
    rules = (("qkv/kernel", 1), ("qkv/bias", 0), ("gate_up/kernel", 1),
             ("o_proj/kernel", 0), ("down_proj/kernel", 0), ("embed", 1), ("lm_head", 1))
    for suffix, axis in rules:
        if name.endswith(suffix) and len(shape) > axis:
            if not _divides(shape[axis], model):
                logging.warning("%s %s: axis %d does not divide by %d devices; replicated",
                                name, shape, axis, model)
                return PartitionSpec()
            spec = [None] * len(shape)
            spec[axis] = MODEL_AXIS
            return PartitionSpec(*spec)
    return PartitionSpec()  # norms


def cache_spec(num_kv_heads: int, model: int) -> PartitionSpec:
    """KV cache [batch, kv_heads, T, head_dim]: rows on the data axis, kv heads on the model
    axis (each device attends with its own heads). With fewer kv heads than model devices (or
    a count that does not divide) the cache is replicated over the model axis: splitting
    head_dim instead made XLA rematerialise the whole cache every step (RoPE and the cache
    update work on head_dim halves)."""
    if model > 1 and num_kv_heads % model == 0:
        return PartitionSpec(AXIS, MODEL_AXIS)
    return PartitionSpec(AXIS)


class Parallel:
    """Shardings of one model over a (data, model) mesh: parameters (Megatron split on the
    model axis, replicated on the data axis), batch arrays and the KV cache."""

    def __init__(self, mesh: Mesh, num_kv_heads: int):
        self.mesh = mesh
        self.devices = list(mesh.devices.flat)
        self.data_size = mesh.shape[AXIS]
        self.model_size = mesh.shape[MODEL_AXIS]
        self.replicated = NamedSharding(mesh, PartitionSpec())
        self.batch = NamedSharding(mesh, PartitionSpec(AXIS))
        self.cache = NamedSharding(mesh, cache_spec(num_kv_heads, self.model_size))

    @property
    def size(self) -> int:
        """How many devices share a batch's rows (the data-axis size)."""
        return self.data_size

    def __repr__(self):
        return (f"Parallel(data={self.data_size}, model={self.model_size}: "
                f"{len(self.devices)} x {self.devices[0].platform})")

    def pad_batch(self, n: int) -> int:
        """The smallest multiple of the data-axis size that is >= n (equal shards)."""
        return -(-n // self.data_size) * self.data_size

    def param_shardings(self, tree):
        return jax.tree_util.tree_map_with_path(
            lambda path, x: NamedSharding(self.mesh, param_spec(
                tuple(getattr(k, "key", k) for k in path), np.shape(x), self.model_size)),
            tree)

    def put_params(self, tree):
        return jax.device_put(tree, self.param_shardings(tree))

    def put_batch(self, array):
        """A host array whose leading axis is the batch, split across the data axis."""
        return jax.device_put(array, self.batch)

    def constrain(self, tree):
        """Inside jit: KV caches in their layout, other batch-leading arrays split by rows,
        scalars replicated. Pins the layout of what prefill creates (the KV cache starts as
        zeros, which carry no sharding) and of what the decode loop hands back, so every call
        sees the same input shardings."""
        def one(x):
            if isinstance(x, LayerCache):
                return LayerCache(*(jax.lax.with_sharding_constraint(a, self.cache) for a in x))
            sharding = self.replicated if x.ndim == 0 else self.batch
            return jax.lax.with_sharding_constraint(x, sharding)
        return jax.tree.map(one, tree, is_leaf=lambda x: isinstance(x, LayerCache))


# The name generate.py knows the sharding helper by (data parallelism came first).
DataParallel = Parallel
