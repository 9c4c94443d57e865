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

Each line: id, task, messages (the exact prompt Refine sends), response, source, original,
planted, template, split. A summary (kept/dropped by reason, sources) goes to <output>.summary.json.

    python -m pipelines.make_adapt_data --output=/tmp/adapt/train.jsonl --n=400 --seed=1
    python -m pipelines.make_adapt_data --output=/tmp/adapt/eval.jsonl --n=100 --seed=1001 \
        --split=eval
"""

from __future__ import annotations

import collections
import json
import os
import time

from absl import app, flags, logging

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


def read_texts(path: str, n: int) -> list:
    """Up to n examples {id, text, planted: [], template: None} from a JSONL file of texts."""
    examples = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = row["text"]
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{line_no}: not a JSON object with a `text` "
                                 f"field ({e})") from e
            if not isinstance(text, str) or not text.strip():
                continue
            examples.append({"id": str(row.get("id", f"line-{line_no}")), "text": text,
                             "planted": [], "template": None})
            if len(examples) >= n:
                break
    return examples


def build(n: int, seed: int, split: str, task_name: str = "pii", model_path=None,
          max_new_tokens: int = 160, fallback_seed: int = 0,
          input_path=None) -> tuple[list, dict]:
    """(records, summary)."""
    from gdr_beam.adapt.synthetic import pii_examples  # pylint: disable=import-outside-toplevel
    from gdr_beam.tasks import get_task  # pylint: disable=import-outside-toplevel
    if input_path:
        examples = read_texts(input_path, n)
        split = "input"
    elif task_name == "pii":
        examples = list(pii_examples(n, seed, split))
    else:
        raise ValueError(f"only the pii task has a synthetic generator: give --task="
                         f"{task_name} texts with --input")
    task = get_task(task_name)
    model_out: dict = {}
    source_model = None
    if model_path:
        from gdr_beam.engine import load_model  # pylint: disable=import-outside-toplevel
        model = load_model(model_path)
        source_model = f"model:{model.name}"
        prompts = [model.apply_chat_template(task.messages(e["text"])) for e in examples]
        outs = model.generate(prompts, max_new_tokens=max_new_tokens, temperature=0.0,
                              seed=seed)
        model_out = {e["id"]: task.parse(o) for e, o in zip(examples, outs)}
    records, counts = [], collections.Counter()
    for e in examples:
        text, planted = e["text"], e["planted"]
        candidates = []
        if e["id"] in model_out:
            candidates.append((source_model, model_out[e["id"]]))
        candidates.append(("fallback", task.fallback(e["id"], text, fallback_seed).text))
        kept = None
        for source, rewrite in candidates:
            review = task.review(text, rewrite)
            if review.accepted is None:
                counts[f"rejected/{source.split(':')[0]}/{review.reason}"] += 1
            elif review.accepted.verdict != "rewritten":
                counts[f"rejected/{source.split(':')[0]}/{review.accepted.verdict}"] += 1
            elif any(v in rewrite for v in planted):
                counts[f"rejected/{source.split(':')[0]}/planted_value_survived"] += 1
            else:
                kept = (source, review.accepted.text)
                break
        if kept is None:
            counts["dropped"] += 1
            continue
        counts[f"kept/{kept[0]}"] += 1
        records.append({"id": e["id"], "task": task_name, "messages": task.messages(text),
                        "response": kept[1], "source": kept[0], "original": text,
                        "planted": planted, "template": e["template"], "split": split})
    summary = {"generated": len(examples), "kept": len(records), "seed": seed, "split": split,
               "task": task_name, "input": input_path, "counts": dict(sorted(counts.items()))}
    return records, summary


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
