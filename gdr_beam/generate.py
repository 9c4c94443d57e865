"""Continuous-batching KV-cache sampling for the Flax decoder.

How a call runs:
  1. When the prompts share a prefix (a task's fixed system message and few-shot pair), its KV
     cache is computed once at batch 1 and kept per prefix across calls
     (`gdr_beam.prefix_cache`); each row prefills only its own suffix on top of it.
  2. Rows are served from a pool of B decode slots over one KV cache [B, kv, T, hd] (B x T
     within `max_batch_tokens`, `batching.pool_rows`). A row needs T >= prefix + its suffix's
     prompt bucket + its new-token budget; prompts are admitted largest need first.
  3. Prefill: the waiting prompts taken into free slots are prefilled together per suffix
     bucket (left-padded to it, after the shared prefix: slots [0, P) prefix, a padding hole,
     the suffix), which also samples each row's first token; insert writes their KV into their
     slots of the running cache (a row that ends on its first token takes no slot).
  4. Decode is a jitted `lax.while_loop` in which every slot has its own position (its next
     token's cache slot), step count and budget. The loop leaves the device as soon as a row
     finishes while prompts wait, so its slot is refilled at once; the device never computes
     for a finished row while there is work for its slot. The cache is donated, so XLA updates
     it in place.
  5. As the queue empties the pool is repacked to fewer slots (live rows gathered to the front)
     and, once its longest row is gone, to a shorter cache: attention over empty slots costs as
     much as over full ones. Shapes come from the prompt and row buckets, so a handful of
     compiled programs (decode per pool shape, prefill per suffix bucket) serve every call.
  6. With stop strings, decode leaves the device every few steps and the host checks the text.

Versus JetStream's prefill / insert / generate split (the same three programs): prefill here
starts from a cached shared prefix, several waiting rows prefill in one pass, the decode loop
runs many steps per dispatch and exits on the first finished row (not a fixed step count), and
the pool shrinks its rows and cache length as the queue drains, so the tail of a call does
not compute for empty slots.

Every row samples with its own PRNG key, folded from its seed and its own step, and attends only
to its own slots, so a row's result does not depend on which other prompts share its pool or
when it was admitted.
"""

from __future__ import annotations

import collections
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
# A draining pool shrinks its rows no further: below ~8 rows a decode step costs about the
# same (it reads every weight once either way), and each pool shape is one more program.
MIN_DRAIN_ROWS = 8
# Nor does it resize for rows with fewer steps left than this: a new pool shape is a new
# program to compile, which costs more than a few dozen steps of a larger pool.
MIN_DRAIN_STEPS = 64


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


class _Slots(NamedTuple):
    """Decode state of a pool of B slots; every array leads with the slot axis."""

    tokens: jax.Array  # [B, T] ids sampled by this decode call, column = loop step (pad if done)
    last: jax.Array  # [B] the most recent token, fed (written at `pos`) at the next step
    pos: jax.Array  # [B] the cache slot of `last`
    start: jax.Array  # [B] first cache slot of the row's own suffix (after the prefix's hole)
    count: jax.Array  # [B] tokens the row has generated: the index of its next sample
    budget: jax.Array  # [B] the row's max_new_tokens
    done: jax.Array  # [B] bool: the row has finished, or the slot is free
    keys: jax.Array  # [B, 2] per-row PRNG keys (raw uint32)


def _sample(logits, keys, step, temperature, top_p, static: _Static):
    """logits [B, V] f32 -> next ids [B] int32; step: each row's sample index ([B] or scalar)."""
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
    steps = jnp.broadcast_to(step, keys.shape[:1])
    step_keys = jax.vmap(lambda k, s: jax.random.fold_in(jax.random.wrap_key_data(k), s))(
        keys, steps)
    choice = jax.vmap(jax.random.categorical)(step_keys, logits)
    if ids is not None:
        choice = jnp.take_along_axis(ids, choice[:, None], axis=-1)[:, 0]
    return choice.astype(jnp.int32)


@dataclasses.dataclass
class GenerationStats:
    """What the sampler computed since it was built (or `reset`): for benchmarks and logs.

    decode_slots: next-token computations, free and finished slots of a pool included (each
      decode step computes one for every slot; a prefill one for each prompt it admits);
      useful_slots: of those, the ones that produced a returned token or a row's end-of-turn
      token; prefill_tokens: suffix positions prefilled, padding included; prefix_tokens:
      positions prefilled for shared prefixes (once per prefix); prefix_reused_tokens: prompt
      positions a cached prefix spared; admissions: prefill calls that filled free slots;
      repacks: pools resized (fewer rows or a shorter cache) as their rows drained.
    """

    decode_slots: int = 0
    useful_slots: int = 0
    prefill_tokens: int = 0
    prefix_tokens: int = 0
    prefix_reused_tokens: int = 0
    admissions: int = 0
    repacks: int = 0

    def reset(self):
        for field in dataclasses.fields(self):
            setattr(self, field.name, 0)


