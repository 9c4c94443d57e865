"""Batched KV-cache sampling for the Flax decoder.

How a call runs:
  1. Prompts are sorted by length and cut into batches under a token budget
     (`gdr_beam.batching`, the rule the Beam handler shares).
  2. Each batch is left-padded to a prompt-length bucket (32, 48, 64, 96, ...) and its row
     count to a row bucket (1, 2, 4, 8, 16, 24, ...), so a handful of compiled programs serve
     every call.
  3. Prefill runs the padded prompts in one pass and samples each row's first token. When the
     prompts share a prefix (a task's fixed system message and few-shot pair), its KV cache is
     computed once at batch 1, kept per prefix across calls (`gdr_beam.prefix_cache`), copied
     into the batch's cache, and each row prefills only its own suffix on top of it.
  4. Decode is a jitted `lax.while_loop` over a preallocated cache of exactly the prompt
     bucket + the slots of the batch's largest new-token budget (attention over empty slots
     costs as much as over full ones, so the cache is sized to the batch, not to the model's
     context). The cache is
     donated, so XLA updates it in place. Each row stops at an end-of-turn token or at its
     own budget (`max_new_tokens` may differ per prompt); the loop exits once every row has
     stopped.
  5. With stop strings, decode runs in chunks and the host checks the text between chunks.

Every row samples with its own PRNG key, folded from its seed and the step, so a row's result
does not depend on which other prompts share its batch.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from gdr_beam import batching
from gdr_beam.model.config import LlamaConfig
from gdr_beam.model.llama import Decoder, LayerCache, init_cache
from gdr_beam.prefix_cache import PrefixStore
from gdr_beam.sharding import DataParallel

# Host-side stop checks are this many decode steps apart when stop strings are given.
_STOP_CHECK_CHUNK = 16


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen. temperature == 0 means greedy (top_k/top_p ignored)."""

    temperature: float = 0.0
    top_k: Optional[int] = None
    top_p: Optional[float] = None

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class _Static(NamedTuple):
    """The parts of sampling that change the compiled program (hashable for jit)."""

    greedy: bool
    top_k: Optional[int]
    use_top_p: bool


class _DecodeState(NamedTuple):
    tokens: jax.Array  # [B, N] generated ids (pad after a row stops)
    last: jax.Array  # [B] the most recent token, fed at the next step
    step: jax.Array  # scalar: index of the next token to generate
    done: jax.Array  # [B] bool
    keys: jax.Array  # [B, 2] per-row PRNG keys (raw uint32)


def _sample(logits, keys, step, temperature, top_p, static: _Static):
    """logits [B, V] f32 -> next ids [B] int32."""
    if static.greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / temperature
    if static.top_k is not None:
        logits, ids = jax.lax.top_k(logits, static.top_k)  # sorted, descending
    elif static.use_top_p:
        ids = jnp.argsort(-logits, axis=-1)
        logits = jnp.take_along_axis(logits, ids, axis=-1)
    else:
        ids = None
    if static.use_top_p:
        # Nucleus: keep the smallest prefix of the sorted distribution whose mass reaches top_p
        # (the first token always stays).
        probs = jax.nn.softmax(logits, axis=-1)
        mass_before = jnp.cumsum(probs, axis=-1) - probs
        logits = jnp.where(mass_before < top_p, logits, -jnp.inf)
    step_keys = jax.vmap(lambda k: jax.random.fold_in(jax.random.wrap_key_data(k), step))(keys)
    choice = jax.vmap(jax.random.categorical)(step_keys, logits)
    if ids is not None:
        choice = jnp.take_along_axis(ids, choice[:, None], axis=-1)[:, 0]
    return choice.astype(jnp.int32)


@dataclasses.dataclass
class GenerationStats:
    """What the sampler computed since it was built (or `reset`): for benchmarks and logs.

    decode_slots: rows x steps of every batch, padding rows included (each step of each row is
      one next-token computation); useful_slots: of those, the ones that produced a returned
      token or a row's end-of-turn token; prefill_tokens: prompt positions prefilled, padding
      included; prefix_tokens: positions prefilled for shared prefixes (once per prefix);
      prefix_reused_tokens: prompt positions a cached prefix spared.
    """

    decode_slots: int = 0
    useful_slots: int = 0
    prefill_tokens: int = 0
    prefix_tokens: int = 0
    prefix_reused_tokens: int = 0

    def reset(self):
        for field in dataclasses.fields(self):
            setattr(self, field.name, 0)


