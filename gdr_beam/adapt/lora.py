"""LoRA adapters on the decoder's Linear layers, applied functionally to the params pytree.

The decoder fuses q/k/v into one `qkv` Linear and gate/up into one `gate_up` Linear (see
gdr_beam/model/llama.py). Adapters are still per projection, as in the LoRA paper and in PEFT:
target `q` adds (x @ A_q) @ B_q to the q columns of `qkv` only. An adapter is a flat dict

    {"layer_3.q": {"a": [in, rank], "b": [rank, out]}, ...}

of f32 arrays (the trainable leaves; the base params stay frozen and untouched). Two ways to use
it, which agree to float rounding (tests/test_adapt.py):

  unmerged  `lora_forward(adapter, cfg)`: a context in which every decoder Linear adds its
            adapters' low-rank path to its output (flax method interception): training;
  merged    `merge_adapter(params, adapter, cfg)`: W[:, cols] += scale * A @ B, a plain params
            tree of the same shapes and dtypes: generation at the base model's speed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gdr_beam.model.config import LlamaConfig
from gdr_beam.model.llama import Linear

ALL_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")
ADAPTER_FILE = "adapter.safetensors"
CONFIG_FILE = "adapter_config.json"


@dataclasses.dataclass(frozen=True)
class LoraConfig:
    rank: int = 8
    alpha: float = 16.0
    targets: tuple = ALL_TARGETS

    def __post_init__(self):
        unknown = set(self.targets) - set(ALL_TARGETS)
        if unknown:
            raise ValueError(f"unknown LoRA targets {sorted(unknown)}; choose from {ALL_TARGETS}")
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {self.rank}")
        object.__setattr__(self, "targets", tuple(t for t in ALL_TARGETS if t in self.targets))

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


def parse_targets(spec: str | Sequence[str]) -> tuple:
    if isinstance(spec, str):
        spec = ALL_TARGETS if spec.strip() == "all" else spec.split(",")
    return tuple(t.strip() for t in spec if t.strip())


def target_slices(cfg: LlamaConfig) -> dict:
    """target -> (module path inside a layer, first column, last column + 1) of the fused
    kernel it adapts."""
    q = cfg.num_heads * cfg.head_dim
    kv = cfg.num_kv_heads * cfg.head_dim
    inter = cfg.intermediate_size
    return {
        "q": (("attn", "qkv"), 0, q),
        "k": (("attn", "qkv"), q, q + kv),
        "v": (("attn", "qkv"), q + kv, q + 2 * kv),
        "o": (("attn", "o_proj"), 0, cfg.hidden_size),
        "gate": (("mlp", "gate_up"), 0, inter),
        "up": (("mlp", "gate_up"), inter, 2 * inter),
        "down": (("mlp", "down_proj"), 0, cfg.hidden_size),
    }


def _in_features(cfg: LlamaConfig, target: str) -> int:
    if target == "o":
        return cfg.num_heads * cfg.head_dim
    if target == "down":
        return cfg.intermediate_size
    return cfg.hidden_size


def init_adapter(cfg: LlamaConfig, lora: LoraConfig, key: jax.Array) -> dict:
    """A ~ Kaiming-uniform (as PEFT), B = 0: the adapted model starts as the base model."""
    slices = target_slices(cfg)
    adapter = {}
    names = [f"layer_{i}.{t}" for i in range(cfg.num_layers) for t in lora.targets]
    keys = jax.random.split(key, len(names))
    for name, k in zip(names, keys):
        t = name.split(".")[1]
        fan_in = _in_features(cfg, t)
        _, lo, hi = slices[t]
        bound = 1.0 / np.sqrt(fan_in)
        adapter[name] = {
            "a": jax.random.uniform(k, (fan_in, lora.rank), jnp.float32, -bound, bound),
            "b": jnp.zeros((lora.rank, hi - lo), jnp.float32),
        }
    return adapter


def _by_module(adapter: dict, cfg: LlamaConfig) -> dict:
    """(layer name, module path) -> [(lo, hi, name)] for the adapters on that Linear."""
    slices = target_slices(cfg)
    out: dict = {}
    for name in adapter:
        layer, t = name.split(".")
        path, lo, hi = slices[t]
        out.setdefault((layer,) + path, []).append((lo, hi, name))
    return out


@contextlib.contextmanager
def lora_forward(adapter: Optional[dict], cfg: LlamaConfig, lora: LoraConfig):
    """Within this context, Decoder.apply computes the unmerged LoRA forward:
    y = x @ W + scale * (x @ A) @ B on each adapted projection's columns."""
    if not adapter:
        yield
        return
    table = _by_module(adapter, cfg)
    scale = lora.scale

    def interceptor(next_fun, args, kwargs, context):
        y = next_fun(*args, **kwargs)
        if context.method_name != "__call__" or not isinstance(context.module, Linear):
            return y
        path = context.module.path
        entries = table.get(tuple(path[-3:]))
        if not entries:
            return y
        x = args[0].astype(jnp.float32)
        out = y.astype(jnp.float32)
        for lo, hi, name in entries:
            ab = adapter[name]
            delta = (x @ ab["a"]) @ ab["b"] * scale
            out = out.at[..., lo:hi].add(delta)
        return out.astype(y.dtype)

    with nn.intercept_methods(interceptor):
        yield


