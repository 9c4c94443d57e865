"""Checkpoint loaders: the embedded GGUF against HF transformers' reading of the same file,
GGUF quantisation types on files the test writes, and HF safetensors directories (Llama with
Llama-3 RoPE scaling, Qwen2 with q/k/v biases, bf16, sharded) checked end to end: our JAX model
on the loaded weights against the HF PyTorch model that wrote them."""

import json
import os

import numpy as np
import pytest

import gdr_beam
from gdr_beam.model import checkpoints

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

QT = gguf.GGMLQuantizationType


@pytest.fixture(scope="module")
def embedded():
    return checkpoints.load_checkpoint(checkpoints.default_model_path())


@pytest.fixture(scope="module")
def hf_embedded(hf_reference_model):
    return hf_reference_model  # HF's own reading of the same file (tests/conftest.py)


def test_embedded_config_and_shapes(embedded):
    cfg = embedded.config
    assert (cfg.num_layers, cfg.hidden_size, cfg.intermediate_size) == (30, 576, 1536)
    assert (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.vocab_size) == (9, 3, 64, 49152)
    assert cfg.rope_theta == 100000.0 and cfg.tie_word_embeddings
    p = embedded.params
    assert p["embed_tokens"].shape == (49152, 576) and "lm_head" not in p
    assert p["layers.0.q_proj"].shape == (576, 576)
    assert p["layers.29.k_proj"].shape == (576, 192)
    assert p["layers.3.down_proj"].shape == (1536, 576)
    assert all(a.dtype == np.float32 for a in p.values())


@pytest.mark.parametrize("layer", [0, 17, 29])
def test_embedded_weights_match_hf_reading(embedded, hf_embedded, layer):
    """HF de-permutes Q/K its own way; ours must agree exactly."""
    hf_layer = hf_embedded.model.layers[layer]
    ours = embedded.params
    pairs = {
        "q_proj": hf_layer.self_attn.q_proj, "k_proj": hf_layer.self_attn.k_proj,
        "v_proj": hf_layer.self_attn.v_proj, "o_proj": hf_layer.self_attn.o_proj,
        "gate_proj": hf_layer.mlp.gate_proj, "down_proj": hf_layer.mlp.down_proj,
    }
    for name, module in pairs.items():
        np.testing.assert_array_equal(ours[f"layers.{layer}.{name}"],
                                      module.weight.detach().numpy().T, err_msg=name)
    np.testing.assert_array_equal(ours[f"layers.{layer}.attn_norm"],
                                  hf_layer.input_layernorm.weight.detach().numpy())


# -- GGUF files written by the test ---------------------------------------------------------------

TINY = dict(layers=2, hidden=64, ffn=128, heads=4, kv_heads=2, vocab=256)