def _is_stop(ids, stop_ids):
    return jnp.any(ids[:, None] == stop_ids[None, :], axis=-1)


class Sampler:
    """Token-level batched generation with one Decoder and its parameters on one device, or
    replicated on several with each batch split across them by rows (`data_parallel`)."""

    def __init__(self, config: LlamaConfig, params, *, dtype, param_dtype, pad_id: int,
                 max_batch_size: int = 32, max_batch_tokens: int = 16384,
                 data_parallel: Optional[DataParallel] = None, prefix_cache: bool = True):
        self.config = config
        self.params = params
        self.pad_id = pad_id
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.data_parallel = data_parallel
        self._model = Decoder(config, dtype, param_dtype)
        self._dtype = dtype
        # Shared prompt prefixes: their KV caches, per prefix; False prefills every prompt whole.
        self.prefix_cache = prefix_cache
        self.prefixes = PrefixStore()
        self.stats = GenerationStats()
        self._prefix_prefill = jax.jit(self._prefix_impl)
        self._prefill = jax.jit(self._prefill_impl, static_argnames=("cache_len", "static"))
        self._decode = jax.jit(self._decode_impl, static_argnames=("static",),
                               donate_argnums=(1, 2))

    # -- compiled pieces ------------------------------------------------------------------

    def _prefix_impl(self, params, tokens):
        """A shared prefix [1, P] -> its KV cache (P slots per layer)."""
        cache = init_cache(self.config, 1, tokens.shape[1], self._dtype)
        _, cache = self._model.apply(params, tokens, cache, jnp.int32(0),
                                     jnp.zeros((1,), jnp.int32), last_only=True)
        return cache

    def _prefill_impl(self, params, prefix, tokens, start, keys, temperature, top_p, max_new,
                      stop_ids, real_rows, *, cache_len, static):
        batch = tokens.shape[0]
        cache = init_cache(self.config, batch, cache_len, self._dtype)
        prefix_len = 0 if prefix is None else prefix[0].k.shape[2]
        if prefix is not None:  # every row's slots [0, P) get the shared prefix's KV
            cache = tuple(
                LayerCache(*(jax.lax.dynamic_update_slice(
                    full, jnp.broadcast_to(part, (batch,) + part.shape[1:]).astype(full.dtype),
                    (0, 0, 0, 0)) for full, part in ((c.k, p.k), (c.v, p.v))))
                for c, p in zip(cache, prefix))
        logits, cache = self._model.apply(params, tokens, cache, jnp.int32(prefix_len), start,
                                          last_only=True, prefix_len=jnp.int32(prefix_len))
        first = _sample(logits, keys, jnp.int32(0), temperature, top_p, static)
        out = jnp.full((batch, cache_len - prefix_len - tokens.shape[1]), self.pad_id,
                       jnp.int32)
        out = out.at[:, 0].set(first)
        done = _is_stop(first, stop_ids) | (max_new <= 1) | ~real_rows
        return self._constrain((cache, _DecodeState(out, first, jnp.int32(1), done, keys)))

    def _decode_impl(self, params, cache, state, prompt_len, start, prefix_len, temperature,
                     top_p, max_new, stop_ids, stop_at, *, static):

        def cond(carry):
            _, st = carry
            return (st.step < stop_at) & ~jnp.all(st.done)

        def body(carry):
            cache, st = carry
            logits, cache = self._model.apply(params, st.last[:, None], cache,
                                              prompt_len + st.step - 1, start, last_only=True,
                                              prefix_len=prefix_len)
            nxt = _sample(logits, st.keys, st.step, temperature, top_p, static)
            nxt = jnp.where(st.done, self.pad_id, nxt)
            tokens = jax.lax.dynamic_update_slice(st.tokens, nxt[:, None], (0, st.step))
            done = st.done | _is_stop(nxt, stop_ids) | (st.step + 1 >= max_new)
            return cache, _DecodeState(tokens, nxt, st.step + 1, done, st.keys)

        return self._constrain(jax.lax.while_loop(cond, body, (cache, state)))

    def _constrain(self, tree):
        # One device: nothing to say, the traced program is exactly the unsharded one.
        return tree if self.data_parallel is None else self.data_parallel.constrain(tree)

    def _put_batch(self, array: np.ndarray):
        """A host array with a leading batch axis, on the device(s) generation runs on."""
        if self.data_parallel is None:
            return jnp.asarray(array)
        return self.data_parallel.put_batch(array)

    # -- host side --------------------------------------------------------------------------

    def plan_batches(self, lengths: Sequence[int], max_new_tokens) -> list[list[int]]:
        """Indices grouped into batches whose padded programs fit the token budget."""
        return batching.plan_batches(lengths, max_new_tokens, self.max_batch_tokens,
                                     self.max_batch_size)

    def generate(self, prompts: Sequence[Sequence[int]], *, max_new_tokens,
                 sampling: SamplingParams, keys: np.ndarray, stop_ids: Sequence[int],
                 should_stop: Optional[Callable[[int, list[int]], bool]] = None,
                 ) -> list[list[int]]:
        """Generates for token-id prompts; returns the new ids of each row, stop token excluded.

        max_new_tokens: the most tokens each row generates: one int for all prompts, or one
          int per prompt.
        keys: [len(prompts), 2] uint32 raw PRNG keys, one per prompt.
        should_stop(prompt_index, ids_so_far): host-side check between chunks (stop strings).
        """
        budgets = batching.budgets_list(max_new_tokens, len(prompts))
        limit = self.config.max_position_embeddings
        for i, (p, budget) in enumerate(zip(prompts, budgets)):
            if not p:
                raise ValueError(f"prompt {i} is empty after tokenization")
            if len(p) + budget > limit:
                raise ValueError(
                    f"prompt {i} has {len(p)} tokens; with max_new_tokens={budget} it "
                    f"exceeds the model context of {limit} tokens")
        prefix_len, prefix = self._shared_prefix(prompts)
        results: list[list[int]] = [[] for _ in prompts]
        for batch in self.plan_batches([len(p) for p in prompts], budgets):
            rows = self._generate_batch([prompts[i] for i in batch], batch,
                                        [budgets[i] for i in batch], sampling, keys[batch],
                                        stop_ids, should_stop, prefix_len, prefix)
            for i, ids in zip(batch, rows):
                results[i] = ids
        return results

    def _shared_prefix(self, prompts):
        """(P, KV cache of the P-token prefix every prompt shares) or (0, None); see
        gdr_beam.prefix_cache for which prefix and when it is reused."""
        if not self.prefix_cache:
            return 0, None
        length, key = self.prefixes.choose(prompts)
        if length == 0:
            return 0, None
        if key is not None:
            return length, self.prefixes.get(key)
        key = tuple(int(t) for t in prompts[0][:length])
        t0 = time.perf_counter()
        kv = self._prefix_prefill(self.params, jnp.asarray([key], jnp.int32))
        if self.data_parallel is not None:  # a copy on every device; prefill lays it out
            kv = jax.device_put(jax.device_get(kv), self.data_parallel.replicated)
        self.prefixes.put(key, kv)
        self.stats.prefix_tokens += length
        logging.info("cached a shared prompt prefix of %d tokens in %.2fs (%d cached)", length,
                     time.perf_counter() - t0, len(self.prefixes))
        return length, kv

    def _generate_batch(self, prompts, indices, budgets, sampling, keys, stop_ids,
                        should_stop, prefix_len=0, prefix=None):
        n_real = len(prompts)
        max_new_tokens = max(budgets)
        # Never a batch of one: XLA CPU's matrix-vector path is slow for bf16 weights, and a
        # second (idle) row costs almost nothing.
        batch = batching.row_bucket(max(n_real, 2))
        if self.data_parallel is not None:  # equal row shards on every device
            batch = self.data_parallel.pad_batch(batch)
        # The prompt region: the shared prefix's slots, then each row's suffix left-padded to
        # `width`. Never wider in all than the whole prompts' bucket, so the program stays
        # within the batch budget the plan (and the Beam handler) counted.
        suffixes = [p[prefix_len:] for p in prompts]
        full = min(batching.prompt_bucket(max(map(len, prompts))),
                   self.config.max_position_embeddings)
        width = min(batching.prompt_bucket(max(map(len, suffixes))), full - prefix_len)
        prompt_len = prefix_len + width
        new_len = batching.new_tokens_slots(max_new_tokens)
        tokens = np.full((batch, width), self.pad_id, np.int32)
        start = np.full((batch,), prompt_len - 1, np.int32)
        for r, p in enumerate(suffixes):
            tokens[r, width - len(p):] = p
            start[r] = prompt_len - len(p)
        row_keys = np.zeros((batch, 2), np.uint32)
        row_keys[:n_real] = keys
        static = _Static(sampling.greedy, sampling.top_k, sampling.top_p is not None)
        temperature = jnp.float32(sampling.temperature or 1.0)
        top_p = jnp.float32(sampling.top_p or 1.0)
        row_budgets = np.ones((batch,), np.int32)  # padding rows stop after their first token
        row_budgets[:n_real] = budgets
        max_new = self._put_batch(row_budgets)
        stop = jnp.asarray(sorted(stop_ids) or [-1], jnp.int32)
        start_dev = self._put_batch(start)

        t0 = time.perf_counter()
        cache, state = self._prefill(self.params, prefix, self._put_batch(tokens), start_dev,
                                     self._put_batch(row_keys), temperature, top_p, max_new,
                                     stop, self._put_batch(np.arange(batch) < n_real),
                                     cache_len=prompt_len + new_len, static=static)
        chunk = _STOP_CHECK_CHUNK if should_stop else max_new_tokens
        ends = list(budgets)  # a row's tokens end at its budget (or its first stop token)
        while True:
            stop_at = jnp.int32(min(int(state.step) + chunk, max_new_tokens))
            cache, state = self._decode(self.params, cache, state, jnp.int32(prompt_len),
                                        start_dev, jnp.int32(prefix_len), temperature, top_p,
                                        max_new, stop, stop_at, static=static)
            done = np.array(state.done)  # a writable copy
            step = int(state.step)
            if should_stop is not None:
                out = np.asarray(state.tokens)
                for r in range(n_real):
                    if not done[r] and should_stop(indices[r], _row_ids(out[r, :step], stop_ids)):
                        done[r] = True
                        ends[r] = step  # later steps write padding into this row
                state = state._replace(done=self._put_batch(done))
            if done[:n_real].all() or step >= max_new_tokens:
                break
        out = np.asarray(state.tokens)
        rows = [_row_ids(out[r, :min(step, ends[r])], stop_ids) for r in range(n_real)]
        self.stats.decode_slots += batch * step
        # A row's end-of-turn token is useful work too: it is how the row learnt to stop.
        self.stats.useful_slots += sum(min(len(ids) + 1, ends[r]) for r, ids in enumerate(rows))
        self.stats.prefill_tokens += batch * width
        self.stats.prefix_reused_tokens += n_real * prefix_len
        logging.log_every_n_seconds(
            logging.INFO, "generated batch of %d (padded %dx%d+%d) in %.2fs, %d steps", 30,
            n_real, batch, prefix_len, width, time.perf_counter() - t0, step)
        return rows


