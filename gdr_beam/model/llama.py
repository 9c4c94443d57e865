"""Llama-family decoder in Flax (linen): RMSNorm, RoPE, grouped-query attention, SwiGLU MLP,
with the switches Qwen2/3 and Gemma 2/3 need (see LlamaConfig): q/k norms, sandwich norms,
GeGLU, soft-capping, scaled embeddings, and sliding-window (local) layers.

The KV cache is an explicit input and output (one buffer per layer, never a Flax variable), so
the sampler can donate it to the jitted step and XLA updates it in place instead of copying it
every token. Q/K/V and gate/up projections are fused into one matmul each: at decode time the
matmuls are skinny ([batch, hidden]) and fewer, wider ones run closer to the machine's peak.

Cache layout: slots [0, T). A row's prompt is left-padded so every row writes its new tokens at
the same slot; `start[b]` is the first real slot of row b and RoPE positions are `slot - start`.
That makes a prompt's result independent of how much padding its batch needed.

With a shared prefix (`prefix_len` > 0), slots [0, prefix_len) hold the KV of a prompt prefix
every row shares (computed once, see generate.py), the rows' own suffixes are left-padded after
it, and the padding between the two is a hole: row b sees [0, prefix_len) and [start[b], ...),
and the position of slot t >= start[b] is t - start[b] + prefix_len. prefix_len = 0 is the
plain layout above.

Sliding-window layers keep the same cache as global ones and mask keys older than the window
(`attention_mask`): exact, and one cache layout for every layer; the memory a ring buffer would
save on local layers is left on the table.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gdr_beam.model.config import LlamaConfig


class LayerCache(NamedTuple):
    k: jax.Array  # [batch, kv_heads, T, head_dim]
    v: jax.Array


def init_cache(config: LlamaConfig, batch: int, length: int, dtype) -> tuple[LayerCache, ...]:
    shape = (batch, config.num_kv_heads, length, config.head_dim)
    return tuple(
        LayerCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))
        for _ in range(config.num_layers))


class RopeTables(NamedTuple):
    """Inverse RoPE frequencies of global layers and of sliding-window (local) layers."""

    full: jax.Array
    sliding: jax.Array

    def for_layer(self, config: LlamaConfig, layer: int) -> jax.Array:
        return self.sliding if config.is_sliding(layer) else self.full


def rope_tables(config: LlamaConfig) -> RopeTables:
    return RopeTables(jnp.asarray(rope_inv_freq(config)),
                      jnp.asarray(rope_inv_freq(config, local=True)))


def rope_inv_freq(config: LlamaConfig, local: bool = False) -> np.ndarray:
    """Inverse RoPE frequencies of global layers (or of local ones, which may have their own
    base and scaling), with the checkpoint's scaling applied."""
    dim = config.head_dim
    theta, scaling = config.rope_theta, config.rope_scaling
    if local and config.local_rope_theta is not None:
        theta, scaling = config.local_rope_theta, config.local_rope_scaling
    inv_freq = 1.0 / (theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    if scaling is None:
        return inv_freq.astype(np.float32)
    if scaling.kind == "linear":
        return (inv_freq / scaling.factor).astype(np.float32)
    # Llama 3.1: long wavelengths are slowed down by `factor`, short ones kept, and the band in
    # between is interpolated smoothly (same formula as the reference implementation).
    low_wavelen = scaling.original_max_position / scaling.low_freq_factor
    high_wavelen = scaling.original_max_position / scaling.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    smooth = (scaling.original_max_position / wavelen - scaling.low_freq_factor) / (
        scaling.high_freq_factor - scaling.low_freq_factor)
    interpolated = (1 - smooth) * inv_freq / scaling.factor + smooth * inv_freq
    out = np.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
    out = np.where((wavelen <= low_wavelen) & (wavelen >= high_wavelen), interpolated, out)
    return out.astype(np.float32)


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: jax.Array) -> jax.Array:
    """x: [B, S, heads, head_dim]; HF "rotate_half" convention (GGUF loaders undo llama.cpp's
    interleaving permutation so both formats arrive here the same way)."""
    angles = positions[..., None].astype(jnp.float32) * inv_freq  # [B, S, hd/2]
    cos = jnp.cos(angles)[:, :, None, :]
    sin = jnp.sin(angles)[:, :, None, :]
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


