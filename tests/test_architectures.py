"""Gemma 2, Gemma 3 (text) and Qwen3 against HF transformers, with no download.

Each test builds a tiny random checkpoint with transformers' own classes (a few layers, small
dims, a sliding window shorter than the prompts, so local layers really cut off context),
saves it with a small SentencePiece-style tokenizer and a Gemma-format chat template, loads it
with gdr_beam.load_model and compares: full-sequence logits (f32 tolerance) and greedy
continuations through our KV-cache decode path (batched, left-padded, prompts of different
lengths) against HF's own generate.
"""

import dataclasses
import json
import math

import numpy as np
import pytest

import gdr_beam
from gdr_beam.model import checkpoints

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

WINDOW = 8
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
# The Gemma chat format (<start_of_turn>role ... <end_of_turn>, the model's role is "model").
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
CORPUS = [
    "Call Ana at 415-555-0134 about the invoice for the garden project.",
    "The quick brown fox jumps over the lazy dog while the cat sleeps in the sun.",
    "Please rewrite the text so that no personal information remains in it.",
    "def add(a, b):\n    return a + b\n",
    "Numbers like 12, 345 and 6789 appear in tables, dates and addresses.",
] * 4


def _tokenizer(directory):
    """A small BPE with a Metaspace pre-tokenizer (how Gemma's SentencePiece-derived
    tokenizer.json is built), saved the way HF saves one, with BOS added by its
    post-processor."""
    from tokenizers import decoders, models, pre_tokenizers, processors, trainers

    tok = tokenizers.Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=200, special_tokens=SPECIALS))
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A",
                                                       special_tokens=[("<bos>", 2)])
    hf = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        unk_token="<unk>", additional_special_tokens=["<start_of_turn>", "<end_of_turn>"])
    hf.chat_template = GEMMA_TEMPLATE
    hf.save_pretrained(directory)
    return hf


def _common(vocab, **shape):
    return dict(dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=24,
                     max_position_embeddings=512, rms_norm_eps=1e-6, initializer_range=0.15,
                     pad_token_id=0, eos_token_id=1, bos_token_id=2,
                     attn_implementation="eager"), **shape)


