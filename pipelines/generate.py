"""Runs the engine over a JSONL of texts: each `text` becomes a chat prompt, the reply is saved.

    python -m pipelines.generate --input=gdr_beam/samples/pii_sample.jsonl --output=/tmp/out.jsonl

A plain, single-process job for trying a checkpoint; the Beam refinement job is pipelines.refine.
"""

import json
import time

from absl import app, flags, logging

flags.DEFINE_string("input", None, "JSONL file with a `text` field per line.", required=True)
flags.DEFINE_string("output", None, "Where to write JSONL results.", required=True)
flags.DEFINE_string("model", None, "Checkpoint path (default: embedded SmolLM2-135M-Instruct).")
flags.DEFINE_string("instruction",
                    "Rewrite the following text, replacing every personal name, email address, "
                    "phone number and street address with a realistic fake one. Output only the "
                    "rewritten text.", "Instruction placed before each text.")
flags.DEFINE_integer("max_new_tokens", 128, "Tokens generated per example.")
flags.DEFINE_float("temperature", 0.0, "0 = greedy.")
flags.DEFINE_integer("seed", 0, "Sampling seed.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import gdr_beam  # after flag parsing: keeps --help fast

    with open(FLAGS.input, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    model = gdr_beam.load_model(FLAGS.model)
    prompts = [model.apply_chat_template(
        [{"role": "user", "content": f"{FLAGS.instruction}\n\n{r['text']}"}]) for r in records]
    t0 = time.perf_counter()
    texts, ids = model.generate_with_ids(prompts, max_new_tokens=FLAGS.max_new_tokens,
                                         temperature=FLAGS.temperature, seed=FLAGS.seed)
    elapsed = time.perf_counter() - t0
    with open(FLAGS.output, "w", encoding="utf-8") as f:
        for r, text in zip(records, texts):
            f.write(json.dumps({"id": r.get("id"), "text": r["text"], "generated": text}) + "\n")
    tokens = sum(map(len, ids))
    for r, text in list(zip(records, texts))[:3]:
        print(f"--- {r.get('id')}\n  in:  {r['text']}\n  out: {text.strip()}")
    print(f"{len(records)} examples, {tokens} tokens generated in {elapsed:.1f}s "
          f"({tokens / elapsed:.1f} tok/s, including compilation) on {model.device}; "
          f"wrote {FLAGS.output}")


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    app.run(main)
