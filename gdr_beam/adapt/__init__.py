"""Model adaptation: LoRA (or full) supervised fine-tuning of the decoder on verified rewrites.

  lora.py        adapters on the decoder's Linear layers; unmerged forward; merge; files
  forward.py     full-sequence training forward, response-only causal-LM loss
  data.py        pairs -> ids + loss mask -> length-bucketed micro-batches
  train.py       optax AdamW, gradient accumulation, checkpoints, resume, progress
  checkpoint.py  atomic training checkpoints (safetensors + JSON)

Training: pipelines/adapt.py. Use: load_model(adapter=PATH) merges an adapter at load time.
"""

from gdr_beam.adapt.lora import (ALL_TARGETS, LoraConfig, apply_adapter_file, init_adapter,
                                 load_adapter, lora_forward, merge_adapter, parse_targets,
                                 save_adapter)
from gdr_beam.adapt.train import TrainConfig, Trainer, TrainResult

__all__ = ["ALL_TARGETS", "LoraConfig", "TrainConfig", "TrainResult", "Trainer",
           "apply_adapter_file", "init_adapter", "load_adapter", "lora_forward",
           "merge_adapter", "parse_targets", "save_adapter"]
