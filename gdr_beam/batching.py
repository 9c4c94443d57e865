"""How generation work is cut into batches: the one rule the engine and the Beam handler share.

The engine runs a batch as one padded program: every row left-padded to the prompt-length
bucket of the batch's longest prompt, the KV cache sized to that bucket plus the largest
new-token budget of its rows (rounded up), and the row count padded to a row bucket.
`max_batch_tokens` bounds that padded program: rows x (prompt bucket + new-token slots) <=
max_batch_tokens.

Budgets are per prompt (`max_new_tokens` is one int for every prompt or one int per prompt): a
rewrite is about as long as its input, so a short input should not reserve the slots of a long
one. Batches group rows by padded size (prompt bucket + budget), so rows of similar input and
output length share a program.

A batch therefore holds `rows_per_batch(...)` rows, which is always a row bucket, so a full
batch carries no padding rows. The Beam handler weighs each request as its share of such a
batch (`request_weight`), so RunInference hands the engine exactly the batches the engine would
have cut itself from the same prompts. Before this rule was shared, the handler counted
prompt + max_new_tokens per request and the engine padded prompt tokens only: the job's
26-row batches ran as 32-row programs and the job lost ~20% to padding.

The engine serves the rows of a call from a pool of decode slots (continuous batching,
gdr_beam/generate.py) of `pool_rows` rows, refilling a slot as soon as its row finishes. A pool
can only refill from the prompts of its own call, so the handler hands the engine
`POOLS_PER_CALL` engine batches' worth of requests per RunInference batch (`call_weight`).

Pure Python on purpose: the launcher and BatchElements import it without JAX.
"""

from __future__ import annotations

MIN_PROMPT_BUCKET = 32
# Engine batches' worth of requests per engine call (one RunInference batch): when rows finish,
# their slots are refilled from the call's waiting prompts, and with one batch's worth there
# would be none waiting. Four keeps the pool full for all but the call's last rows.
POOLS_PER_CALL = 4
# Row counts a batch is padded to: 1, 2, 4, 8, then multiples of 8. Finer than powers of two
# (a 26-row budget runs 24 rows, not 16), coarse enough that a call compiles few programs.
_ROW_MULTIPLE = 8


def next_power_of_two(n: int, minimum: int = 1) -> int:
    """Smallest power of two >= max(n, minimum)."""
    return 1 << (max(n, minimum) - 1).bit_length()


def prompt_bucket(n: int) -> int:
    """Padded prompt length: 32, 48, 64, 96, 128, 192, ... (powers of two and the midpoints
    between them), so padding wastes at most a third of a prefill and few programs compile."""
    power = next_power_of_two(n, MIN_PROMPT_BUCKET)
    return power * 3 // 4 if power * 3 // 4 >= n and power > MIN_PROMPT_BUCKET else power


def new_tokens_slots(max_new_tokens: int) -> int:
    """KV-cache slots reserved for generated tokens: the same buckets as prompts (32, 48, 64,
    96, ...). Budgets differ per prompt, so a finer rounding would compile a program for
    almost every batch; this one wastes at most a third of the slots of the largest budget."""
    return prompt_bucket(max_new_tokens)