def _is_stop(ids, stop_ids):
    return jnp.any(ids[:, None] == stop_ids[None, :], axis=-1)


class Sampler:
    """Token-level generation with one Decoder and its parameters on one device, or
    replicated on several with each pool's slots split across them by rows (`data_parallel`)."""

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
        self._prefill = jax.jit(self._prefill_impl, static_argnames=("static",))
        self._new_pool = jax.jit(self._new_pool_impl, static_argnames=("rows", "length"))
        self._insert = jax.jit(self._insert_impl, static_argnames=("offset",),
                               donate_argnums=(0,))
        # Not donated: a repacked cache has another shape, so its buffers could not be reused.
        self._repack = jax.jit(self._repack_impl, static_argnames=("length",))
        self._decode = jax.jit(self._decode_impl, static_argnames=("static",),
                               donate_argnums=(1, 2))

    # -- compiled pieces ------------------------------------------------------------------

    def _prefix_impl(self, params, tokens):
        """A shared prefix [1, P] -> its KV cache (P slots per layer)."""
        cache = init_cache(self.config, 1, tokens.shape[1], self._dtype)
        _, cache = self._model.apply(params, tokens, cache, jnp.int32(0),
                                     jnp.zeros((1,), jnp.int32), last_only=True)
        return cache

    def _prefill_impl(self, params, prefix, tokens, start, keys, temperature, top_p, *, static):
        """k left-padded suffixes [k, W] after the shared prefix -> (their KV, slots [P, P+W)
        of each layer, and each row's first token)."""
        rows, width = tokens.shape
        prefix_len = 0 if prefix is None else prefix[0].k.shape[2]
        cache = init_cache(self.config, rows, prefix_len + width, self._dtype)
        if prefix is not None:
            cache = _with_prefix(cache, prefix)
        logits, cache = self._model.apply(params, tokens, cache, jnp.int32(prefix_len), start,
                                          last_only=True, prefix_len=jnp.int32(prefix_len))
        first = _sample(logits, keys, jnp.int32(0), temperature, top_p, static)
        suffix = tuple(LayerCache(c.k[:, :, prefix_len:], c.v[:, :, prefix_len:]) for c in cache)
        return self._constrain((suffix, first))

    def _new_pool_impl(self, prefix, *, rows, length):
        """An empty pool cache [rows, kv, length, hd] per layer, the shared prefix in every
        slot's first P positions (only suffixes are inserted later)."""
        cache = init_cache(self.config, rows, length, self._dtype)
        return self._constrain(cache if prefix is None else _with_prefix(cache, prefix))

    def _insert_impl(self, cache, suffix, slots, *, offset):
        """Writes prefilled rows' suffix KV (cache slots [offset, offset + W)) into pool slots
        `slots`; an index past the pool drops that row (a padding row, or one that ended on its
        first token)."""
        def put(full, part):
            return full.at[slots, :, offset:offset + part.shape[2]].set(
                part.astype(full.dtype), mode="drop")

        return self._constrain(tuple(LayerCache(put(c.k, s.k), put(c.v, s.v))
                                     for c, s in zip(cache, suffix)))

    def _repack_impl(self, cache, rows, *, length):
        """The pool's slots `rows` (in that order) with their first `length` cache slots: fewer
        slots and a shorter cache once the rows that needed them are gone."""
        return self._constrain(tuple(
            LayerCache(*(jnp.take(a, rows, axis=0)[:, :, :length] for a in c)) for c in cache))

    def _decode_impl(self, params, cache, state: _Slots, prefix_len, temperature, top_p,
                     stop_ids, max_steps, exit_live, watch, *, static):
        """Decodes every live slot, each at its own position, until max_steps, or until at most
        `exit_live` slots are live, or until slot `watch` (if >= 0) is done."""

        def row_logits(token, row_cache, pos, start):
            # One slot as a batch of one: its own write position and mask. Under vmap the
            # weight matmuls still run as one [B, hidden] product per layer.
            one = jax.tree.map(lambda a: a[None], row_cache)
            logits, one = self._model.apply(params, token[None, None], one, pos, start[None],
                                            last_only=True, prefix_len=prefix_len)
            return logits[0], jax.tree.map(lambda a: a[0], one)

        def cond(carry):
            _, st, i = carry
            watched = (watch >= 0) & st.done[jnp.maximum(watch, 0)]
            return (i < max_steps) & (jnp.sum(~st.done) > exit_live) & ~watched

        def body(carry):
            cache, st, i = carry
            logits, cache = jax.vmap(row_logits)(st.last, cache, st.pos, st.start)
            nxt = _sample(logits, st.keys, st.count, temperature, top_p, static)
            live = ~st.done
            nxt = jnp.where(live, nxt, self.pad_id)
            tokens = jax.lax.dynamic_update_slice(st.tokens, nxt[:, None], (0, i))
            step = live.astype(jnp.int32)
            count = st.count + step
            done = st.done | (live & (_is_stop(nxt, stop_ids) | (count >= st.budget)))
            return cache, st._replace(tokens=tokens, last=jnp.where(live, nxt, st.last),
                                      pos=st.pos + step, count=count, done=done), i + 1

        cache, state, steps = jax.lax.while_loop(cond, body, (cache, state, jnp.int32(0)))
        return self._constrain((cache, state)) + (steps,)

    def _constrain(self, tree):
        # One device: nothing to say, the traced program is exactly the unsharded one.
        return tree if self.data_parallel is None else self.data_parallel.constrain(tree)

    def _put_batch(self, array: np.ndarray):
        """A host array with a leading batch axis, on the device(s) generation runs on."""
        if self.data_parallel is None:
            return jnp.asarray(array)
        return self.data_parallel.put_batch(array)

    def _rows(self, n: int) -> int:
        """n rows as a program's row count: padded to equal shards over the data axis."""
        return n if self.data_parallel is None else self.data_parallel.pad_batch(n)

    # -- host side --------------------------------------------------------------------------

    def plan_batches(self, lengths: Sequence[int], max_new_tokens) -> list[list[int]]:
        """Indices grouped into batches whose padded programs fit the token budget (the rule
        the Beam handler weighs requests by; the engine itself serves rows from a pool)."""
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
        pool = _Pool(self, prefix_len, prefix, prompts, budgets, sampling, keys,
                     sorted(stop_ids), should_stop)
        return pool.run()

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


