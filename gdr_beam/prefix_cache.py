"""Which prompt prefix a generation call computes once and shares, and where it is kept.

A refinement prompt is a fixed task message (system text + few-shot pair, ~200 tokens for
`pii`) followed by the example, so most of a call's prefill is the same tokens again. The
sampler prefills the shared prefix once (batch 1), keeps its KV cache here, per model and per
prefix, and each row prefills only its own suffix on top of it.

The rules (host side, pure Python, no JAX):
  * A prefix is a multiple of `PREFIX_MULTIPLE` tokens and leaves every prompt at least one
    token of its own (the last prompt token's logits pick the first new token), so a call
    compiles few distinct programs.
  * A call of two or more prompts proposes their longest common prefix, cut to the multiple.
  * A prefix already cached that every prompt starts with is reused unless the call's own
    common prefix is at least `REGROW` tokens longer: a batch whose examples happen to start
    alike would otherwise compile programs for a prefix no other batch shares. A call of one
    prompt (the tail of a job) can only reuse a cached prefix.
  * The store is an LRU of at most `max_entries` prefixes and `max_tokens` tokens in all.
"""

from __future__ import annotations

import collections
from typing import Any, Optional, Sequence

PREFIX_MULTIPLE = 16
REGROW = 64


def common_prefix_len(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix all prompts share."""
    first = prompts[0]
    n = min(len(p) for p in prompts)
    for other in prompts[1:]:
        k = 0
        while k < n and other[k] == first[k]:
            k += 1
        n = k
        if n == 0:
            break
    return n


def usable_len(common: int, shortest: int) -> int:
    """A shared prefix of `common` tokens cut so it is a multiple of PREFIX_MULTIPLE and
    leaves the shortest prompt at least one token."""
    n = min(common, shortest - 1)
    return max(n, 0) // PREFIX_MULTIPLE * PREFIX_MULTIPLE


class PrefixStore:
    """Prefix token ids (a tuple) -> whatever the sampler keeps for it (its KV cache)."""

    def __init__(self, max_entries: int = 8, max_tokens: int = 16384):
        self.max_entries, self.max_tokens = max_entries, max_tokens
        self._entries: collections.OrderedDict = collections.OrderedDict()
        self.hits = self.misses = 0

    def __len__(self):
        return len(self._entries)

    def longest_match(self, prompts: Sequence[Sequence[int]]) -> Optional[tuple]:
        """The longest cached prefix every prompt starts with and outlasts by one token."""
        shortest = min(len(p) for p in prompts)
        best = None
        for key in self._entries:
            if len(key) < shortest and (best is None or len(key) > len(best)) and all(
                    tuple(p[:len(key)]) == key for p in prompts):
                best = key
        return best

    def get(self, key: tuple) -> Any:
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, key: tuple, value: Any) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > 1 and (
                len(self._entries) > self.max_entries
                or sum(map(len, self._entries)) > self.max_tokens):
            self._entries.popitem(last=False)

    def choose(self, prompts: Sequence[Sequence[int]]) -> tuple[int, Optional[tuple]]:
        """(prefix length, cached key or None) for a call: 0 for no shared prefix; a length
        with key None means a new prefix prompts[0][:length] to compute and `put`."""
        cached = self.longest_match(prompts)
        proposed = 0
        if len(prompts) >= 2:
            proposed = usable_len(common_prefix_len(prompts), min(len(p) for p in prompts))
        if cached is not None and proposed < len(cached) + REGROW:
            self.hits += 1
            return len(cached), cached
        if proposed >= PREFIX_MULTIPLE:
            self.misses += 1
            return proposed, None
        return 0, None
