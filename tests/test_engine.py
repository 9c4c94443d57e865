"""The JAX engine against an independent reference: HF transformers (PyTorch, CPU) loading the
same GGUF. Both dequantise with the `gguf` package; everything after that (layout, Q/K
un-permutation, RoPE, attention, norms, head) is computed independently."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

LONG_TEXT = " ".join(
    f"Line {i}: the quick brown fox number {i * 7 % 13} jumps over the lazy dog near "
    f"river {chr(65 + i % 26)}." for i in range(60))

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Translate to German: I would like a cup of coffee, please.",
    "Emails: alice@example.com, bob.smith@corp.org. Call +1 (555) 010-9999!",
    "1, 1, 2, 3, 5, 8, 13, 21,",
    "Once upon a time, in a small village by the sea, there lived",
    "Les élèves ont étudié l'histoire de la Révolution française 🇫🇷 et",
    "SELECT name, email FROM users WHERE",
    "Q: What is 12 * 12?\nA:",
    "Rewrite politely: this is the worst service ever, you idiots.",
]


@pytest.fixture(scope="module")
def model(embedded_model):
    return embedded_model  # one load for the session (tests/conftest.py)


@pytest.fixture(scope="module")
def reference(hf_reference_model):
    return hf_reference_model  # HF transformers reading the same GGUF (tests/conftest.py)


def _chat(model, text):
    return model.apply_chat_template([{"role": "user", "content": text}])


def test_default_model_config(model):
    cfg = model.config
    assert (cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads) == (30, 576, 9, 3)
    assert cfg.tie_word_embeddings
    assert model.device.platform == "cpu"


@pytest.mark.parametrize("text", [PROMPTS[0], PROMPTS[6], PROMPTS[3], LONG_TEXT])
def test_logits_match_reference(model, reference, text):
    ids = model.encode(text)
    if text is LONG_TEXT:
        assert len(ids) > 512
    ours = model.logits(ids)
    with torch.no_grad():
        ref = reference(torch.tensor([ids])).logits[0].numpy()
    assert ours.shape == ref.shape
    # f32 on both sides; differences are summation order only.
    np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=1e-3)
    assert (ours.argmax(-1) == ref.argmax(-1)).mean() > 0.99


def test_greedy_continuations_match_reference(model, reference):
    prompts = [_chat(model, p) for p in PROMPTS]
    ours = model.generate_ids([model.encode(p) for p in prompts], max_new_tokens=64)
    stop = model.tokenizer.stop_ids
    matches = 0
    for prompt, got in zip(prompts, ours):
        ids = torch.tensor([model.encode(prompt)])
        with torch.no_grad():
            out = reference.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=64, eos_token_id=sorted(stop),
                                     pad_token_id=model.tokenizer.pad_id)
        want = out[0, ids.shape[1]:].tolist()
        want = want[:next((j for j, t in enumerate(want) if t in stop), len(want))]
        matches += got == want
    assert matches >= 9, f"only {matches}/10 greedy continuations match the reference"


def test_padding_invariance(model):
    """A prompt generates the same tokens alone as inside batches of other sizes and lengths."""
    prompts = [_chat(model, p) for p in PROMPTS[:6]] + [LONG_TEXT[:900]]
    batched = model.generate(prompts, max_new_tokens=24)
    for i in (0, 3, 6):
        assert model.generate([prompts[i]], max_new_tokens=24) == [batched[i]]
    reordered = model.generate(prompts[::-1][:4], max_new_tokens=24)
    assert reordered == batched[::-1][:4]


def test_per_prompt_budgets(model):
    """Each row stops at its own budget; greedy, a short budget gives the long one's start."""
    prompts = [_chat(model, p) for p in PROMPTS[:4]]
    full = model.generate_ids([model.encode(p) for p in prompts], max_new_tokens=24)
    budgets = [3, 24, 9, 1]
    texts, cut = model.generate_with_ids(prompts, max_new_tokens=budgets)
    assert cut == [f[:b] for f, b in zip(full, budgets)]
    assert sum(len(f) > b for f, b in zip(full, budgets)) >= 2  # the budgets did cut rows
    assert texts[3] == model.tokenizer.decode(cut[3])


