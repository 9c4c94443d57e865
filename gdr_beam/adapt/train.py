"""Supervised fine-tuning of a loaded decoder on (prompt, verified rewrite) pairs.

    trainer = Trainer(model.config, model.params, examples, pad_id, TrainConfig(...), out_dir)
    result = trainer.run()          # resumes from out_dir/checkpoints when resume=True

One optimizer step = `grad_accum` micro-batches of `batch_size` sequences: their summed
response-token NLL gradients are added up and divided by the number of loss tokens, so a step's
gradient is the token-mean over everything it saw whatever the bucket sizes were. Optimizer:
optax AdamW after global-norm clipping, warm-up then cosine decay.

Modes: `lora` trains only the adapters (base params frozen, kept in `dtype`); `full` trains
every parameter (f32 master copy, cast to `dtype` for the forward).

Determinism: the adapter init is a function of the seed, the micro-batch stream of (seed,
epoch) (data.MicroBatches), and there is no dropout; on one machine two runs with the same
seed give identical parameters, and so does a run killed and resumed from a checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import resource
import sys
import time
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from gdr_beam.adapt import checkpoint
from gdr_beam.adapt.data import SEQ_BUCKETS, RESPONSE_BUCKETS, Encoded, MicroBatches
from gdr_beam.adapt.forward import response_nll
from gdr_beam.adapt.lora import LoraConfig, init_adapter, lora_forward, save_adapter
from gdr_beam.model.config import LlamaConfig

MODES = ("lora", "full")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    mode: str = "lora"
    lora: LoraConfig = LoraConfig()
    steps: int = 100
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 2e-4
    warmup_steps: int = 10
    end_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    seed: int = 0
    dtype: str = "float32"  # the base weights in the forward: float32 or bfloat16
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    log_every: int = 1
    share_prefix: bool = True  # run the prompt prefix all pairs share once per micro-batch
    seq_buckets: tuple = SEQ_BUCKETS
    response_buckets: tuple = RESPONSE_BUCKETS

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be float32 or bfloat16, got {self.dtype!r}")
        for name in ("steps", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")

    def fingerprint(self) -> str:
        """What must match for a checkpoint to be resumed (everything but logging and
        checkpointing; steps too, since the learning-rate schedule depends on them)."""
        keep = {k: v for k, v in dataclasses.asdict(self).items()
                if k not in ("checkpoint_every", "keep_checkpoints", "log_every")}
        return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()
                              ).hexdigest()[:16]


@dataclasses.dataclass
class TrainResult:
    trainable: dict
    step: int
    losses: list            # token-mean loss of every step of this run's history
    seconds: float          # training wall time of this process (excl. model load)
    tokens: int             # sequence tokens trained on (not padding), this process
    response_tokens: int
    peak_rss_mb: float
    resumed_from: Optional[int]


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    warmup = min(config.warmup_steps, max(config.steps - 1, 0))
    schedule = optax.warmup_cosine_decay_schedule(
        0.0 if warmup else config.lr, config.lr, warmup, max(config.steps, warmup + 1),
        end_value=config.lr * config.end_lr_ratio)
    return optax.chain(optax.clip_by_global_norm(config.clip_norm),
                       optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8,
                                   weight_decay=config.weight_decay))


def _sum_loss(trainable, frozen, batch, cfg, lora, mode, dtype):
    dtype = jnp.dtype(dtype)
    if mode == "lora":
        with lora_forward(trainable, cfg, lora):
            return response_nll(cfg, frozen, batch, param_dtype=dtype)
    params = jax.tree_util.tree_map(
        lambda x: x.astype(dtype) if x.ndim == 2 else x, trainable)
    return response_nll(cfg, params, batch, param_dtype=dtype)


@functools.partial(jax.jit, static_argnames=("cfg", "lora", "mode", "dtype"),
                   donate_argnames=("acc",))
def grad_step(trainable, frozen, batch, acc, *, cfg, lora, mode, dtype):
    """acc + d(sum NLL)/d(trainable) over one micro-batch; also (sum NLL, loss tokens)."""
    (total, count), grads = jax.value_and_grad(
        lambda t: _sum_loss(t, frozen, batch, cfg, lora, mode, dtype), has_aux=True)(trainable)
    acc = jax.tree_util.tree_map(jnp.add, acc, grads)
    return acc, total, count


@functools.partial(jax.jit, static_argnames=("cfg", "lora", "mode", "dtype"))
def eval_loss(trainable, frozen, batch, *, cfg, lora, mode, dtype):
    """(sum NLL, loss tokens) of a micro-batch, no gradient."""
    return _sum_loss(trainable, frozen, batch, cfg, lora, mode, dtype)


def cast_frozen(params, dtype: str):
    """Base params for the LoRA forward: matrices in `dtype`, norm scales f32."""
    dt = jnp.dtype(dtype)
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, dt if x.ndim == 2 else x.dtype),
                                  params)


class Trainer:
    def __init__(self, cfg: LlamaConfig, base_params, examples: Sequence[Encoded], pad_id: int,
                 config: TrainConfig, output_dir: str):
        self.cfg = cfg
        self.config = config
        self.output_dir = output_dir
        self.ckpt_dir = os.path.join(output_dir, "checkpoints")
        self.batches = MicroBatches(examples, config.batch_size, config.seed, pad_id,
                                    config.seq_buckets, config.response_buckets,
                                    config.share_prefix)
        self.optimizer = make_optimizer(config)
        if config.mode == "lora":
            self.frozen = cast_frozen(base_params, config.dtype)
            self.trainable = init_adapter(cfg, config.lora, jax.random.key(config.seed))
        else:
            self.frozen = None
            # A copy: the update donates its input buffers, and the caller's params must survive.
            self.trainable = jax.tree_util.tree_map(
                lambda x: jnp.array(x, jnp.float32, copy=True), base_params)
        self.opt_state = self.optimizer.init(self.trainable)
        self._update = jax.jit(self._update_fn, donate_argnums=(0, 1))
        self._static = dict(cfg=cfg, lora=config.lora, mode=config.mode, dtype=config.dtype)

    def _update_fn(self, trainable, opt_state, acc, count):
        grads = jax.tree_util.tree_map(lambda g: g / jnp.maximum(count, 1.0), acc)
        updates, opt_state = self.optimizer.update(grads, opt_state, trainable)
        return optax.apply_updates(trainable, updates), opt_state, optax.tree.norm(grads)

    @property
    def n_trainable(self) -> int:
        return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(self.trainable)))

    def resume(self) -> Optional[int]:
        """Loads the latest checkpoint in output_dir, if any; returns its step."""
        path = checkpoint.latest(self.ckpt_dir)
        if path is None:
            return None
        trainable, opt_state, state = checkpoint.restore(path, self.trainable, self.opt_state)
        if state.get("fingerprint") != self.config.fingerprint():
            raise ValueError(f"{path} was written by a run with other settings (fingerprint "
                             f"{state.get('fingerprint')} != {self.config.fingerprint()}); "
                             "use another --output_dir or the same settings")
        self.trainable = jax.tree_util.tree_map(jnp.asarray, trainable)
        self.opt_state = jax.tree_util.tree_map(jnp.asarray, opt_state)
        self._history = list(state.get("losses", []))
        logging.info("resumed from %s (step %d)", path, state["step"])
        return int(state["step"])

    def save_checkpoint(self, step: int, losses: list):
        state = {"seed": self.config.seed, "fingerprint": self.config.fingerprint(),
                 "losses": losses, "config": json.loads(json.dumps(
                     dataclasses.asdict(self.config), default=str))}
        path = checkpoint.save(self.ckpt_dir, step, self.trainable, self.opt_state, state,
                               keep=self.config.keep_checkpoints)
        logging.info("checkpoint %s", path)

    def run(self, resume: bool = True, on_step: Optional[Callable[[int, float], None]] = None,
            progress=sys.stderr) -> TrainResult:
        """Trains to config.steps. on_step(step, loss) is called after each step (after its
        checkpoint, if any); an exception from it stops training like a kill would."""
        c = self.config
        self._history: list = []
        start = (self.resume() if resume else None) or 0
        resumed_from = start or None
        losses = list(self._history[:start])
        tokens = resp_tokens = 0
        t_start = time.perf_counter()
        t_log, tok_log = t_start, 0
        for step in range(start, c.steps):
            acc = jax.tree_util.tree_map(jnp.zeros_like, self.trainable)
            total = count = 0.0
            for k in range(c.grad_accum):
                batch = self.batches[step * c.grad_accum + k]
                acc, s, n = grad_step(self.trainable, self.frozen, batch, acc, **self._static)
                total, count = total + s, count + n
                real = self.batches.tokens(step * c.grad_accum + k)
                tokens += real
                tok_log += real
                resp_tokens += int(batch["weight"].sum())
            self.trainable, self.opt_state, gnorm = self._update(
                self.trainable, self.opt_state, acc, jnp.float32(count))
            loss = float(total) / max(float(count), 1.0)
            losses.append(loss)
            done = step + 1
            if done % c.checkpoint_every == 0 or done == c.steps:
                self.save_checkpoint(done, losses)
            if c.log_every and (done % c.log_every == 0 or done == c.steps):
                now = time.perf_counter()
                rate = tok_log / max(now - t_log, 1e-9)
                eta = (now - t_start) / (done - start) * (c.steps - done)
                line = (f"step {done}/{c.steps} loss {loss:.4f} gnorm {float(gnorm):.3f} "
                        f"tok/s {rate:.0f} elapsed {now - t_start:.0f}s eta {eta:.0f}s")
                logging.info(line)
                if progress is not None and progress.isatty():  # a live line on a terminal
                    print(f"\r[adapt] {line}", end="\n" if done == c.steps else "",
                          file=progress, flush=True)
                t_log, tok_log = now, 0
            if on_step is not None:
                on_step(done, loss)
        return TrainResult(self.trainable, c.steps, losses, time.perf_counter() - t_start,
                           tokens, resp_tokens, peak_rss_mb(), resumed_from)

    def export(self, directory: Optional[str] = None, metadata: Optional[dict] = None,
               adapter_dtype: str = "float32") -> str:
        """Writes the trained adapter (LoRA, in adapter_dtype) or weights (full, f32) for
        load_model(adapter=...)."""
        directory = directory or self.output_dir
        meta = {"base_model": None, "steps": self.config.steps, "seed": self.config.seed}
        meta.update(metadata or {})
        if self.config.mode == "lora":
            return save_adapter(directory, self.trainable, self.config.lora,
                                dict(meta, kind="lora"), dtype=adapter_dtype)
        return save_full(directory, self.trainable, dict(meta, kind="full"))


def save_full(directory: str, params, metadata: dict) -> str:
    """Full fine-tuning output: every param leaf (f32) in adapter.safetensors, kind=full."""
    from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel
    from gdr_beam.adapt.lora import ADAPTER_FILE, CONFIG_FILE  # pylint: disable=import-outside-toplevel
    os.makedirs(directory, exist_ok=True)
    flat = {".".join(str(getattr(k, "key", k)) for k in path): np.asarray(x, np.float32)
            for path, x in jax.tree_util.tree_flatten_with_path(params)[0]}
    save_file(flat, os.path.join(directory, ADAPTER_FILE))
    with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=1, sort_keys=True)
    return directory


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
