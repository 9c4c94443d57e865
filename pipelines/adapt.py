r"""Fine-tune the refiner on verified rewrites (LoRA by default), with resume after a kill.

    python -m pipelines.make_adapt_data --output=/tmp/adapt/train.jsonl --n=400 --seed=1
    python -m pipelines.adapt --data=/tmp/adapt/train.jsonl --output_dir=/tmp/adapt/run \
        --rank=16 --steps=80 --batch_size=4 --grad_accum=2 --lr=1e-3

Writes <output_dir>/adapter.safetensors + adapter_config.json (use it with
`load_model(adapter=<output_dir>)` or `pipelines/refine.py`'s model loading), checkpoints under
<output_dir>/checkpoints/, and <output_dir>/train_summary.json (losses, time, tokens/s, peak
memory). Killed and started again with the same flags (--resume is the default), it continues
from the last checkpoint and ends with the same adapter as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Training JSONL (pipelines/make_adapt_data.py).", required=True)
flags.DEFINE_string("output_dir", None, "Where the adapter and checkpoints go.", required=True)
flags.DEFINE_string("model", None, "Base checkpoint (default: the embedded SmolLM2-135M).")
flags.DEFINE_enum("mode", "lora", ["lora", "full"], "LoRA adapters or full fine-tuning.")
flags.DEFINE_integer("rank", 16, "LoRA rank.")
flags.DEFINE_float("alpha", None, "LoRA alpha (default 2 * rank).")
flags.DEFINE_string("targets", "q,k,v,o,gate,up,down", "LoRA target projections, or 'all'.")
flags.DEFINE_integer("steps", 100, "Optimizer steps.")
flags.DEFINE_integer("batch_size", 4, "Sequences per micro-batch.")
flags.DEFINE_integer("grad_accum", 1, "Micro-batches per optimizer step.")
flags.DEFINE_float("lr", 1e-3, "Peak learning rate (AdamW).")
flags.DEFINE_integer("warmup_steps", 5, "Linear warm-up steps, then cosine decay.")
flags.DEFINE_float("weight_decay", 0.0, "AdamW weight decay.")
flags.DEFINE_float("clip_norm", 1.0, "Global gradient norm clip.")
flags.DEFINE_integer("seed", 0, "Adapter init and data order.")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"],
                  "Dtype of the (frozen) base weights in the forward; adapters stay f32.")
flags.DEFINE_enum("adapter_dtype", "float32", ["float32", "float16"],
                  "Dtype of the written LoRA adapter (float16 halves its size; training is f32).")
flags.DEFINE_integer("max_len", 384, "Pairs longer than this (tokens) are left out.")
flags.DEFINE_integer("checkpoint_every", 10, "Steps between checkpoints.")
flags.DEFINE_bool("resume", True, "Continue from the last checkpoint in --output_dir.")
flags.DEFINE_integer("log_every", 1, "Steps between progress lines.")
flags.DEFINE_integer("limit", 0, "Use only the first N pairs (0: all).")


def main(argv):
    del argv
    from gdr_beam.adapt import LoraConfig, TrainConfig, Trainer, parse_targets  # pylint: disable=import-outside-toplevel
    from gdr_beam.adapt.data import encode_records, read_jsonl  # pylint: disable=import-outside-toplevel
    from gdr_beam.engine import load_model  # pylint: disable=import-outside-toplevel

    t0 = time.perf_counter()
    model = load_model(FLAGS.model, dtype="float32")
    records = read_jsonl(FLAGS.data)
    if FLAGS.limit:
        records = records[:FLAGS.limit]
    examples, dropped = encode_records(model, records, FLAGS.max_len)
    sources: dict = {}
    for r in records:
        sources[r.get("source", "?")] = sources.get(r.get("source", "?"), 0) + 1
    logging.info("%d pairs (%d longer than %d tokens left out), sources %s", len(examples),
                 dropped, FLAGS.max_len, sources)
    lora = LoraConfig(rank=FLAGS.rank, alpha=FLAGS.alpha or 2.0 * FLAGS.rank,
                      targets=parse_targets(FLAGS.targets))
    config = TrainConfig(mode=FLAGS.mode, lora=lora, steps=FLAGS.steps,
                         batch_size=FLAGS.batch_size, grad_accum=FLAGS.grad_accum, lr=FLAGS.lr,
                         warmup_steps=FLAGS.warmup_steps, weight_decay=FLAGS.weight_decay,
                         clip_norm=FLAGS.clip_norm, seed=FLAGS.seed, dtype=FLAGS.dtype,
                         checkpoint_every=FLAGS.checkpoint_every, log_every=FLAGS.log_every)
    trainer = Trainer(model.config, model.params, examples, model.tokenizer.pad_id, config,
                      FLAGS.output_dir)
    logging.info("training %s: %d trainable parameters, %d micro-batches per epoch, shapes %s",
                 FLAGS.mode, trainer.n_trainable, trainer.batches.per_epoch,
                 sorted(trainer.batches.shapes()))
    result = trainer.run(resume=FLAGS.resume)
    meta = {"base_model": model.name, "task": records[0].get("task") if records else None,
            "data": os.path.abspath(FLAGS.data), "pairs": len(examples), "sources": sources,
            "lr": FLAGS.lr, "batch_size": FLAGS.batch_size, "grad_accum": FLAGS.grad_accum,
            "dtype": FLAGS.dtype, "max_len": FLAGS.max_len}
    trainer.export(FLAGS.output_dir, meta, adapter_dtype=FLAGS.adapter_dtype)
    summary = {
        "pairs": len(examples), "left_out_too_long": dropped, "sources": sources,
        "trainable_parameters": trainer.n_trainable, "steps": result.step,
        "resumed_from": result.resumed_from,
        "epochs": round(result.step * FLAGS.grad_accum / trainer.batches.per_epoch, 2),
        "first_loss": result.losses[0] if result.losses else None,
        "last_loss": result.losses[-1] if result.losses else None,
        "mean_loss_last_10": (sum(result.losses[-10:]) / len(result.losses[-10:])
                              if result.losses else None),
        "losses": [round(x, 4) for x in result.losses],
        "train_seconds_this_process": round(result.seconds, 1),
        "tokens_this_process": result.tokens,
        "tokens_per_second": round(result.tokens / max(result.seconds, 1e-9), 1),
        "peak_rss_mb": round(result.peak_rss_mb, 1),
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "config": json.loads(json.dumps(config.__dict__, default=str)),
    }
    with open(os.path.join(FLAGS.output_dir, "train_summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps({k: v for k, v in summary.items() if k != "losses"}))


if __name__ == "__main__":
    app.run(main)