def _build(kind, vocab, **shape):
    """A random HF model of `kind`; `shape` overrides the common dimensions."""
    torch.manual_seed(0)
    if kind == "gemma2":
        # Soft caps small enough to bend these logits, a query scale that is not head_dim.
        config = transformers.Gemma2Config(
            **_common(vocab, **shape), sliding_window=WINDOW, query_pre_attn_scalar=40,
            attn_logit_softcapping=4.0, final_logit_softcapping=6.0, tie_word_embeddings=True,
            rope_parameters={"rope_type": "default", "rope_theta": 500.0})
        model = transformers.Gemma2ForCausalLM(config)
    elif kind == "gemma3":
        # Local and global layers with different RoPE bases, linear scaling on global ones.
        config = transformers.Gemma3TextConfig(
            **_common(vocab, **shape), sliding_window=WINDOW, query_pre_attn_scalar=40,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            rope_parameters={
                "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 5000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 50.0}},
            tie_word_embeddings=True)
        model = transformers.Gemma3ForCausalLM(config)
    else:
        common = _common(vocab, **shape)
        config = transformers.Qwen3Config(**common, tie_word_embeddings=False,
                                          rope_parameters={"rope_type": "default",
                                                           "rope_theta": 1000.0})
        model = transformers.Qwen3ForCausalLM(config)
    with torch.no_grad():  # random init leaves norm weights constant; make them matter
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(0.0, 0.4)
    return model.eval()


@pytest.fixture(scope="module", params=["gemma2", "gemma3", "qwen3"])
def pair(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    hf_tok = _tokenizer(directory)
    model = _build(request.param, vocab=len(hf_tok) + 6)  # a few unused rows, as real vocabs
    model.generation_config.eos_token_id = [1, hf_tok.convert_tokens_to_ids("<end_of_turn>")]
    model.save_pretrained(directory)
    ours = gdr_beam.load_model(str(directory), dtype="float32", max_batch_tokens=4096)
    return request.param, model, hf_tok, ours


PROMPTS = [
    "The quick brown fox jumps over the lazy dog while the cat sleeps in the sun, and then",
    "Please rewrite the text so that no personal information remains",
    "Call Ana at 415-555-0134 about",
]


def test_config_from_checkpoint_metadata(pair):
    kind, model, _, ours = pair
    cfg, ref = ours.config, model.config
    assert cfg.architecture == ("gemma3_text" if kind == "gemma3" else kind)
    assert (cfg.num_layers, cfg.head_dim, cfg.num_kv_heads) == (3, 24, 2)
    assert cfg.qk_norm == (kind != "gemma2")
    if kind == "qwen3":
        assert not cfg.layer_types and not cfg.post_norms and cfg.embed_scale == 1.0
        return
    assert cfg.post_norms and cfg.tie_word_embeddings and cfg.mlp_activation == "gelu_tanh"
    assert cfg.embed_scale == pytest.approx(8.0) and cfg.query_scale == pytest.approx(40 ** -0.5)
    assert cfg.layer_types == tuple(ref.layer_types) and cfg.sliding_window == WINDOW
    if kind == "gemma2":
        assert (cfg.attn_softcap, cfg.final_softcap) == (4.0, 6.0)
    else:
        assert cfg.attn_softcap is None and cfg.final_softcap is None
        assert (cfg.rope_theta, cfg.local_rope_theta) == (5000.0, 50.0)
        assert cfg.rope_scaling.kind == "linear" and cfg.rope_scaling.factor == 4.0


def test_logits_equal_reference_beyond_the_window(pair):
    _, model, _, ours = pair
    ids = ours.encode(" ".join(PROMPTS))
    assert len(ids) > 4 * WINDOW
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].numpy()
    got = ours.logits(ids)
    np.testing.assert_allclose(got, ref, atol=2e-4, rtol=2e-4)
    # Greedy choices are decided, not near-ties that rounding could flip.
    top2 = np.sort(ref, axis=-1)[:, -2:]
    assert np.median(top2[:, 1] - top2[:, 0]) > 100 * 2e-4


def test_greedy_continuations_equal_reference(pair):
    _, model, _, ours = pair
    prompts = [ours.encode(p) for p in PROMPTS]
    assert min(map(len, prompts)) > WINDOW
    stops = sorted(ours.tokenizer.stop_ids)
    got = ours.generate_ids(prompts, max_new_tokens=16)  # one batch, left-padded, KV cache
    for ids, ours_out in zip(prompts, got):
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False,
                                 eos_token_id=stops, pad_token_id=0)[0, len(ids):].tolist()
        want = next((out[:j] for j, t in enumerate(out) if t in stops), out)
        assert ours_out == want
    assert max(map(len, got)) > WINDOW  # decode ran past the window, too


def test_shared_prefix_across_the_window_equals_reference(pair):
    """Prompts sharing a prefix longer than the sliding window: with the prefix cache (the
    prefix prefilled once, each row's suffix after a padding hole) greedy output is HF's."""
    _, model, _, ours = pair
    shared = CORPUS[2] + " " + CORPUS[0] + " " + CORPUS[4]
    prompts = [ours.encode(shared + " " + p) for p in PROMPTS]
    reused = ours.sampler.stats.prefix_reused_tokens
    got = ours.generate_ids(prompts, max_new_tokens=[16, 12, 16])
    prefix = (ours.sampler.stats.prefix_reused_tokens - reused) // len(prompts)
    assert prefix > 2 * WINDOW  # the prefix path ran, and windows reach into the prefix
    stops = sorted(ours.tokenizer.stop_ids)
    for ids, ours_out, budget in zip(prompts, got, [16, 12, 16]):
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=budget, do_sample=False,
                                 eos_token_id=stops, pad_token_id=0)[0, len(ids):].tolist()
        assert ours_out == next((out[:j] for j, t in enumerate(out) if t in stops), out)