def _row_ids(row: np.ndarray, stop_ids) -> list[int]:
    """A row's generated ids up to (not including) its first stop token."""
    ids = row.tolist()
    for j, t in enumerate(ids):
        if t in stop_ids:
            return ids[:j]
    return ids


def row_keys(seed, n: int) -> np.ndarray:
    """Raw PRNG keys [n, 2]: from one int seed folded with the prompt's index, or one seed per
    prompt (e.g. derived from the example id, so results do not depend on batch composition)."""
    if isinstance(seed, (int, np.integer)):
        base = jax.random.key(int(seed))
        keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(n))
    else:
        seeds = [int(s) for s in seed]
        if len(seeds) != n:
            raise ValueError(f"got {len(seeds)} seeds for {n} prompts")
        # Seeds may be 64-bit (hashes of example ids): low word seeds the key, high word folds in.
        lo = jnp.asarray([s & 0xFFFFFFFF for s in seeds], dtype=jnp.uint32)
        hi = jnp.asarray([(s >> 32) & 0xFFFFFFFF for s in seeds], dtype=jnp.uint32)
        keys = jax.vmap(lambda a, b: jax.random.fold_in(jax.random.key(a), b))(lo, hi)
    return np.asarray(jax.random.key_data(keys), dtype=np.uint32)
