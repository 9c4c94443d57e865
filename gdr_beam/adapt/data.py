"""Training pairs -> token ids with a loss mask -> length-bucketed, padded micro-batches.

A pair is chat `messages` (the exact prompt the task sends at refinement time) and the
`response` (a verified rewrite). The prompt is formatted with the checkpoint's own chat template
and encoded exactly as generation encodes it; the response is encoded after it and closed with
the end-of-turn token, so the model learns to stop. Only response tokens (and that end token)
carry loss.

Bucketing: every sequence is right-padded to the smallest of a few bucket lengths that holds it,
and its loss positions to the smallest of a few response lengths, so a whole run compiles only a
handful of programs. The prompt prefix all pairs share (a task's system message and few-shot
example) is cut off once and passed as `prefix`, so it is computed once per micro-batch
(forward.Trunk). Micro-batches hold examples of one bucket; their order is a function of
(seed, epoch) only, so the stream of micro-batches is the same on every run and a resumed run
continues it exactly.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Iterable, Optional, Sequence

import numpy as np

SEQ_BUCKETS = (32, 64, 96, 128, 192, 256, 320, 384, 512, 768, 1024)
RESPONSE_BUCKETS = (16, 32, 64, 96, 128, 192, 256, 384, 512)


@dataclasses.dataclass(frozen=True)
class Encoded:
    ids: tuple          # prompt + response + end-of-turn
    n_prompt: int       # ids[:n_prompt] is the prompt (no loss)

    @property
    def n_response(self) -> int:
        return len(self.ids) - self.n_prompt


def read_jsonl(path: str) -> list[dict]:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  (gs:// paths)
    with tf.io.gfile.GFile(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def end_of_turn(tokenizer) -> int:
    """The token that closes an assistant turn in this checkpoint's chat template."""
    probe = tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], False)
    ids = tokenizer.encode(probe)
    for tok in reversed(ids):
        if tok in tokenizer.stop_ids:
            return tok
    return min(tokenizer.stop_ids)


def encode_pair(model, messages: Sequence[dict], response: str, eot: Optional[int] = None
                ) -> Encoded:
    """model: a LanguageModel (its tokenizer, chat template and BOS rule)."""
    prompt = model.encode(model.apply_chat_template(messages))
    eot = end_of_turn(model.tokenizer) if eot is None else eot
    reply = model.tokenizer.encode(response) + [eot]
    return Encoded(tuple(prompt) + tuple(reply), len(prompt))


def encode_records(model, records: Iterable[dict], max_len: int) -> tuple[list[Encoded], int]:
    """(encoded pairs no longer than max_len, number dropped for length). Long pairs are
    dropped, not truncated: a cut reply would teach the model to stop mid-text."""
    eot = end_of_turn(model.tokenizer)
    out, dropped = [], 0
    for r in records:
        e = encode_pair(model, r["messages"], r["response"], eot)
        if len(e.ids) > max_len:
            dropped += 1
        else:
            out.append(e)
    return out, dropped


def bucket(n: int, buckets: Sequence[int]) -> int:
    for b in buckets:
        if n <= b:
            return b
    raise ValueError(f"length {n} exceeds the largest bucket {buckets[-1]}")


def loss_mask(e: Encoded) -> np.ndarray:
    """[len(ids)] bool: True where the token is a response token (has loss as a target)."""
    m = np.zeros(len(e.ids), bool)
    m[e.n_prompt:] = True
    return m