class Linear(nn.Module):
    """x @ W with W stored in param_dtype and products accumulated in f32.

    On XLA CPU, bf16 weights with f32 activations are ~25% faster than f32 weights for batches
    of 2 or more (half the memory traffic; the CPU has bf16 dot instructions), while bf16
    activations are several times slower. On GPU/TPU both dtypes are bf16.
    """

    features: int
    dtype: jnp.dtype
    param_dtype: jnp.dtype
    use_bias: bool = False

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (x.shape[-1], self.features), self.param_dtype)
        y = jnp.dot(x.astype(self.param_dtype), kernel, preferred_element_type=jnp.float32)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
        return y.astype(self.dtype)


class RMSNorm(nn.Module):
    eps: float
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],), jnp.float32)
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (x32 * scale).astype(self.dtype)


def attention_mask(key_slots, query_slots, start, window=None, prefix_len=0):
    """[B, Q, T] bool: which cache slots each query sees. Causal (at or before the query's own
    slot), not the row's left padding (slot >= start[b], or a shared prefix's slot < prefix_len:
    see the module docstring), and for a sliding-window layer only the last `window` positions
    (the query's own included; HF's `kv > q - window`). The window is measured in positions:
    across a shared prefix's hole, slots and positions differ by more than the row's start.
    """
    visible = (key_slots[None, None, :] <= query_slots[None, :, None]) & (
        (key_slots[None, None, :] >= start[:, None, None])
        | (key_slots[None, None, :] < prefix_len))
    if window is not None:
        key_pos = jnp.where(key_slots[None, :] < prefix_len, key_slots[None, :],
                            key_slots[None, :] - start[:, None] + prefix_len)  # [B, T]
        query_pos = query_slots[None, :] - start[:, None] + prefix_len  # [B, Q]
        visible &= key_pos[:, None, :] > query_pos[:, :, None] - window
    return visible


def softcap(x, cap):
    """cap * tanh(x / cap) (Gemma 2's attention and final logit soft-capping); cap None: x."""
    return x if cap is None else jnp.tanh(x / cap) * cap


