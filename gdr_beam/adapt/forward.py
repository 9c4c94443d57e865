"""The training forward: a full-sequence, no-cache pass over the decoder's own layers, and the
causal-LM loss on the response tokens only.

`Trunk` is Decoder (gdr_beam/model/llama.py) without the output head: the same submodule names,
so it reads the same params tree, and the same Block code. Each layer gets a zero KV buffer of
the sequence's length (written once, never kept), which makes it a plain causal forward.
Returning hidden states instead of logits lets the loss compute the [*, vocab] head only at the
response positions: a 250-token prompt with a 50-token reply needs the head 50 times, not 300
(the head is a fifth of SmolLM2-135M's parameters).

Most of a task prompt (system message, few-shot example) is the same in every pair: data.py
finds that shared prefix and Trunk runs it once per micro-batch instead of once per row.

Sequences are right-padded: causal attention never lets a real position see the padding after
it, and padded positions carry no loss.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gdr_beam.model.config import LlamaConfig
from gdr_beam.model.llama import (Block, RMSNorm, embed_tokens, init_cache, rope_tables,
                                  softcap)


class Trunk(nn.Module):
    """tokens [B, S] -> final-normed hidden states [B, S, hidden].

    With `prefix` ([1, P] ids shared by every row, e.g. a task's system prompt and few-shot
    example), the prefix runs once through the layers, its KV is broadcast to the B rows, and
    `tokens` continue it at positions P..P+S-1: the same causal forward as over the
    concatenation, for a fraction of the cost when the prompt's shared part is long. Gradients
    flow through the broadcast (they sum over the rows), so training with a prefix is exact.
    """

    config: LlamaConfig
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, tokens, prefix=None):
        cfg = self.config
        batch, seq = tokens.shape
        embed = self.param("embed", nn.initializers.normal(0.02),
                           (cfg.vocab_size, cfg.hidden_size), self.param_dtype)
        blocks = [Block(cfg, self.dtype, self.param_dtype, i, name=f"layer_{i}")
                  for i in range(cfg.num_layers)]
        rope = rope_tables(cfg)
        n_prefix = 0 if prefix is None else prefix.shape[1]
        total = n_prefix + seq
        if prefix is None:
            cache = init_cache(cfg, batch, total, self.dtype)
        else:
            xp = embed_tokens(cfg, embed, prefix, self.dtype)
            positions = jnp.arange(n_prefix)[None, :]
            one = init_cache(cfg, 1, total, self.dtype)
            cache = []
            for i, block in enumerate(blocks):
                xp, layer_cache = block(xp, positions, one[i], jnp.int32(0),
                                        jnp.zeros((1,), jnp.int32), rope)
                cache.append(jax.tree_util.tree_map(
                    lambda c: jnp.broadcast_to(c, (batch,) + c.shape[1:]), layer_cache))
        x = embed_tokens(cfg, embed, tokens, self.dtype)
        positions = jnp.broadcast_to(n_prefix + jnp.arange(seq)[None, :], (batch, seq))
        start = jnp.zeros((batch,), jnp.int32)
        for i, block in enumerate(blocks):
            x, _ = block(x, positions, cache[i], jnp.int32(n_prefix), start, rope)
        return RMSNorm(cfg.rms_norm_eps, self.dtype, name="final_norm")(x)


def trunk_params(params: dict) -> dict:
    """The Decoder params without the head (Trunk has no lm_head)."""
    inner = {k: v for k, v in params["params"].items() if k != "lm_head"}
    return {"params": inner}


def head_logits(cfg: LlamaConfig, hidden: jax.Array, lm_head: jax.Array) -> jax.Array:
    logits = jnp.dot(hidden.astype(lm_head.dtype), lm_head, preferred_element_type=jnp.float32)
    return softcap(logits, cfg.final_softcap)


def response_nll(cfg: LlamaConfig, params: dict, batch: dict, *, dtype=jnp.float32,
                 param_dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    """(sum of token NLLs, number of loss tokens) over a micro-batch.

    batch: tokens [B, S] int32 (right-padded), pos [B, R] int32 (the positions whose next token
    is a response token), labels [B, R] int32 (that next token), weight [B, R] f32 (1 for a real
    loss position, 0 for padding of pos/labels or a dummy row); optionally prefix [1, P] int32,
    ids shared by all rows that come before `tokens` (see Trunk; pos is relative to tokens).
    """
    hidden = Trunk(cfg, dtype, param_dtype).apply(trunk_params(params), batch["tokens"],
                                                   batch.get("prefix"))
    picked = jnp.take_along_axis(hidden, batch["pos"][..., None], axis=1)  # [B, R, H]
    logits = head_logits(cfg, picked, params["params"]["lm_head"])
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, batch["labels"][..., None], axis=-1)[..., 0]
    w = batch["weight"]
    return jnp.sum(nll * w), jnp.sum(w)


def full_logits(cfg: LlamaConfig, params: dict, tokens: jax.Array, prefix=None, *,
                dtype=jnp.float32, param_dtype=jnp.float32) -> jax.Array:
    """Logits [B, S, vocab] of the training forward (for tests and checks)."""
    hidden = Trunk(cfg, dtype, param_dtype).apply(trunk_params(params), tokens, prefix)
    return head_logits(cfg, hidden, params["params"]["lm_head"])
