"""The batching rule shared by the engine and the Beam handler (pure Python, no model)."""

import random

import pytest

from gdr_beam import batching


def test_buckets():
    assert [batching.prompt_bucket(n) for n in (1, 32, 33, 48, 49, 65, 96, 97, 200)] == \
        [32, 32, 48, 48, 64, 96, 96, 128, 256]
    assert [batching.row_bucket(n) for n in (1, 2, 3, 5, 8, 9, 16, 17, 25, 33)] == \
        [1, 2, 4, 8, 8, 16, 16, 24, 32, 40]
    assert [batching.new_tokens_slots(n) for n in (1, 32, 33, 48, 65, 200)] == \
        [32, 32, 48, 48, 96, 256]


@pytest.mark.parametrize("budget,max_rows,max_new", [(8192, 32, 48), (16384, 32, 256),
                                                     (2000, 64, 16), (500, 8, 100)])
def test_plan_covers_every_prompt_once_and_padded_programs_fit(budget, max_rows, max_new):
    rng = random.Random(budget)
    lengths = [rng.choice([rng.randint(1, 40), rng.randint(100, 700)]) for _ in range(300)]
    plan = batching.plan_batches(lengths, max_new, budget, max_rows)
    assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
    for batch in plan:
        longest = max(lengths[i] for i in batch)
        assert lengths[batch[0]] == longest  # the batch is led by its longest prompt
        padded = batching.row_bucket(len(batch)) * batching.row_tokens(longest, max_new)
        assert padded <= budget or len(batch) == 1, (batch, padded)
        assert len(batch) <= max_rows


def test_full_batches_carry_no_padding_rows():
    lengths = [230 + i % 20 for i in range(100)]
    plan = batching.plan_batches(lengths, 48, 8192, 32)
    assert [len(b) for b in plan] == [24, 24, 24, 24, 4]
    assert all(batching.row_bucket(len(b)) == len(b) for b in plan)


def test_request_weights_fill_exactly_one_engine_batch():
    for prompt_len in (1, 31, 100, 240, 500, 900):
        for max_new in (16, 48, 256):
            for budget, max_rows in ((8192, 32), (4096, 16), (1000, 32)):
                rows = batching.rows_per_batch(prompt_len, max_new, budget, max_rows)
                weight = batching.request_weight(prompt_len, max_new, budget, max_rows)
                assert rows * weight <= budget or rows == 1
                assert (rows + 1) * weight > budget  # one more would not fit
                assert weight >= batching.row_tokens(prompt_len, max_new) >= prompt_len + max_new


def test_a_row_over_budget_runs_alone():
    assert batching.rows_per_batch(900, 256, 1000, 32) == 1
    assert batching.request_weight(900, 256, 1000, 32) > 1000


def test_per_prompt_budgets_plan_fits_and_one_budget_plans_as_before():
    rng = random.Random(7)
    lengths = [rng.randint(20, 900) for _ in range(200)]
    budgets = [min(rng.randint(1, 3) * n // 2 + 32, 1024) for n in lengths]
    plan = batching.plan_batches(lengths, budgets, 8192, 32)
    assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
    for batch in plan:
        # The program a batch runs as: its longest prompt's bucket + its largest budget's slots.
        row = (batching.prompt_bucket(max(lengths[i] for i in batch))
               + batching.new_tokens_slots(max(budgets[i] for i in batch)))
        assert batching.row_bucket(len(batch)) * row <= 8192 or len(batch) == 1
    assert batching.plan_batches(lengths, [64] * 200, 8192, 32) == \
        batching.plan_batches(lengths, 64, 8192, 32)
    with pytest.raises(ValueError, match="3 max_new_tokens for 200 prompts"):
        batching.plan_batches(lengths, [1, 2, 3], 8192, 32)
    with pytest.raises(ValueError, match=">= 1"):
        batching.plan_batches([5], [0], 8192, 32)