def test_chat_template_and_end_of_turn_from_checkpoint(pair):
    _, _, hf_tok, ours = pair
    messages = [{"role": "user", "content": "Rewrite: Call Ana at 415-555-0134."}]
    text = ours.apply_chat_template(messages)
    assert text == hf_tok.apply_chat_template(messages, tokenize=False,
                                              add_generation_prompt=True)
    assert text.startswith("<bos><start_of_turn>user\n") and text.endswith("<start_of_turn>model\n")
    want = hf_tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    want = want["input_ids"] if isinstance(want, dict) or hasattr(want, "keys") else want
    assert ours.encode(text) == list(want)  # one BOS: the template's
    assert hf_tok.convert_tokens_to_ids("<end_of_turn>") in ours.tokenizer.stop_ids


def test_chat_template_features_qwen3_and_gemma_use(tmp_path):
    """Loop controls, a namespace, reversed iteration and tojson (Qwen3's template uses them)
    render as HF renders them."""
    from gdr_beam.model.tokenizer import Tokenizer

    hf_tok = _tokenizer(tmp_path)
    hf_tok.chat_template = (
        "{%- set ns = namespace(last=-1) %}"
        "{%- for m in messages[::-1] %}{%- if m.role == 'user' %}"
        "{%- set ns.last = messages|length - 1 - loop.index0 %}{%- break %}{%- endif %}"
        "{%- endfor %}"
        "{%- for m in messages %}{%- if loop.index0 == ns.last %}<start_of_turn>last "
        "{%- else %}<start_of_turn>{% endif %}{{ m.role }}\n{{ m.content | trim }}"
        "{%- if m.meta is defined %} {{ m.meta | tojson }}{% endif %}<end_of_turn>\n"
        "{%- endfor %}{%- if add_generation_prompt %}<start_of_turn>model\n{%- endif %}")
    hf_tok.save_pretrained(tmp_path)
    messages = [{"role": "user", "content": "a <b> & 'c'", "meta": {"k": "é<>"}},
                {"role": "assistant", "content": "ok "}, {"role": "user", "content": "again"}]
    ours = Tokenizer.from_hf_dir(str(tmp_path)).apply_chat_template(messages)
    assert ours == hf_tok.apply_chat_template(messages, tokenize=False,
                                              add_generation_prompt=True)
    assert '{"k": "é<>"}' in ours and "<start_of_turn>lastuser\nagain" in ours
    # A multimodal checkpoint may keep its template only in the processor's chat_template.json.
    if (tmp_path / "chat_template.jinja").exists():
        (tmp_path / "chat_template.jinja").unlink()
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": "{{ 'x' }}"}))
    assert Tokenizer.from_hf_dir(str(tmp_path)).chat_template == "{{ 'x' }}"


def test_older_gemma3_config_layout():
    """A Gemma 3 12B-style config.json as transformers 4.5x wrote it (multimodal wrapper,
    rope_scaling + rope_local_base_freq, sliding_window_pattern, no layer_types)."""
    text = {"hidden_size": 3840, "intermediate_size": 15360, "num_hidden_layers": 48,
            "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256,
            "query_pre_attn_scalar": 256, "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0, "rope_scaling": {"factor": 8.0,
                                                              "rope_type": "linear"},
            "sliding_window": 1024, "sliding_window_pattern": 6, "vocab_size": 262208,
            "max_position_embeddings": 131072, "hidden_activation": "gelu_pytorch_tanh",
            "rms_norm_eps": 1e-6, "model_type": "gemma3_text"}
    cfg = checkpoints._hf_config({"model_type": "gemma3", "text_config": text}, "gemma-3-12b")
    assert cfg.layer_types.count("full_attention") == 8
    assert [i for i in range(48) if not cfg.is_sliding(i)] == list(range(5, 48, 6))
    assert cfg.rope_theta == 1e6 and cfg.rope_scaling.factor == 8.0
    assert cfg.local_rope_theta == 1e4 and cfg.local_rope_scaling is None
    assert cfg.tie_word_embeddings and cfg.embed_scale == pytest.approx(math.sqrt(3840))
    with pytest.raises(ValueError, match="not supported"):
        checkpoints._hf_config(dict(text, model_type="gemma"), "x")