def merge_adapter(params: dict, adapter: dict, cfg: LlamaConfig, lora: LoraConfig) -> dict:
    """The params tree with every adapter folded into its kernel (W += scale * A @ B, in f32,
    then back to the kernel's dtype). A new tree; `params` is not modified."""
    tree = jax.tree_util.tree_map(lambda x: x, params)  # new containers, same leaves
    for (layer, *path), entries in _by_module(adapter, cfg).items():
        node = tree["params"][layer]
        for p in path:
            node = node[p]
        kernel = node["kernel"]
        merged = jnp.asarray(kernel, jnp.float32)
        for lo, hi, name in entries:
            ab = adapter[name]
            delta = jnp.asarray(ab["a"], jnp.float32) @ jnp.asarray(ab["b"], jnp.float32)
            merged = merged.at[:, lo:hi].add(delta * lora.scale)
        node["kernel"] = merged.astype(kernel.dtype)
    return tree


# --- files ----------------------------------------------------------------------------------

def save_adapter(directory: str, adapter: dict, lora: LoraConfig, metadata: Optional[dict] = None,
                 dtype: str = "float32") -> str:
    """adapter.safetensors (A/B per target, f32 or f16: half the bytes for an adapter that
    ships; merging computes in f32 either way) + adapter_config.json into `directory`."""
    from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel
    if dtype not in ("float32", "float16"):
        raise ValueError(f"adapter dtype must be float32 or float16, got {dtype!r}")
    os.makedirs(directory, exist_ok=True)
    flat = {f"{name}.lora_{ab}": np.asarray(arr, np.float32).astype(dtype)
            for name, pair in adapter.items() for ab, arr in pair.items()}
    save_file(flat, os.path.join(directory, ADAPTER_FILE))
    info = {"rank": lora.rank, "alpha": lora.alpha, "targets": list(lora.targets)}
    info.update(metadata or {})
    with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1, sort_keys=True)
    return directory


def load_adapter(path: str) -> tuple[dict, LoraConfig, dict]:
    """(adapter, LoraConfig, the JSON's other fields) from a directory written by
    save_adapter, or from its adapter.safetensors (the JSON next to it)."""
    from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    file = os.path.join(path, ADAPTER_FILE) if os.path.isdir(path) else path
    with open(os.path.join(directory, CONFIG_FILE), encoding="utf-8") as f:
        info = json.load(f)
    if info.get("kind", "lora") != "lora":
        raise ValueError(f"{path} holds {info.get('kind')!r} weights, not a LoRA adapter")
    lora = LoraConfig(rank=int(info.pop("rank")), alpha=float(info.pop("alpha")),
                      targets=tuple(info.pop("targets")))
    adapter: dict = {}
    for key, arr in load_file(file).items():
        name, ab = key.rsplit(".lora_", 1)
        adapter.setdefault(name, {})[ab] = arr
    return adapter, lora, info


def check_adapter(adapter: dict, cfg: LlamaConfig, lora: LoraConfig):
    """Raises ValueError when the adapter does not fit this model's shapes."""
    slices = target_slices(cfg)
    for name, ab in adapter.items():
        layer, t = name.split(".")
        if int(layer.split("_")[1]) >= cfg.num_layers or t not in slices:
            raise ValueError(f"adapter entry {name!r} does not exist in this model")
        _, lo, hi = slices[t]
        want_a, want_b = (_in_features(cfg, t), lora.rank), (lora.rank, hi - lo)
        if tuple(ab["a"].shape) != want_a or tuple(ab["b"].shape) != want_b:
            raise ValueError(f"adapter {name}: shapes {ab['a'].shape}, {ab['b'].shape}; this "
                             f"model needs {want_a}, {want_b}")


def apply_adapter_file(params: dict, cfg: LlamaConfig, path: str) -> dict:
    """params with the adapter at `path` merged in: a LoRA adapter (save_adapter) is folded into
    the kernels; full fine-tuned weights (kind=full) replace the params, in their dtypes."""
    from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    with open(os.path.join(directory, CONFIG_FILE), encoding="utf-8") as f:
        kind = json.load(f).get("kind", "lora")
    if kind == "full":
        flat = load_file(os.path.join(path, ADAPTER_FILE) if os.path.isdir(path) else path)
        leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
        out = []
        for p, leaf in leaves:
            key = ".".join(str(getattr(k, "key", k)) for k in p)
            if key not in flat or flat[key].shape != leaf.shape:
                raise ValueError(f"{path}: no weights of shape {leaf.shape} for {key}")
            out.append(jnp.asarray(flat[key], leaf.dtype))
        return jax.tree_util.tree_unflatten(treedef, out)
    adapter, lora, _ = load_adapter(path)
    check_adapter(adapter, cfg, lora)
    return merge_adapter(params, adapter, cfg, lora)