class Attention(nn.Module):
    config: LlamaConfig
    dtype: jnp.dtype
    param_dtype: jnp.dtype
    window: Optional[int] = None  # sliding-window layer: how many positions a query sees

    @nn.compact
    def __call__(self, x, positions, cache: LayerCache, offset, start, inv_freq, prefix_len=0):
        cfg = self.config
        batch, seq, _ = x.shape
        q_dim = cfg.num_heads * cfg.head_dim
        kv_dim = cfg.num_kv_heads * cfg.head_dim
        qkv = Linear(q_dim + 2 * kv_dim, self.dtype, self.param_dtype, cfg.attention_bias,
                     name="qkv")(x)
        q, k, v = jnp.split(qkv, [q_dim, q_dim + kv_dim], axis=-1)
        q = q.reshape(batch, seq, cfg.num_heads, cfg.head_dim)
        k = k.reshape(batch, seq, cfg.num_kv_heads, cfg.head_dim)
        if cfg.qk_norm:  # per head, before RoPE (Qwen3, Gemma 3)
            q = RMSNorm(cfg.rms_norm_eps, self.dtype, name="q_norm")(q)
            k = RMSNorm(cfg.rms_norm_eps, self.dtype, name="k_norm")(k)
        q = apply_rope(q, positions, inv_freq)
        k = apply_rope(k, positions, inv_freq)
        v = v.reshape(batch, seq, cfg.num_kv_heads, cfg.head_dim)

        # Cache is [B, kv_heads, T, head_dim]: each (row, kv head) is one contiguous [T, hd]
        # matrix, so attention is a plain batched matmul. (A [B, T, kv, hd] layout made XLA CPU
        # spend ~7x longer on decode attention.)
        k_all = jax.lax.dynamic_update_slice(
            cache.k, k.transpose(0, 2, 1, 3).astype(cache.k.dtype), (0, 0, offset, 0))
        v_all = jax.lax.dynamic_update_slice(
            cache.v, v.transpose(0, 2, 1, 3).astype(cache.v.dtype), (0, 0, offset, 0))

        # Grouped-query attention without repeating K/V: the q_per_kv heads that share a KV head
        # and all query positions form the rows of one matmul against that head's cache.
        group = cfg.q_per_kv
        q = q.reshape(batch, seq, cfg.num_kv_heads, group, cfg.head_dim)
        q = q.transpose(0, 2, 3, 1, 4).reshape(batch, cfg.num_kv_heads, group * seq, cfg.head_dim)
        scores = jnp.einsum("bkqd,bktd->bkqt", q, k_all,
                            preferred_element_type=jnp.float32)
        # Llama divides by sqrt(head_dim); Gemma multiplies by query_pre_attn_scalar ** -0.5.
        scores = (scores / math.sqrt(cfg.head_dim) if cfg.query_scale is None
                  else scores * cfg.query_scale)
        scores = softcap(scores, cfg.attn_softcap)
        query_slots = jnp.tile(offset + jnp.arange(seq), group)  # row q = g * seq + s
        visible = attention_mask(jnp.arange(k_all.shape[2]), query_slots, start, self.window,
                                 prefix_len)
        scores = jnp.where(visible[:, None], scores, jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
        out = jnp.einsum("bkqt,bktd->bkqd", probs, v_all.astype(self.dtype))
        out = out.reshape(batch, cfg.num_kv_heads, group, seq, cfg.head_dim)
        out = out.transpose(0, 3, 1, 2, 4).reshape(batch, seq, q_dim)
        out = Linear(cfg.hidden_size, self.dtype, self.param_dtype, name="o_proj")(out)
        return out, LayerCache(k_all, v_all)


_ACTIVATIONS = {"silu": nn.silu, "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True)}


class MLP(nn.Module):
    config: LlamaConfig
    dtype: jnp.dtype
    param_dtype: jnp.dtype

    @nn.compact
    def __call__(self, x):
        gate_up = Linear(2 * self.config.intermediate_size, self.dtype, self.param_dtype,
                         name="gate_up")(x)
        gate, up = jnp.split(gate_up, 2, axis=-1)
        act = _ACTIVATIONS[self.config.mlp_activation]
        return Linear(self.config.hidden_size, self.dtype, self.param_dtype,
                      name="down_proj")(act(gate) * up)


class Block(nn.Module):
    """One decoder layer. `layer` (its index) says whether it is a sliding-window layer."""

    config: LlamaConfig
    dtype: jnp.dtype
    param_dtype: jnp.dtype
    layer: int = 0

    @nn.compact
    def __call__(self, x, positions, cache, offset, start, rope: RopeTables, prefix_len=0):
        cfg = self.config
        eps = cfg.rms_norm_eps
        h, cache = Attention(cfg, self.dtype, self.param_dtype, cfg.layer_window(self.layer),
                             name="attn")(
            RMSNorm(eps, self.dtype, name="attn_norm")(x), positions, cache, offset, start,
            rope.for_layer(cfg, self.layer), prefix_len)
        if cfg.post_norms:
            h = RMSNorm(eps, self.dtype, name="post_attn_norm")(h)
        x = x + h
        h = MLP(cfg, self.dtype, self.param_dtype, name="mlp")(
            RMSNorm(eps, self.dtype, name="mlp_norm")(x))
        if cfg.post_norms:
            h = RMSNorm(eps, self.dtype, name="post_mlp_norm")(h)
        return x + h, cache


def embed_tokens(config: LlamaConfig, embed: jax.Array, tokens: jax.Array, dtype) -> jax.Array:
    """Token embeddings, scaled where the architecture scales them (Gemma: by sqrt(hidden),
    rounded to the activation dtype first, as the reference does)."""
    x = jnp.take(embed, tokens, axis=0).astype(dtype)
    if config.embed_scale != 1.0:
        x = x * jnp.asarray(config.embed_scale, dtype)
    return x


class Decoder(nn.Module):
    """Token ids -> logits, reading and extending the KV cache.

    Args (of __call__):
      tokens: [B, S] int32, written at cache slots [offset, offset + S).
      cache: one LayerCache per layer, [B, kv_heads, T, head_dim] each.
      offset: scalar int32 slot of tokens[:, 0].
      start: [B] int32 first non-padding slot of each row after the shared prefix.
      last_only: return logits of the last position only ([B, V]); prefill needs no more.
      prefix_len: scalar int32, cache slots [0, prefix_len) hold a prefix every row shares
        (see the module docstring); tokens are never written there with prefix_len > 0.
    """

    config: LlamaConfig
    dtype: jnp.dtype = jnp.float32  # activations
    param_dtype: jnp.dtype = jnp.float32  # matmul weights and embeddings

    @nn.compact
    def __call__(self, tokens, cache: Sequence[LayerCache], offset, start, last_only=False,
                 prefix_len=0):
        cfg = self.config
        embed = self.param("embed", nn.initializers.normal(0.02),
                           (cfg.vocab_size, cfg.hidden_size), self.param_dtype)
        x = embed_tokens(cfg, embed, tokens, self.dtype)
        positions = offset + jnp.arange(tokens.shape[1])[None, :] - start[:, None] + prefix_len
        rope = rope_tables(cfg)
        new_cache = []
        # Layers are unrolled (a Python loop, not nn.scan): each layer keeps its own cache
        # buffer, which XLA can update in place; scanning over stacked caches copies them.
        for i in range(cfg.num_layers):
            x, layer_cache = Block(cfg, self.dtype, self.param_dtype, i, name=f"layer_{i}")(
                x, positions, cache[i], offset, start, rope, prefix_len)
            new_cache.append(layer_cache)
        if last_only:
            x = x[:, -1]
        x = RMSNorm(cfg.rms_norm_eps, self.dtype, name="final_norm")(x)
        # A tied head gets its own [hidden, vocab] copy at load time (see params_from_canonical): a plain
        # x @ W is faster on XLA CPU than contracting against the transposed embedding.
        head = self.param("lm_head", nn.initializers.normal(0.02),
                          (cfg.hidden_size, cfg.vocab_size), self.param_dtype)
        logits = jnp.dot(x.astype(self.param_dtype), head, preferred_element_type=jnp.float32)
        return softcap(logits, cfg.final_softcap), tuple(new_cache)


def params_from_canonical(config: LlamaConfig, flat: dict, param_dtype) -> dict:
    """Maps the loaders' canonical flat names (see checkpoints.py) to this module's tree.

    Fuses q/k/v and gate/up, and gives a tied output head its own [hidden, vocab] copy. Arrays
    stay NumPy here (the caller puts them on the device); norm scales stay f32.
    """
    np_dtype = jnp.dtype(param_dtype)

    def get(name, dtype=np_dtype):
        return np.asarray(flat[name], dtype=np.float32).astype(dtype)

    def norm(name):
        return {"scale": get(name, np.float32)}

    tree = {"embed": get("embed_tokens"), "final_norm": norm("final_norm")}
    head = flat.get("lm_head")
    tree["lm_head"] = (get("lm_head") if head is not None
                       else np.ascontiguousarray(get("embed_tokens").T))
    for i in range(config.num_layers):
        p = f"layers.{i}."
        qkv = {"kernel": np.concatenate(
            [get(p + "q_proj"), get(p + "k_proj"), get(p + "v_proj")], axis=1)}
        if config.attention_bias:
            qkv["bias"] = np.concatenate([get(p + "q_bias"), get(p + "k_bias"), get(p + "v_bias")])
        attn = {"qkv": qkv, "o_proj": {"kernel": get(p + "o_proj")}}
        if config.qk_norm:
            attn.update(q_norm=norm(p + "q_norm"), k_norm=norm(p + "k_norm"))
        layer = tree[f"layer_{i}"] = {
            "attn_norm": norm(p + "attn_norm"),
            "attn": attn,
            "mlp_norm": norm(p + "mlp_norm"),
            "mlp": {
                "gate_up": {"kernel": np.concatenate(
                    [get(p + "gate_proj"), get(p + "up_proj")], axis=1)},
                "down_proj": {"kernel": get(p + "down_proj")},
            },
        }
        if config.post_norms:
            layer.update(post_attn_norm=norm(p + "post_attn_norm"),
                         post_mlp_norm=norm(p + "post_mlp_norm"))
    return {"params": tree}