def test_prefix_cache_is_exact(model):
    """A shared prefix prefilled once: every suffix position's logits equal a full prefill's
    (f32 tolerance), and greedy output is the same with the prefix cache on, off, or reused by
    a later call of one prompt."""
    import jax.numpy as jnp
    from gdr_beam import prefix_cache
    from gdr_beam.model.llama import Decoder, LayerCache
    from gdr_beam.tasks import get_task
    task = get_task("pii")
    texts = ["Call Dr. Ana Ruiz at 415-555-0134 tomorrow.",
             "The train leaves at nine from platform two, said Tom Baker to the crowd."]
    prompts = [model.encode(model.apply_chat_template(task.messages(t))) for t in texts]
    P = prefix_cache.usable_len(prefix_cache.common_prefix_len(prompts), min(map(len, prompts)))
    assert P >= 128  # the task's system message and few-shot pair
    kv = model.sampler._prefix_prefill(model.params, jnp.asarray([prompts[0][:P]], jnp.int32))
    suffixes = [p[P:] for p in prompts]
    width = max(map(len, suffixes)) + 3  # every row has a hole between prefix and suffix
    tokens = np.zeros((2, width), np.int32)
    start = np.zeros((2,), np.int32)
    for r, suffix in enumerate(suffixes):
        tokens[r, width - len(suffix):] = suffix
        start[r] = P + width - len(suffix)
    cache = tuple(LayerCache(*(jnp.zeros((2,) + part.shape[1:2] + (P + width,) + part.shape[3:],
                                         part.dtype).at[:, :, :P].set(part[0])
                               for part in (layer.k, layer.v))) for layer in kv)
    logits, _ = Decoder(model.config, model.dtype, model.param_dtype).apply(
        model.params, jnp.asarray(tokens), cache, jnp.int32(P), jnp.asarray(start),
        prefix_len=jnp.int32(P))
    for r, (prompt, suffix) in enumerate(zip(prompts, suffixes)):
        np.testing.assert_allclose(np.asarray(logits[r, width - len(suffix):]),
                                   model.logits(prompt)[P:], atol=1e-3, rtol=1e-3)

    sampler = model.sampler
    reused = sampler.stats.prefix_reused_tokens
    on = model.generate_ids(prompts, max_new_tokens=[24, 40])
    assert sampler.stats.prefix_reused_tokens - reused == 2 * P
    hits = sampler.prefixes.hits
    assert model.generate_ids(prompts[1:], max_new_tokens=40) == on[1:]
    assert sampler.prefixes.hits == hits + 1  # one prompt alone reuses the cached prefix
    sampler.prefix_cache = False
    try:
        assert model.generate_ids(prompts, max_new_tokens=[24, 40]) == on
    finally:
        sampler.prefix_cache = True


def test_slot_refill_keeps_rows_apart(model):
    """Five prompts through a pool of two slots, budgets from 1 to 40: freed slots are
    refilled mid-call, and every prompt's greedy output equals the one from a pool that holds
    all five at once, and alone; sampled, each row's output depends on its seed only, not on
    which rows shared the pool or when it got a slot."""
    from gdr_beam.generate import SamplingParams
    prompts = [model.encode(_chat(model, p)) for p in PROMPTS[2:7]]
    budgets = [40, 2, 17, 1, 30]  # prompt 0 has the largest row: every call below, one shape
    together = model.generate_ids(prompts, max_new_tokens=budgets)
    sampler = model.sampler
    sampler.max_batch_size, admissions = 2, sampler.stats.admissions
    try:
        two = model.generate_ids(prompts, max_new_tokens=budgets)
        assert sampler.stats.admissions - admissions >= 4  # slots were refilled, one by one
        alone = model.generate_ids(prompts[:1], max_new_tokens=budgets[:1])
        sampling = SamplingParams(temperature=1.0)
        sampled = model.generate_ids(prompts, max_new_tokens=budgets, sampling=sampling,
                                     seed=[5, 6, 7, 8, 9])
        some = model.generate_ids(prompts[::2], max_new_tokens=budgets[::2], sampling=sampling,
                                  seed=[5, 7, 9])
    finally:
        sampler.max_batch_size = 32
    assert two == together and alone == together[:1]
    assert some == sampled[::2] and sampled != two
    assert [len(t) for t in two][1:4:2] == [2, 1]  # short budgets ended their rows


def test_sampling_depends_on_seed_not_batch(model):
    prompts = [_chat(model, "Write a sentence about the sea."), _chat(model, "Name a colour.")]
    kwargs = dict(max_new_tokens=16, temperature=1.0, top_k=50, top_p=0.95)
    both = model.generate(prompts, seed=[11, 22], **kwargs)
    assert model.generate(prompts[:1], seed=[11], **kwargs) == both[:1]
    assert model.generate(prompts[1:], seed=[22], **kwargs) == both[1:]
    assert model.generate(prompts, seed=[11, 22], **kwargs) == both
    others = [model.generate(prompts[:1], seed=[s], **kwargs)[0] for s in range(5)]
    assert len(set(others)) > 1, "different seeds should give different samples"


def test_top_k_one_is_greedy(model):
    prompt = [_chat(model, "What is the capital of Italy?")]
    greedy = model.generate(prompt, max_new_tokens=12)
    assert model.generate(prompt, max_new_tokens=12, temperature=0.7, top_k=1) == greedy


def test_stop_strings_and_max_new_tokens(model):
    prompt = ["1, 2, 3, 4, 5, 6,"]
    full_ids = model.generate_with_ids(prompt, max_new_tokens=20)[1][0]
    assert len(full_ids) == 20  # counting never emits an end-of-turn token
    text = model.generate(prompt, max_new_tokens=20)[0]
    cut = model.generate(prompt, max_new_tokens=20, stop=[" 9,"])[0]
    assert " 9," in text and cut == text[:text.index(" 9,")]


def test_ends_at_end_of_turn(model):
    text, ids = model.generate_with_ids([_chat(model, "Say hello.")], max_new_tokens=64)
    assert len(ids[0]) < 64 and "<|im_end|>" not in text[0] and text[0].strip()


def test_bad_arguments_are_clear_errors(model):
    with pytest.raises(ValueError, match="exceeds the model context"):
        model.generate(["x " * 9000], max_new_tokens=8)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(["hi"], temperature=-1.0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(["hi"], max_new_tokens=0)
    with pytest.raises(TypeError, match="list of prompts"):
        model.generate("hi")
    assert model.generate([]) == []