def _permute(w, n_heads):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute, written out for the test."""
    return (w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def _tiny_hf_weights(seed=0):
    rng = np.random.default_rng(seed)
    t, hd = TINY, TINY["hidden"] // TINY["heads"]
    w = {"token_embd.weight": rng.standard_normal((t["vocab"], t["hidden"])),
         "output_norm.weight": rng.standard_normal(t["hidden"]),
         "output.weight": rng.standard_normal((t["vocab"], t["hidden"]))}
    for i in range(t["layers"]):
        w |= {
            f"blk.{i}.attn_norm.weight": rng.standard_normal(t["hidden"]),
            f"blk.{i}.ffn_norm.weight": rng.standard_normal(t["hidden"]),
            f"blk.{i}.attn_q.weight": rng.standard_normal((t["heads"] * hd, t["hidden"])),
            f"blk.{i}.attn_k.weight": rng.standard_normal((t["kv_heads"] * hd, t["hidden"])),
            f"blk.{i}.attn_v.weight": rng.standard_normal((t["kv_heads"] * hd, t["hidden"])),
            f"blk.{i}.attn_output.weight": rng.standard_normal((t["hidden"], t["heads"] * hd)),
            f"blk.{i}.ffn_gate.weight": rng.standard_normal((t["ffn"], t["hidden"])),
            f"blk.{i}.ffn_up.weight": rng.standard_normal((t["ffn"], t["hidden"])),
            f"blk.{i}.ffn_down.weight": rng.standard_normal((t["hidden"], t["ffn"])),
        }
    return {k: v.astype(np.float32) for k, v in w.items()}


def _write_gguf(path, weights, qtype, arch="llama", override=None):
    t = TINY
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(t["layers"])
    writer.add_context_length(512)
    writer.add_embedding_length(t["hidden"])
    writer.add_feed_forward_length(t["ffn"])
    writer.add_head_count(t["heads"])
    writer.add_head_count_kv(t["kv_heads"])
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(t["vocab"])
    for name, w in weights.items():
        if ".attn_q." in name:
            w = _permute(w, t["heads"])
        elif ".attn_k." in name:
            w = _permute(w, t["kv_heads"])
        kind = (override or {}).get(name, qtype if w.ndim == 2 else QT.F32)
        if kind == QT.F32:
            writer.add_tensor(name, w)
        elif kind == QT.F16:
            writer.add_tensor(name, w.astype(np.float16))
        elif kind == QT.IQ4_NL:  # gguf-py cannot quantize it: zero blocks of the right size
            block, size = gguf.GGML_QUANT_SIZES[kind]
            writer.add_tensor(name, np.zeros((w.shape[0], w.shape[1] // block * size), np.uint8),
                              raw_dtype=kind)
        else:
            writer.add_tensor(name, gguf.quants.quantize(w, kind), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# Worst relative RMS error each type may add (4-bit types are coarse by design).
TOLERANCE = {QT.F32: 0, QT.F16: 1e-3, QT.BF16: 5e-3, QT.Q8_0: 1e-2, QT.Q5_0: 5e-2,
             QT.Q5_1: 5e-2, QT.Q4_0: 1.2e-1, QT.Q4_1: 1.2e-1}


@pytest.mark.parametrize("qtype", sorted(TOLERANCE, key=int))
def test_gguf_types_round_trip(tmp_path, qtype):
    weights = _tiny_hf_weights()
    path = tmp_path / f"tiny-{qtype.name}.gguf"
    _write_gguf(path, weights, qtype)
    ckpt = checkpoints.load_gguf(str(path))
    assert ckpt.config.num_kv_heads == 2 and not ckpt.config.tie_word_embeddings
    got = ckpt.params
    for i in range(TINY["layers"]):
        for ours, theirs in [("q_proj", "attn_q"), ("k_proj", "attn_k"), ("down_proj", "ffn_down")]:
            want = weights[f"blk.{i}.{theirs}.weight"].T
            err = np.sqrt(np.mean((got[f"layers.{i}.{ours}"] - want) ** 2) / np.mean(want ** 2))
            assert err <= TOLERANCE[qtype], (ours, err)
    np.testing.assert_array_equal(got["final_norm"], weights["output_norm.weight"])


def test_unsupported_tensor_type_names_tensor_and_type(tmp_path):
    path = tmp_path / "tq.gguf"
    _write_gguf(path, _tiny_hf_weights(), QT.Q8_0,
                override={"blk.1.ffn_up.weight": QT.IQ4_NL})
    with pytest.raises(ValueError, match=r"blk\.1\.ffn_up\.weight.*IQ4_NL"):
        checkpoints.load_gguf(str(path))


def test_unsupported_architecture_and_missing_file(tmp_path):
    path = tmp_path / "gpt.gguf"
    _write_gguf(path, _tiny_hf_weights(), QT.F32, arch="gpt2")
    with pytest.raises(ValueError, match="architecture 'gpt2' is not supported"):
        checkpoints.load_gguf(str(path))
    with pytest.raises(FileNotFoundError, match="not found"):
        checkpoints.load_checkpoint(str(tmp_path / "nope.gguf"))
    other = tmp_path / "weights.txt"
    other.write_text("x")
    with pytest.raises(ValueError, match="expected a .gguf file"):
        checkpoints.load_checkpoint(str(other))


# -- safetensors directories, end to end against the HF model that wrote them ----------------------


def _tiny_hf_model(kind, dtype=torch.float32):
    torch.manual_seed(0)
    common = dict(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                  rms_norm_eps=1e-5, tie_word_embeddings=False)
    if kind == "llama3":
        config = transformers.LlamaConfig(**common, rope_theta=500000.0, rope_scaling={
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 256})
        model = transformers.LlamaForCausalLM(config)
    else:
        config = transformers.Qwen2Config(**common, rope_theta=10000.0)
        model = transformers.Qwen2ForCausalLM(config)
        with torch.no_grad():  # random init leaves biases at 0; make them matter
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj,
                             layer.self_attn.v_proj):
                    proj.bias.normal_(0, 0.5)
    return model.to(dtype).eval()


def _save_with_tokenizer(model, directory, tokenizer, **kwargs):
    model.save_pretrained(directory, **kwargs)
    tokenizer.save_pretrained(directory)


@pytest.mark.parametrize("kind,dtype,shard", [
    ("llama3", torch.float32, None),
    ("qwen2", torch.float32, "2MB"),
    ("llama3", torch.bfloat16, None),
])
def test_safetensors_dir_matches_hf_model(tmp_path, kind, dtype, shard, hf_reference_tokenizer):
    model = _tiny_hf_model(kind, dtype)
    kwargs = {"max_shard_size": shard} if shard else {}
    _save_with_tokenizer(model, tmp_path, hf_reference_tokenizer, **kwargs)
    if shard:
        assert (tmp_path / "model.safetensors.index.json").exists()
    ours = gdr_beam.load_model(str(tmp_path), dtype="float32")
    if kind == "llama3":
        assert ours.config.rope_scaling is not None and ours.config.rope_scaling.factor == 8.0
    else:
        assert ours.config.attention_bias
    ids = ours.encode("Hello there, this is a test of positions beyond the original window. " * 8)
    assert len(ids) > 100
    with torch.no_grad():
        ref = model.float()(torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(ours.logits(ids), ref, atol=1e-4, rtol=1e-4)


def test_localize_copies_remote_once(tmp_path, monkeypatch):
    """A remote (scheme://) checkpoint is copied to the local cache once, then reused."""
    from apache_beam.io.filesystem import FileSystem
    from apache_beam.io.localfilesystem import LocalFileSystem

    root = tmp_path / "bucket"
    (root / "model").mkdir(parents=True)
    (root / "model" / "config.json").write_text(json.dumps({"a": 1}))
    (root / "model" / "weights.bin").write_bytes(b"\x00" * 1000)
    opened = []

    class FakeRemote(LocalFileSystem):
        @classmethod
        def scheme(cls):
            return "fakeremote"

        def _local(self, path):
            return str(root / path[len("fakeremote://"):])

        def match(self, patterns, limits=None):
            results = super().match([self._local(p) for p in patterns], limits)
            for r in results:
                for m in r.metadata_list:
                    m.path = "fakeremote://" + os.path.relpath(m.path, root)
            return results

        def open(self, path, *args, **kwargs):
            opened.append(path)
            return super().open(self._local(path), *args, **kwargs)

    assert issubclass(FakeRemote, FileSystem)
    monkeypatch.setenv("GDR_BEAM_CACHE", str(tmp_path / "cache"))
    local = checkpoints.localize("fakeremote://model")
    assert sorted(os.listdir(local)) == ["config.json", "weights.bin"]
    assert checkpoints.localize("fakeremote://model") == local
    assert len(opened) == 2  # two files, copied once
    single = checkpoints.localize("fakeremote://model/config.json")
    assert json.load(open(single)) == {"a": 1}
