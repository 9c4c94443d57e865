"""Decoder hyper-parameters, read from a checkpoint's own metadata (never hard-coded per model)."""

from __future__ import annotations

import dataclasses
from typing import Optional

SLIDING = "sliding_attention"
FULL = "full_attention"


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """RoPE frequency scaling; `None` in LlamaConfig means plain RoPE.

    kind "llama3": Llama-3.1 style (long wavelengths slowed by `factor`, short ones kept, the
    band between interpolated). kind "linear": every frequency divided by `factor` (Gemma 3's
    global layers)."""

    factor: float
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position: int = 8192
    kind: str = "llama3"

    def __post_init__(self):
        if self.kind not in ("llama3", "linear"):
            raise ValueError(f"rope scaling kind {self.kind!r} is not supported")


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    """Shape of a decoder of the Llama family and its descendants.

    The defaults describe Llama (SmolLM2, Llama 2/3); the other supported architectures differ
    in a few switches, each read from the checkpoint's metadata:
      Qwen2: q/k/v biases.  Qwen3: q/k RMSNorm (over head_dim, before RoPE).
      Gemma 2: embeddings scaled by sqrt(hidden), norms around attention and MLP ("sandwich"),
        GeGLU (tanh GELU), query scale from query_pre_attn_scalar, attention and final logit
        soft-capping, alternating sliding-window / global layers, tied embeddings.
      Gemma 3: Gemma 2 without soft-capping, plus q/k RMSNorm, its own local:global layer
        pattern and separate RoPE bases (and scaling) for local and global layers.
    Gemma's RMSNorm multiplies by (1 + w); the loaders fold the 1 into the stored scale, so one
    RMSNorm serves every architecture.
    """

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0  # global (full-attention) layers
    rope_scaling: Optional[RopeScaling] = None
    tie_word_embeddings: bool = False
    # Qwen2 puts biases on q/k/v projections; Llama does not.
    attention_bias: bool = False
    architecture: str = "llama"
    qk_norm: bool = False  # RMSNorm on each query and key head (Qwen3, Gemma 3)
    post_norms: bool = False  # RMSNorm on the attention and MLP outputs too (Gemma 2/3)
    mlp_activation: str = "silu"  # SwiGLU ("silu") or GeGLU ("gelu_tanh")
    embed_scale: float = 1.0  # token embeddings are multiplied by this (Gemma: sqrt(hidden))
    query_scale: Optional[float] = None  # scores = q.k * query_scale; None: head_dim ** -0.5
    attn_softcap: Optional[float] = None  # scores -> cap * tanh(scores / cap)
    final_softcap: Optional[float] = None  # logits -> cap * tanh(logits / cap)
    # Per layer "sliding_attention" or "full_attention" (empty: all full). A sliding layer's
    # query at position p sees keys at positions (p - sliding_window, p].
    layer_types: tuple = ()
    sliding_window: Optional[int] = None
    # RoPE of sliding layers, when it differs from the global layers' (Gemma 3).
    local_rope_theta: Optional[float] = None
    local_rope_scaling: Optional[RopeScaling] = None

    def __post_init__(self):
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads={self.num_heads} is not a multiple of "
                             f"num_kv_heads={self.num_kv_heads}")
        if self.mlp_activation not in ("silu", "gelu_tanh"):
            raise ValueError(f"MLP activation {self.mlp_activation!r} is not supported")
        if self.layer_types:
            if len(self.layer_types) != self.num_layers:
                raise ValueError(f"{len(self.layer_types)} layer types for {self.num_layers} "
                                 "layers")
            unknown = set(self.layer_types) - {SLIDING, FULL}
            if unknown:
                raise ValueError(f"layer types {sorted(unknown)} are not supported")
            if SLIDING in self.layer_types and not self.sliding_window:
                raise ValueError("sliding-window layers need a sliding_window")

    @property
    def q_per_kv(self) -> int:
        return self.num_heads // self.num_kv_heads

    def is_sliding(self, layer: int) -> bool:
        return bool(self.layer_types) and self.layer_types[layer] == SLIDING

    def layer_window(self, layer: int) -> Optional[int]:
        """How many positions (the query's own included) a layer's queries see; None: all."""
        return self.sliding_window if self.is_sliding(layer) else None