def shared_prefix(examples: Sequence[Encoded]) -> int:
    """Length of the prompt prefix every example shares (the task's system message and
    few-shot example), leaving each example at least its last prompt token (which predicts the
    first response token)."""
    if not examples:
        return 0
    first = examples[0].ids
    n = min(e.n_prompt for e in examples) - 1
    for e in examples[1:]:
        k = 0
        while k < n and e.ids[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


def collate(examples: Sequence[Encoded], batch_size: int, seq_len: int, resp_len: int,
            pad_id: int, prefix_len: int = 0) -> dict:
    """Right-padded arrays for response_nll. Rows beyond len(examples) are dummies (weight 0).
    With prefix_len > 0 the first prefix_len ids (the same in every example) go once into
    `prefix` [1, prefix_len] and `tokens`/`pos` hold the rest."""
    tokens = np.full((batch_size, seq_len), pad_id, np.int32)
    pos = np.zeros((batch_size, resp_len), np.int32)
    labels = np.zeros((batch_size, resp_len), np.int32)
    weight = np.zeros((batch_size, resp_len), np.float32)
    for row, e in enumerate(examples):
        ids = np.asarray(e.ids, np.int32)
        tokens[row, :len(ids) - prefix_len] = ids[prefix_len:]
        # Position t predicts ids[t + 1]; the targets are the response tokens.
        targets = np.arange(e.n_prompt, len(ids))
        n = len(targets)
        pos[row, :n] = targets - 1 - prefix_len
        labels[row, :n] = ids[targets]
        weight[row, :n] = 1.0
    out = {"tokens": tokens, "pos": pos, "labels": labels, "weight": weight}
    if prefix_len:
        out["prefix"] = np.asarray(examples[0].ids[:prefix_len], np.int32)[None, :]
    return out


class MicroBatches:
    """The deterministic stream of micro-batches: index m -> a padded batch dict.

    Per epoch: examples shuffled with (seed, epoch), grouped by sequence bucket, cut into
    micro-batches of `batch_size`, and the micro-batches shuffled again. The count per epoch does
    not depend on the epoch, so m -> (epoch, index) needs no state.
    """

    def __init__(self, examples: Sequence[Encoded], batch_size: int, seed: int, pad_id: int,
                 seq_buckets: Sequence[int] = SEQ_BUCKETS,
                 response_buckets: Sequence[int] = RESPONSE_BUCKETS, share_prefix: bool = True):
        if not examples:
            raise ValueError("no training examples")
        self.prefix_len = shared_prefix(examples) if share_prefix else 0
        self.examples = list(examples)
        self.batch_size = batch_size
        self.seed = seed
        self.pad_id = pad_id
        self.seq_buckets = tuple(seq_buckets)
        self.response_buckets = tuple(response_buckets)
        self._buckets = [bucket(len(e.ids) - self.prefix_len, self.seq_buckets)
                         for e in self.examples]
        sizes: dict = {}
        for b in self._buckets:
            sizes[b] = sizes.get(b, 0) + 1
        self.per_epoch = sum(-(-n // batch_size) for n in sizes.values())
        self._cache: dict = {}

    def _epoch(self, epoch: int) -> list[list[int]]:
        if epoch not in self._cache:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(len(self.examples))
            groups: dict = {}
            for i in order:
                groups.setdefault(self._buckets[i], []).append(int(i))
            chunks = [g[k:k + self.batch_size] for _, g in sorted(groups.items())
                      for k in range(0, len(g), self.batch_size)]
            self._cache = {epoch: [chunks[j] for j in rng.permutation(len(chunks))]}
        return self._cache[epoch]

    def indices(self, m: int) -> list[int]:
        return self._epoch(m // self.per_epoch)[m % self.per_epoch]

    def __getitem__(self, m: int) -> dict:
        chosen = [self.examples[i] for i in self.indices(m)]
        seq = bucket(max(len(e.ids) for e in chosen) - self.prefix_len, self.seq_buckets)
        resp = bucket(max(e.n_response for e in chosen), self.response_buckets)
        return collate(chosen, self.batch_size, seq, resp, self.pad_id, self.prefix_len)

    def tokens(self, m: int) -> int:
        """Sequence tokens of micro-batch m (the shared prefix counted once per row)."""
        return sum(len(self.examples[i].ids) for i in self.indices(m))

    def shapes(self) -> set:
        """The (seq, response) bucket pairs one epoch uses (= compiled programs)."""
        out = set()
        for chunk in self._epoch(0):
            chosen = [self.examples[i] for i in chunk]
            out.add((bucket(max(len(e.ids) for e in chosen) - self.prefix_len,
                            self.seq_buckets),
                     bucket(max(e.n_response for e in chosen), self.response_buckets)))
        return out