def test_qwen3_gguf_reads_as_the_hf_directory(tmp_path):
    """A Qwen3 GGUF (tensor names and keys as llama.cpp's converter writes them; Qwen3 keeps
    HF's q/k row order) loads to the same config and weights as the HF directory."""
    gguf = pytest.importorskip("gguf")
    model = _build("qwen3", vocab=64)
    model.save_pretrained(tmp_path / "hf")
    cfg = model.config
    path = tmp_path / "qwen3.gguf"  # the same weights, as llama.cpp would write them
    writer = gguf.GGUFWriter(str(path), "qwen3")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_key_length(cfg.head_dim)
    writer.add_value_length(cfg.head_dim)
    writer.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
             "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    top = {"model.embed_tokens.weight": "token_embd.weight",
           "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    for name, w in model.state_dict().items():
        if name in top:
            target = top[name]
        else:
            layer, rest = name[len("model.layers."):].split(".", 1)
            target = f"blk.{layer}.{names[rest[:-len('.weight')]]}.weight"
        writer.add_tensor(target, w.numpy().astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    from_gguf = checkpoints.load_gguf(str(path))
    from_hf = checkpoints.load_checkpoint(str(tmp_path / "hf"))
    # GGUF stores eps as f32: equal up to that rounding, the rest exactly.
    assert from_gguf.config.rms_norm_eps == pytest.approx(from_hf.config.rms_norm_eps)
    assert dataclasses.replace(from_gguf.config, rms_norm_eps=0) == dataclasses.replace(
        from_hf.config, rms_norm_eps=0)
    assert from_gguf.config.qk_norm
    assert sorted(from_gguf.params) == sorted(from_hf.params)
    for name, w in from_hf.params.items():
        np.testing.assert_array_equal(from_gguf.params[name], w, err_msg=name)


def test_multimodal_gemma3_checkpoint_reads_its_text_decoder(tmp_path):
    """Gemma 3 4B/12B/27B ship as Gemma3ForConditionalGeneration: config.json nests the text
    config, the decoder's tensors sit under model.language_model., next to a vision tower.
    The loader reads the same decoder from that layout as from a text-only export."""
    from safetensors.numpy import load_file, save_file

    model = _build("gemma3", vocab=64)
    model.save_pretrained(tmp_path / "text")
    text_config = json.loads((tmp_path / "text" / "config.json").read_text())
    tensors = load_file(str(tmp_path / "text" / "model.safetensors"))
    wrapped = {name.replace("model.", "model.language_model.", 1): w
               for name, w in tensors.items()}
    wrapped["model.vision_tower.vision_model.embeddings.patch_embedding.weight"] = np.zeros(
        (8, 3, 2, 2), np.float32)
    wrapped["model.multi_modal_projector.mm_input_projection_weight"] = np.zeros(
        (8, 64), np.float32)
    (tmp_path / "mm").mkdir()
    save_file(wrapped, str(tmp_path / "mm" / "model.safetensors"))
    (tmp_path / "mm" / "config.json").write_text(json.dumps(
        {"model_type": "gemma3", "text_config": text_config, "vision_config": {"x": 1}}))
    text = checkpoints.load_checkpoint(str(tmp_path / "text"))
    multimodal = checkpoints.load_checkpoint(str(tmp_path / "mm"))
    assert multimodal.config == text.config
    assert sorted(multimodal.params) == sorted(text.params)
    for name, w in text.params.items():
        np.testing.assert_array_equal(multimodal.params[name], w, err_msg=name)