def row_bucket(n: int) -> int:
    """The row count a batch of n real rows runs as: 1, 2, 4, 8, 16, 24, 32, 40, ..."""
    if n <= _ROW_MULTIPLE:
        return next_power_of_two(n)
    return -(-n // _ROW_MULTIPLE) * _ROW_MULTIPLE


def _row_bucket_floor(n: int) -> int:
    """The largest row bucket <= n (n >= 1)."""
    if n < _ROW_MULTIPLE:
        return 1 << (n.bit_length() - 1)
    return n // _ROW_MULTIPLE * _ROW_MULTIPLE


def row_tokens(prompt_len: int, max_new_tokens: int) -> int:
    """KV-cache tokens one row of a batch whose longest prompt is prompt_len occupies."""
    return prompt_bucket(prompt_len) + new_tokens_slots(max_new_tokens)


def rows_per_batch(prompt_len: int, max_new_tokens: int, max_batch_tokens: int,
                   max_batch_size: int) -> int:
    """How many rows a batch led by a prompt of prompt_len tokens holds: a row bucket whose
    padded program fits max_batch_tokens (at least 1: a row over budget runs alone)."""
    fit = min(max_batch_size, max_batch_tokens // row_tokens(prompt_len, max_new_tokens))
    return _row_bucket_floor(max(fit, 1))


def request_weight(prompt_len: int, max_new_tokens: int, max_batch_tokens: int,
                   max_batch_size: int) -> int:
    """A request's share of a batch, in tokens: max_batch_tokens / rows_per_batch, so requests of
    one length fill a batch exactly when there are rows_per_batch of them. Never below the row's
    own padded tokens, so a batch's weight also bounds its real KV-cache tokens."""
    rows = rows_per_batch(prompt_len, max_new_tokens, max_batch_tokens, max_batch_size)
    return max(max_batch_tokens // rows, row_tokens(prompt_len, max_new_tokens))


def budgets_list(max_new_tokens, n: int) -> list[int]:
    """One new-token budget per prompt from an int (the same for all) or a sequence of n ints."""
    if isinstance(max_new_tokens, (int,)) and not isinstance(max_new_tokens, bool):
        budgets = [max_new_tokens] * n
    else:
        budgets = [int(b) for b in max_new_tokens]
        if len(budgets) != n:
            raise ValueError(f"got {len(budgets)} max_new_tokens for {n} prompts")
    for i, b in enumerate(budgets):
        if b < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {b} for prompt {i}")
    return budgets


def plan_batches(lengths, max_new_tokens, max_batch_tokens: int,
                 max_batch_size: int) -> list[list[int]]:
    """Prompt indices grouped into batches whose padded programs fit max_batch_tokens.

    max_new_tokens: one int for all prompts or one per prompt. Rows are taken largest padded
    size first (prompt bucket + budget slots, then prompt length), so a batch holds similar
    rows; a row joins the open batch while `rows_per_batch` of the batch's longest prompt and
    largest budget (the program it would run as) still has room. With one budget for all this
    is: longest prompt first, each batch as many rows as its first prompt allows."""
    budgets = budgets_list(max_new_tokens, len(lengths))
    order = sorted(range(len(lengths)),
                   key=lambda i: (-row_tokens(lengths[i], budgets[i]), -lengths[i], i))
    batches: list[list[int]] = []
    longest = largest = 0
    for i in order:
        if batches:
            grown_len, grown_new = max(longest, lengths[i]), max(largest, budgets[i])
            if len(batches[-1]) < rows_per_batch(grown_len, grown_new, max_batch_tokens,
                                                 max_batch_size):
                batches[-1].append(i)
                longest, largest = grown_len, grown_new
                continue
        batches.append([i])
        longest, largest = lengths[i], budgets[i]
    return batches


def row_bucket_below(n: int) -> int:
    """The largest row bucket < n (n >= 2): the next smaller pool when rows drain."""
    return _row_bucket_floor(n - 1)


def pool_rows(length: int, max_batch_tokens: int, max_batch_size: int) -> int:
    """Decode slots of a pool whose KV cache holds `length` slots per row (the largest
    `row_tokens` of its rows): a row bucket with rows x length <= max_batch_tokens, as
    rows_per_batch; at least 2 (XLA CPU's matrix-vector path is slow, and a second row costs
    almost nothing)."""
    fit = min(max_batch_size, max_batch_tokens // length)
    return max(_row_bucket_floor(max(fit, 1)), min(2, max_batch_size))


def call_weight(max_batch_tokens: int) -> int:
    """The weight of one RunInference batch (request weights summed, see request_weight)."""
    return POOLS_PER_CALL * max_batch_tokens
