"""Model adaptation (gdr_beam/adapt) on the real embedded model: LoRA algebra, the loss mask,
training, checkpoint/resume and load_model(adapter=...).

Training tests use the real weights, tokenizer and pii prompt with the decoder cut to its first
layers (the same per-layer code, a fraction of the compile time); forward checks use all 30."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdr_beam.adapt import LoraConfig, TrainConfig, Trainer, apply_adapter_file, init_adapter, \
    lora_forward, merge_adapter, save_adapter
from gdr_beam.adapt import data, forward
from gdr_beam.tasks import get_task

TEXT = "Hi, I'm Laura Chen, call me at (415) 555-0199 or mail laura.chen@gmail.com."
REWRITE = "Hi, I'm Maya Torres, call me at (312) 555-0147 or mail maya.torres@outlook.com."
SHORT = [{"role": "user", "content": "Replace the name: Bob Stone lives here."}]
SHORT_REPLY = "Ann Miller lives here."


@pytest.fixture(scope="module")
def model(embedded_model):
    return embedded_model  # one load for the session (tests/conftest.py)


@pytest.fixture(scope="module")
def small(model):
    """(config, params) of the real model cut to its first 3 layers."""
    cfg = dataclasses.replace(model.config, num_layers=3)
    keep = {"embed", "final_norm", "lm_head"} | {f"layer_{i}" for i in range(3)}
    return cfg, {"params": {k: v for k, v in model.params["params"].items() if k in keep}}


def _random_adapter(cfg, lora, seed=1):
    """A nonzero adapter (B drawn too), as after training."""
    adapter = init_adapter(cfg, lora, jax.random.key(seed))
    keys = jax.random.split(jax.random.key(seed + 1), len(adapter))
    return {name: {"a": ab["a"], "b": 0.05 * jax.random.normal(k, ab["b"].shape)}
            for (name, ab), k in zip(sorted(adapter.items()), keys)}


def _logits(cfg, params, ids, adapter=None, lora=None):
    tokens = jnp.asarray([ids], jnp.int32)
    with lora_forward(adapter, cfg, lora):
        return np.asarray(forward.full_logits(cfg, params, tokens))[0]


def test_zero_init_adapter_leaves_logits_unchanged(model):
    cfg, lora = model.config, LoraConfig(rank=4, alpha=8)
    adapter = init_adapter(cfg, lora, jax.random.key(0))
    assert len(adapter) == cfg.num_layers * 7
    assert all(float(jnp.abs(ab["a"]).sum()) > 0 and not np.any(ab["b"]) for ab in adapter.values())
    ids = model.encode("The capital of France is Paris, and")
    base = _logits(cfg, model.params, ids)
    np.testing.assert_array_equal(_logits(cfg, model.params, ids, adapter, lora), base)
    # The training forward is the engine's forward.
    np.testing.assert_allclose(base, model.logits(ids), atol=1e-4, rtol=1e-4)


def test_loss_mask_covers_only_response_tokens(model):
    task = get_task("pii")
    enc = data.encode_pair(model, task.messages(TEXT), REWRITE)
    prompt_ids = model.encode(model.apply_chat_template(task.messages(TEXT)))
    assert list(enc.ids[:enc.n_prompt]) == prompt_ids
    mask = data.loss_mask(enc)
    assert not mask[:enc.n_prompt].any() and mask[enc.n_prompt:].all()
    batch = data.collate([enc], 2, 512, 64, model.tokenizer.pad_id)
    w = batch["weight"][0] > 0
    assert w.sum() == enc.n_response
    labels = batch["labels"][0][w]
    # The targets are exactly the response and the end-of-turn token, nothing of the prompt.
    assert labels[-1] == data.end_of_turn(model.tokenizer)
    assert model.tokenizer.decode(list(labels[:-1])) == REWRITE
    assert list(batch["pos"][0][w] + 1) == list(range(enc.n_prompt, len(enc.ids)))
    assert not batch["weight"][1].any()  # padding row


def test_eval_examples_are_disjoint_from_training():
    from gdr_beam.adapt.synthetic import (FRESH_EVAL_TEMPLATES, TEMPLATES, TRAIN_ONLY_TEMPLATES,
                                          WIDER_TRAIN_TEMPLATES, pii_examples, template,
                                          template_ids)
    ids = {split: set(template_ids(split)) for split in ("train", "eval", "eval_fresh")}
    assert not ids["train"] & ids["eval"] and not ids["train"] & ids["eval_fresh"]
    assert not ids["eval"] & ids["eval_fresh"]
    assert sorted(ids["train"] | ids["eval"] | ids["eval_fresh"]) == \
        list(range(len(TEMPLATES) + len(TRAIN_ONLY_TEMPLATES) + len(FRESH_EVAL_TEMPLATES)
                   + len(WIDER_TRAIN_TEMPLATES)))
    # No eval frame appears among the training frames, even one added later by hand.
    frames = {split: {template(t) for t in ids[split]} for split in ids}
    assert not frames["train"] & frames["eval"] and not frames["train"] & frames["eval_fresh"]
    assert {e["template"] for e in pii_examples(30, 7, "eval_fresh")} <= ids["eval_fresh"]
    train = list(pii_examples(40, 1, "train"))
    again = list(pii_examples(40, 1, "train"))
    evals = list(pii_examples(20, 1001, "eval"))
    assert train == again  # a function of (n, seed, split)
    assert {e["template"] for e in evals} <= set(template_ids("eval"))
    assert not {e["text"] for e in train} & {e["text"] for e in evals}
    for e in train + evals:
        assert e["planted"] and all(v in e["text"] for v in e["planted"])


def test_shared_prefix_gives_the_same_loss(model, small):
    """The pii prompt's shared part run once per micro-batch == every row's full sequence."""
    cfg, params = small
    task = get_task("pii")
    ex = [data.encode_pair(model, task.messages(TEXT), REWRITE),
          data.encode_pair(model, task.messages("Mail Bob Stone at bob@stone.io."),
                           "Mail Ann Lee at ann@lee.io.")]
    p = data.shared_prefix(ex)
    assert 150 < p < min(e.n_prompt for e in ex)
    full = data.collate(ex, 3, 384, 64, model.tokenizer.pad_id)
    split = data.collate(ex, 3, 128, 64, model.tokenizer.pad_id, prefix_len=p)
    assert split["prefix"].shape == (1, p)
    a = [float(x) for x in forward.response_nll(cfg, params, full)]
    b = [float(x) for x in forward.response_nll(cfg, params, split)]
    assert a[1] == b[1] == sum(e.n_response for e in ex)
    np.testing.assert_allclose(b[0], a[0], rtol=1e-4)


def _train(small, model, tmp, steps, on_step=None, resume=True, **kw):
    cfg, params = small
    ex = [data.encode_pair(model, SHORT, SHORT_REPLY)]
    ex.append(data.encode_pair(model, [{"role": "user", "content": "Hello there, Tom."}],
                               "Hello there, Sam."))
    config = TrainConfig(lora=LoraConfig(rank=4, alpha=8, targets=("q", "v", "o", "down")),
                         steps=steps, batch_size=1, lr=kw.pop("lr", 3e-3), warmup_steps=0,
                         seed=3, checkpoint_every=2, log_every=0, **kw)
    trainer = Trainer(cfg, params, ex, model.tokenizer.pad_id, config, str(tmp))
    return trainer, trainer.run(resume=resume, on_step=on_step)


def test_few_steps_lower_the_loss(model, small, tmp_path):
    cfg, params = small
    trainer, result = _train(small, model, tmp_path, steps=6, grad_accum=2)
    batch = trainer.batches[0]
    static = dict(cfg=cfg, lora=trainer.config.lora, mode="lora", dtype="float32")
    zero = init_adapter(cfg, trainer.config.lora, jax.random.key(3))
    from gdr_beam.adapt.train import eval_loss
    before = [float(x) for x in eval_loss(zero, trainer.frozen, batch, **static)]
    after = [float(x) for x in eval_loss(result.trainable, trainer.frozen, batch, **static)]
    assert after[0] / after[1] < 0.85 * before[0] / before[1], (before, after)
    assert result.losses[-1] < result.losses[0]
    assert result.tokens > 0 and result.peak_rss_mb > 0


def test_full_fine_tuning_in_bf16(model, tmp_path):
    """mode=full trains every parameter (f32 master copy, bf16 forward); export round-trips."""
    cfg = dataclasses.replace(model.config, num_layers=1)
    params = {"params": {k: v for k, v in model.params["params"].items()
                         if k in ("embed", "final_norm", "lm_head", "layer_0")}}
    ex = [data.encode_pair(model, SHORT, SHORT_REPLY)]
    config = TrainConfig(mode="full", dtype="bfloat16", steps=2, batch_size=1, lr=1e-3,
                         warmup_steps=0, checkpoint_every=1, log_every=0)
    trainer = Trainer(cfg, params, ex, model.tokenizer.pad_id, config, str(tmp_path))
    result = trainer.run()
    assert all(np.isfinite(result.losses)) and len(result.losses) == 2
    kernel = result.trainable["params"]["layer_0"]["mlp"]["down_proj"]["kernel"]
    assert kernel.dtype == jnp.float32
    assert np.abs(np.asarray(kernel) - params["params"]["layer_0"]["mlp"]["down_proj"]
                  ["kernel"]).max() > 0
    trainer.export(str(tmp_path / "out"))
    loaded = apply_adapter_file(params, cfg, str(tmp_path / "out"))
    np.testing.assert_array_equal(np.asarray(loaded["params"]["layer_0"]["mlp"]["down_proj"]
                                             ["kernel"]), np.asarray(kernel))


class Killed(Exception):
    pass


def test_resume_after_kill_matches_uninterrupted_run(model, small, tmp_path):
    _, straight = _train(small, model, tmp_path / "a", steps=4, grad_accum=2)

    def kill(step, _):
        if step == 3:  # after the step-2 checkpoint and one step that was never saved
            raise Killed

    with pytest.raises(Killed):
        _train(small, model, tmp_path / "b", steps=4, on_step=kill, grad_accum=2)
    trainer, resumed = _train(small, model, tmp_path / "b", steps=4, grad_accum=2)
    assert resumed.resumed_from == 2
    assert resumed.losses == straight.losses
    for name in straight.trainable:
        for ab in "ab":
            np.testing.assert_array_equal(np.asarray(resumed.trainable[name][ab]),
                                          np.asarray(straight.trainable[name][ab]))
    # Other settings refuse to resume from this run's checkpoints.
    with pytest.raises(ValueError, match="other settings"):
        _train(small, model, tmp_path / "b", steps=4, grad_accum=2, lr=1e-4)


def test_merged_adapter_equals_unmerged_forward(model):
    cfg, lora = model.config, LoraConfig(rank=8, alpha=16)
    adapter = _random_adapter(cfg, lora)
    ids = model.encode("Ms. Laura Chen (laura@chen.org) lives at 12 Oak Street.")
    unmerged = _logits(cfg, model.params, ids, adapter, lora)
    merged = _logits(cfg, merge_adapter(model.params, adapter, cfg, lora), ids)
    base = _logits(cfg, model.params, ids)
    assert np.abs(unmerged - base).max() > 0.1  # the adapter does change the model
    np.testing.assert_allclose(merged, unmerged, atol=2e-3, rtol=1e-3)
    assert (merged.argmax(-1) == unmerged.argmax(-1)).all()


def test_load_model_with_adapter_round_trip(model, tmp_path):
    cfg, lora = model.config, LoraConfig(rank=4, alpha=8, targets=("q", "k", "gate", "up"))
    adapter = _random_adapter(cfg, lora, seed=5)
    save_adapter(str(tmp_path), adapter, lora, {"kind": "lora"})
    assert os.path.getsize(tmp_path / "adapter.safetensors") < 5e6
    # Loaded the way the Beam handler (and so `pipelines.refine --adapter`) loads it: the
    # handler calls load_model(adapter=...) and caches the result apart from the plain model.
    # Default dtype (float32 on CPU) on both, so only the adapter tells the two apart, and the
    # plain one is the model the pipeline tests of this process load anyway.
    from gdr_beam.beam.handler import JaxModelHandler
    adapted = JaxModelHandler(adapter=str(tmp_path)).load_model()
    assert adapted.dtype == jnp.float32
    assert adapted is not JaxModelHandler().load_model()
    expect = merge_adapter(model.params, adapter, cfg, lora)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6),
        adapted.params, expect)
    ids = model.encode("Call Laura at 555-0199.")
    np.testing.assert_allclose(adapted.logits(ids), _logits(cfg, model.params, ids, adapter, lora),
                               atol=2e-3, rtol=1e-3)
    bad = {"layer_0.q": {"a": np.zeros((3, 4), np.float32), "b": np.zeros((4, 576))}}
    save_adapter(str(tmp_path / "bad"), bad, lora)
    with pytest.raises(ValueError, match="shapes"):  # what load_model(adapter=bad) calls
        apply_adapter_file(model.params, cfg, str(tmp_path / "bad"))


def test_float16_adapter_halves_the_file_and_merges_the_same(model, tmp_path):
    cfg, lora = model.config, LoraConfig(rank=4, alpha=8, targets=("q", "v", "down"))
    adapter = _random_adapter(cfg, lora, seed=7)
    save_adapter(str(tmp_path / "f32"), adapter, lora, {"kind": "lora"})
    save_adapter(str(tmp_path / "f16"), adapter, lora, {"kind": "lora"}, dtype="float16")
    size = {d: os.path.getsize(tmp_path / d / "adapter.safetensors") for d in ("f32", "f16")}
    assert size["f16"] < 0.55 * size["f32"]
    f32 = apply_adapter_file(model.params, cfg, str(tmp_path / "f32"))
    f16 = apply_adapter_file(model.params, cfg, str(tmp_path / "f16"))
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4),
        f16, f32)
    with pytest.raises(ValueError, match="float32 or float16"):
        save_adapter(str(tmp_path / "bf16"), adapter, lora, dtype="bfloat16")



def test_pairs_from_your_own_texts(tmp_path):
    """make_adapt_data --input (adapt.pairs): a toxic text becomes a verified pair; a clean text (the job
    never asks the model about it), a text of nothing but abuse and a bad line are counted,
    never paired."""
    from gdr_beam.adapt.pairs import build
    path = tmp_path / "texts.jsonl"
    path.write_text("\n".join([
        '{"id": "t1", "text": "this fucking update broke the export again, you idiots"}',
        '{"id": "t2", "text": "the export works again, thanks for the quick fix"}',
        '{"id": "t3", "text": "fuck you idiot"}',
        '{"text": ""}']) + "\n", encoding="utf-8")
    records, summary = build(10, 0, "train", "toxicity", input_path=str(path))
    assert [r["id"] for r in records] == ["t1"]
    pair = records[0]
    assert "fucking" not in pair["response"] and "idiots" not in pair["response"]
    assert "broke the export again" in pair["response"]
    assert pair["messages"] == get_task("toxicity").messages(pair["original"])
    # the empty text is counted too (no rewrite to learn from), never dropped unseen
    assert summary["counts"] == {"kept/fallback": 1, "dropped": 3,
                                 "rejected/fallback/unchanged": 1,
                                 "rejected/fallback/empty_rewrite": 2}, summary
    for bad in ('{"txt": "no text field"}', '{"text": 42}'):
        path.write_text(bad + "\n", encoding="utf-8")
        with pytest.raises(ValueError, match="texts.jsonl:1"):
            build(10, 0, "train", "toxicity", input_path=str(path))


def test_llamacpp_lora_export_layout(tmp_path):
    """gguf_export writes llama.cpp's LoRA layout: A.T [rank, in], B.T [out, rank], Q/K rows in
    GGUF's RoPE order (the inverse of what the GGUF loader undoes); the file reads back.
    benchmarks/adapter_vs_llamacpp.py checks it against llama.cpp itself."""
    import gguf
    from gdr_beam.adapt import gguf_export
    from gdr_beam.model.checkpoints import _unpermute
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3 * 64, 5)).astype(np.float32)
    assert np.array_equal(_unpermute(gguf_export.permute_rows(w, 3), 3), w)
    assert not np.array_equal(gguf_export.permute_rows(w, 3), w)
    adapter = {"layer_1.q": {"a": rng.normal(size=(576, 8)), "b": rng.normal(size=(8, 576))},
               "layer_1.k": {"a": rng.normal(size=(576, 8)), "b": rng.normal(size=(8, 192))},
               "layer_2.down": {"a": rng.normal(size=(1536, 8)), "b": rng.normal(size=(8, 576))}}
    tensors = gguf_export.lora_tensors(adapter, num_heads=9, num_kv_heads=3)
    assert tensors["blk.2.ffn_down.weight.lora_a"].shape == (8, 1536)
    assert tensors["blk.2.ffn_down.weight.lora_b"].shape == (576, 8)
    # the delta llama.cpp adds, un-permuted as the loader does, is ours
    k = tensors["blk.1.attn_k.weight.lora_b"] @ tensors["blk.1.attn_k.weight.lora_a"]
    ours = (adapter["layer_1.k"]["a"] @ adapter["layer_1.k"]["b"]).T
    np.testing.assert_allclose(_unpermute(k, 3), ours, rtol=1e-5, atol=1e-5)
    from gdr_beam.adapters import shipped_path
    path = gguf_export.export(shipped_path("pii"), str(tmp_path / "pii.gguf"))
    reader = gguf.GGUFReader(path)
    names = {t.name for t in reader.tensors}
    assert len(names) == 30 * 7 * 2 and "blk.29.attn_q.weight.lora_b" in names
    assert bytes(reader.fields["adapter.type"].parts[-1]).decode() == "lora"
