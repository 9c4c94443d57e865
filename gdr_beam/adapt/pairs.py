"""Adaptation pairs: (the task's prompt messages, a verified rewrite) for gdr_beam.adapt.

`build` makes them from synthetic pii examples with planted values (`synthetic.pii_examples`)
or from texts of your own (`read_texts`), refined by the strongest path available (a larger
checkpoint's rewrite if one is given, else the task's fallback) and kept only when the task's
verifier accepts the rewrite as a rewrite. `pipelines/make_adapt_data.py` is its command line.
"""

from __future__ import annotations

import collections
import json


def read_texts(path: str, n: int) -> list:
    """Up to n examples {id, text, planted: [], template: None} from a JSONL file of texts
    (blank lines skipped; a record with an empty text is kept, and `build` counts it)."""
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
            if not isinstance(text, str):
                raise ValueError(f"{path}:{line_no}: `text` is {type(text).__name__}, not a "
                                 "string")
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