def _with_prefix(cache, prefix):
    """Every row's slots [0, P) get the shared prefix's KV ([1, kv, P, hd] per layer)."""
    rows = cache[0].k.shape[0]
    return tuple(
        LayerCache(*(jax.lax.dynamic_update_slice(
            full, jnp.broadcast_to(part, (rows,) + part.shape[1:]).astype(full.dtype),
            (0, 0, 0, 0)) for full, part in ((c.k, p.k), (c.v, p.v))))
        for c, p in zip(cache, prefix))


class _Pool:
    """One generate call's slot pool: the host side of continuous batching.

    Host mirrors of the per-slot state live in NumPy arrays and travel to the device with each
    decode call (a few hundred bytes); the KV cache stays on the device, donated from call to
    call. `owner[s]` is the prompt a slot serves (-1: free); a row's tokens are appended to
    `out[prompt]` as decode calls return them, so a slot's history never mixes two prompts.
    """

    def __init__(self, sampler: Sampler, prefix_len, prefix, prompts, budgets, sampling, keys,
                 stop_ids, should_stop):
        self.s = sampler
        self.prefix_len, self.prefix = prefix_len, prefix
        self.prompts, self.budgets, self.keys = prompts, budgets, np.asarray(keys, np.uint32)
        self.stop_ids, self.stop_set, self.should_stop = stop_ids, set(stop_ids), should_stop
        self.static = _Static(sampling.greedy, sampling.top_k, sampling.top_p is not None)
        self.temperature = jnp.float32(sampling.temperature or 1.0)
        self.top_p = jnp.float32(sampling.top_p or 1.0)
        self.stop = jnp.asarray(stop_ids or [-1], jnp.int32)
        # A row's suffix runs left-padded to its bucket after the prefix's slots, never wider
        # in all than the whole prompt's bucket.
        self.width = [min(batching.prompt_bucket(len(p) - prefix_len),
                          batching.prompt_bucket(len(p)) - prefix_len) for p in prompts]
        # Cache slots a row may take: the shared batching rule's row size (prompt bucket +
        # new-token slots), which bounds prefix + width + budget (its last step writes there),
        # so a pool has the rows `batching.rows_per_batch` gives the handler.
        self.need = [batching.row_tokens(len(p), b) for p, b in zip(prompts, budgets)]
        order = sorted(range(len(prompts)), key=lambda i: (-self.need[i], -len(prompts[i]), i))
        self.queue = collections.deque(order)
        self.out: list[list[int]] = [[] for _ in prompts]
        self.finished = [False] * len(prompts)

    # -- pool shape -----------------------------------------------------------------------

    def _shape(self, live_needs: list[int], live: int) -> tuple[int, int]:
        """(rows, cache length) for the live rows and the waiting prompts."""
        needs = live_needs + ([self.need[self.queue[0]]] if self.queue else [])
        length = max(needs)
        rows = min(batching.pool_rows(length, self.s.max_batch_tokens, self.s.max_batch_size),
                   batching.row_bucket(max(live + len(self.queue), 2)))
        return self.s._rows(max(rows, live)), length

    def _empty(self, rows: int, length: int):
        self.rows, self.length = rows, length
        self.owner = np.full((rows,), -1, np.int64)
        self.last = np.zeros((rows,), np.int32)
        self.pos = np.full((rows,), length - 1, np.int32)  # a free slot writes only its last
        self.start = np.full((rows,), length - 1, np.int32)
        self.count = np.zeros((rows,), np.int32)
        self.budget = np.ones((rows,), np.int32)
        self.done = np.ones((rows,), bool)
        self.row_keys = np.zeros((rows, 2), np.uint32)

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> list[list[int]]:
        rows, length = self._shape([], 0)
        self._empty(rows, length)
        self.cache = self.s._new_pool(self.prefix, rows=rows, length=length)
        while True:
            self._admit()
            live = int((self.owner >= 0).sum())
            if live == 0:
                if not self.queue:
                    break
                # Every admitted row ended on its first token: size the pool afresh.
                if self._shape([], 0) != (self.rows, self.length):
                    self._empty(*self._shape([], 0))
                    self.cache = self.s._new_pool(self.prefix, rows=self.rows,
                                                  length=self.length)
                continue
            self._decode_once(live)
            self._maybe_repack()
        return [_row_ids(np.asarray(o, np.int32), self.stop_set) for o in self.out]

    def _admit(self):
        """Fills free slots with waiting prompts, prefilled together (one program, the widest
        suffix's bucket) and inserted. A prompt whose need, at that width, passes the cache
        length waits for the next admission."""
        free = [int(r) for r in np.flatnonzero(self.owner < 0)]
        group, width = [], 0
        while free and self.queue:
            i = self.queue[0]
            grown = max(width, self.width[i])
            if any(self.prefix_len + grown + self.budgets[j] > self.length
                   for j in [i] + [j for _, j in group]):
                break
            group.append((free.pop(0), self.queue.popleft()))
            width = grown
        if group:
            self._prefill_group(width, group)

    def _prefill_group(self, width, group):
        s, P = self.s, self.prefix_len
        k = s._rows(batching.row_bucket(len(group)))
        tokens = np.full((k, width), s.pad_id, np.int32)
        start = np.full((k,), P + width - 1, np.int32)
        keys = np.zeros((k, 2), np.uint32)
        for r, (_, i) in enumerate(group):
            suffix = self.prompts[i][P:]
            tokens[r, width - len(suffix):] = suffix
            start[r] = P + width - len(suffix)
            keys[r] = self.keys[i]
        suffix_kv, first = s._prefill(s.params, self.prefix, s._put_batch(tokens),
                                      s._put_batch(start), s._put_batch(keys), self.temperature,
                                      self.top_p, static=self.static)
        first = np.asarray(first)
        slots = np.full((k,), self.rows, np.int32)  # past the pool: dropped by insert
        for r, (slot, i) in enumerate(group):
            token = int(first[r])
            self.out[i].append(token)
            if token in self.stop_set or self.budgets[i] <= 1:
                self.finished[i] = True
                continue
            slots[r] = slot
            self.owner[slot] = i
            self.last[slot], self.pos[slot], self.start[slot] = token, P + width, start[r]
            self.count[slot], self.budget[slot], self.done[slot] = 1, self.budgets[i], False
            self.need[i] = max(self.need[i], P + width + self.budgets[i])  # its width ran wider
            self.row_keys[slot] = self.keys[i]
        s.stats.decode_slots += len(group)  # each first token is one next-token computation
        s.stats.useful_slots += len(group)
        s.stats.prefill_tokens += k * width
        s.stats.prefix_reused_tokens += len(group) * P
        s.stats.admissions += 1
        self.cache = s._insert(self.cache, suffix_kv, s._put_batch(slots), offset=P)

    def _decode_once(self, live: int):
        s = self.s
        exit_live = live - 1  # a finished row's slot is refilled at once
        if not self.queue:  # drain: leave once the live rows fit the next smaller pool
            smaller = (s._rows(batching.row_bucket_below(self.rows))
                       if self.rows > MIN_DRAIN_ROWS and self._draining() else 0)
            exit_live = smaller if smaller < live else 0
        watch = self._watch()
        max_steps = _STOP_CHECK_CHUNK if self.should_stop else self.length
        before = self.count.copy()
        state = _Slots(np.full((self.rows, self.length), s.pad_id, np.int32), self.last,
                       self.pos, self.start, self.count, self.budget, self.done, self.row_keys)
        t0 = time.perf_counter()
        self.cache, state, steps = s._decode(
            s.params, self.cache, _Slots(*(s._put_batch(np.asarray(a)) for a in state)),
            jnp.int32(self.prefix_len), self.temperature, self.top_p, self.stop,
            jnp.int32(max_steps), jnp.int32(exit_live), jnp.int32(watch), static=self.static)
        steps = int(steps)
        tokens = np.asarray(state.tokens)
        self.last, self.pos, self.count = (np.array(state.last), np.array(state.pos),
                                           np.array(state.count))
        self.done = np.array(state.done)
        made = self.count - before
        for slot in np.flatnonzero(self.owner >= 0):
            i = int(self.owner[slot])
            self.out[i].extend(int(t) for t in tokens[slot, :made[slot]])
            if (not self.done[slot] and self.should_stop is not None
                    and self.should_stop(i, _row_ids(np.asarray(self.out[i]), self.stop_set))):
                self.done[slot] = True
            if self.done[slot]:
                self._free(slot)
        s.stats.decode_slots += self.rows * steps
        s.stats.useful_slots += int(made.sum())
        logging.log_every_n_seconds(
            logging.INFO, "decoded %d steps of a %dx%d pool (%d live) in %.2fs", 30, steps,
            self.rows, self.length, live, time.perf_counter() - t0)

    def _free(self, slot: int):
        self.finished[int(self.owner[slot])] = True
        self.owner[slot] = -1
        self.done[slot] = True
        self.pos[slot] = self.start[slot] = self.length - 1

    def _watch(self) -> int:
        """The live slot whose end lets the cache shrink, when nothing else ends a decode call
        earlier (-1: none)."""
        if self.queue or not self._draining():
            return -1
        live = [int(r) for r in np.flatnonzero(self.owner >= 0)]
        if len(live) < 2:
            return -1
        longest = max(live, key=lambda r: self.need[self.owner[r]])
        rest = max(self.need[self.owner[r]] for r in live if r != longest)
        return longest if self._shorter(rest) else -1

    def _draining(self) -> bool:
        """Whether the live rows may still run long enough to be worth a smaller pool."""
        live = self.owner >= 0
        return bool(live.any()) and int((self.budget - self.count)[live].max()) >= MIN_DRAIN_STEPS

    def _shorter(self, length: int) -> bool:
        """Whether a cache of `length` slots is worth a repack (and a program) from this one."""
        return length <= self.length // 2

    def _maybe_repack(self):
        live = [int(r) for r in np.flatnonzero(self.owner >= 0)]
        if not live or not self._draining():
            return
        rows, length = self._shape([self.need[self.owner[r]] for r in live], len(live))
        if not self._shorter(length):
            length = self.length
            rows = min(rows, self.rows)  # more rows only come with a shorter cache
        rows = max(rows, min(self.rows, self.s._rows(MIN_DRAIN_ROWS)))
        if (rows, length) == (self.rows, self.length):
            return
        order = live + [r for r in range(self.rows) if r not in live]
        order = (order + [live[0]] * rows)[:rows]  # new free slots copy any row's prefix
        old = (self.owner, self.last, self.pos, self.start, self.count, self.budget,
               self.done, self.row_keys)
        self.cache = self.s._repack(self.cache, self.s._put_batch(np.asarray(order, np.int32)),
                                    length=length)
        self.s.stats.repacks += 1
        self._empty(rows, length)
        for new, r in enumerate(live):
            (self.owner[new], self.last[new], self.pos[new], self.start[new], self.count[new],
             self.budget[new], self.done[new], self.row_keys[new]) = (a[r] for a in old)


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
