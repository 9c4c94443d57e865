r"""Adaptation data: (prompt messages, verified rewrite) pairs for pipelines/adapt.py, as JSONL.

Synthetic PII examples with planted values (gdr_beam/adapt/synthetic.py) are refined by the
strongest path available and kept only when the rewrite passes the task's verifier:

  --model=PATH   a (larger) checkpoint rewrites first, with the task's own prompt; a rewrite
                 that passes `task.review` and removes every planted value is kept with
                 source "model:<checkpoint name>";
  otherwise      the task's fallback (every detected value replaced by a consistent Faker fake,
                 correct by construction), kept with source "fallback" when its output also
                 passes `task.review` and no planted value survives (a value the detector missed
                 would survive the fallback: such an example is dropped and counted).

--input=FILE   texts of your own (JSONL with `text` and optional `id`) instead of the synthetic
               generator, for any task (`--task=toxicity` on a public corpus, ...): each text's
               verified fallback (or --model) rewrite is kept when `task.review` accepts it as a
               rewrite; texts with nothing detected (unchanged: the job never asks the model
               about them) or rejected as a whole are skipped and counted. There are no planted
               values here: the verifier is the only check, so use data held apart from what
               you evaluate on.

The pairs are made by gdr_beam.adapt.pairs (also usable from Python). Each line: id, task,
messages (the exact prompt Refine sends), response, source, original,
planted, template, split. A summary (kept/dropped by reason, sources) goes to <output>.summary.json.

    python -m pipelines.make_adapt_data --output=/tmp/adapt/train.jsonl --n=400 --seed=1
    python -m pipelines.make_adapt_data --output=/tmp/adapt/eval.jsonl --n=100 --seed=1001 \
        --split=eval
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags, logging

from gdr_beam.adapt.pairs import build
from gdr_beam.adapt.synthetic import SPLITS

FLAGS = flags.FLAGS
flags.DEFINE_string("output", None, "JSONL file to write.", required=True)
flags.DEFINE_integer("n", 400, "Synthetic examples to generate (kept ones are fewer).")
flags.DEFINE_integer("seed", 1, "Generation seed (use different seeds for train and eval).")
flags.DEFINE_enum("split", "train", list(SPLITS),
                  "Template split: eval and eval_fresh use only held-out templates.")
flags.DEFINE_string("task", "pii", "Refinement task (only pii has a synthetic generator; "
                    "other tasks need --input).")
flags.DEFINE_string("input", None, "JSONL of texts (`text`, optional `id`) to make pairs "
                    "from instead of the synthetic pii generator.")
flags.DEFINE_string("model", None, "Optional checkpoint that rewrites before the fallback.")
flags.DEFINE_integer("max_new_tokens", 160, "Generation budget of --model.")
flags.DEFINE_integer("fallback_seed", 0, "Seed of the fallback's fakes.")


def main(argv):
    del argv
    t0 = time.perf_counter()
    records, summary = build(FLAGS.n, FLAGS.seed, FLAGS.split, FLAGS.task, FLAGS.model,
                             FLAGS.max_new_tokens, FLAGS.fallback_seed, FLAGS.input)
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    with open(FLAGS.output, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    with open(FLAGS.output + ".summary.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    logging.info("wrote %d pairs to %s: %s", len(records), FLAGS.output, summary["counts"])
    print(json.dumps(summary))


if __name__ == "__main__":
    app.run(main)
