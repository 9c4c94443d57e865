"""Base vs adapted refiner on a pii evaluation set disjoint from the adapter's training data.

The eval set comes from gdr_beam/adapt/synthetic.py with --split=eval (default) or eval_fresh:
only held-out templates (never seen in training) and its own seed. Both models get the task's
own prompt and greedy decoding (--temperature to sample). The first attempt measures the
model alone; then, as Refine does by default (--retries=1), each failed example gets one retry
with the verifier's reason in the prompt, a new per-example seed and temperature 0.7, and only
then the fallback. Per model:

  pass_without_fallback  share of examples whose first model rewrite passes task.review
                         (verdict rewritten): the model, not the fallback, did the refinement
  pass_with_retries      the same within 1 + --retries attempts: the share of a Refine job's
                         outputs that are the model's own rewrites
  final, below           what the job emits: the first accepted attempt, else the fallback
  failure_reasons        why the others failed (leaked_value, content_lost, ...)
  leak_rate_final        planted values found verbatim in the final outputs (accepted rewrite,
                         else the fallback) / all planted values: what a pipeline would emit
  leak_rate_accepted     the same over accepted model rewrites only
  words_kept             share of the original's other words (outside the planted values) in
                         the final output; also over accepted rewrites only
  distinct_1/2           distinct n-grams / n-grams of the outputs, next to the originals'
                         (compare sets of the same size: the ratio falls as a set grows);
                         distinct_fakes_accepted: distinct new words in accepted rewrites
  differs_from_fallback  accepted rewrites that are not the fallback's text (own rewrites)
  generation             eval generation tokens/s, and the median time of one full forward of
                         a fixed 256-token input (the merged adapter has the base's shapes)

Training figures (time, tokens/s, peak RSS, steps, pairs and their sources) are read from the
adapter's train_summary.json written by pipelines/adapt.py. Prints JSON; --out also writes it.

    python benchmarks/adapt_quality.py --adapter=/tmp/adapt/run --n_eval=100 \
        --out=benchmarks/results/adapt_quality_cpu.json
"""

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from results_io import save_json  # noqa: E402  (a sibling module)

_PARSER = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
_PARSER.add_argument("--adapter", required=True, help="Adapter directory (pipelines/adapt.py).")
_PARSER.add_argument("--train_data", default=None,
                     help="Training JSONL, to check the eval set is disjoint from it.")
_PARSER.add_argument("--n_eval", type=int, default=100)
_PARSER.add_argument("--eval_seed", type=int, default=1001)
_PARSER.add_argument("--split", default="eval", choices=("eval", "eval_fresh"),
                     help="Held-out frames: eval (every fifth of TEMPLATES) or eval_fresh "
                          "(FRESH_EVAL_TEMPLATES, written before the third adapter).")
_PARSER.add_argument("--max_new_tokens", type=int, default=160)
_PARSER.add_argument("--fallback_seed", type=int, default=0)
_PARSER.add_argument("--temperature", type=float, default=0.0,
                     help="First attempt: 0 = greedy; pipelines.refine samples at 0.7.")
_PARSER.add_argument("--retries", type=int, default=1,
                     help="Retries of a failed rewrite before the fallback (Refine's default).")
_PARSER.add_argument("--retry_temperature", type=float, default=0.7,
                     help="Sampling temperature of a retry (Refine's default).")
_PARSER.add_argument("--models", default="base,adapted", help="Which of base,adapted to run.")
_PARSER.add_argument("--out", default=None)


def _words(text):
    return re.findall(r"\w+", text.lower())


def _distinct(texts, n):
    grams, total = set(), 0
    for t in texts:
        w = _words(t)
        g = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
        grams.update(g)
        total += len(g)
    return round(len(grams) / total, 4) if total else 0.0


def _words_kept(original, planted, output):
    rest = original
    for v in planted:
        rest = rest.replace(v, " ")
    keep = _words(rest)
    if not keep:
        return 1.0
    present = set(_words(output))
    return sum(w in present for w in keep) / len(keep)


def _mean(xs):
    return round(sum(xs) / len(xs), 4) if xs else None


def _attempt(model, task, examples, feedback, attempt, args):
    """One generation attempt over `examples` -> (reviews, accepted flags, rewrites, stats)."""
    from gdr_beam.beam.refine import retry_seed  # pylint: disable=import-outside-toplevel
    prompts = [model.apply_chat_template(task.messages(e["text"], feedback=f))
               for e, f in zip(examples, feedback)]
    t0 = time.perf_counter()
    outs, ids = model.generate_with_ids(
        prompts, max_new_tokens=args.max_new_tokens,
        temperature=args.temperature if attempt == 0 else args.retry_temperature,
        seed=0 if attempt == 0 else [retry_seed(0, e["id"], attempt) for e in examples])
    stats = (time.perf_counter() - t0, sum(len(i) for i in ids))
    reviews, accepted, rewrites = [], [], []
    for e, out, out_ids in zip(examples, outs, ids):
        # As Refine's Verify: a reply cut at max_new_tokens is not accepted.
        review = task.review_reply(e["text"], out, len(out_ids) >= args.max_new_tokens)
        reviews.append(review)
        accepted.append(review.accepted is not None and review.accepted.verdict == "rewritten")
        rewrites.append(task.parse(out))
    return reviews, accepted, rewrites, stats


def evaluate(model, task, examples, args):
    reviews, first_ok, rewrites, (gen_s, n_tokens) = _attempt(
        model, task, examples, [None] * len(examples), 0, args)
    probe = model.encode(" ".join(["the quick brown fox jumps over the lazy dog"] * 40))[:256]
    model.logits(probe)  # compile
    fwd = []
    for _ in range(3):
        t = time.perf_counter()
        model.logits(probe)
        fwd.append(time.perf_counter() - t)
    reasons = {}
    for review, ok in zip(reviews, first_ok):
        if not ok:
            reason = review.reason or (review.accepted.verdict if review.accepted else "?")
            reasons[reason] = reasons.get(reason, 0) + 1
    # Retries, as Refine: only the failed examples, with the verifier's reason as feedback.
    final_review, final_ok = list(reviews), list(first_ok)
    for attempt in range(1, args.retries + 1):
        todo = [i for i, ok in enumerate(final_ok) if not ok]
        if not todo:
            break
        r, ok, _, _ = _attempt(model, task, [examples[i] for i in todo],
                               [final_review[i].detail for i in todo], attempt, args)
        for i, review, accepted in zip(todo, r, ok):
            final_review[i], final_ok[i] = review, accepted
    rows = []
    for e, rewrite, review, ok in zip(examples, rewrites, final_review, final_ok):
        fallback = task.fallback(e["id"], e["text"], args.fallback_seed).text
        final = review.accepted.text if ok else fallback
        rows.append({"id": e["id"], "accepted": ok, "rewrite": rewrite, "final": final,
                     "fallback": fallback, "original": e["text"], "planted": e["planted"]})
    planted = sum(len(r["planted"]) for r in rows)
    acc = [r for r in rows if r["accepted"]]
    result = {
        "examples": len(rows),
        "pass_without_fallback": round(sum(first_ok) / len(rows), 4),
        "failure_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "retries": args.retries,
        "pass_with_retries": round(len(acc) / len(rows), 4),
        "leak_rate_final": round(sum(v in r["final"] for r in rows for v in r["planted"])
                                 / planted, 4),
        "leak_rate_accepted": (round(sum(v in r["final"] for r in acc for v in r["planted"])
                                     / max(sum(len(r["planted"]) for r in acc), 1), 4)
                               if acc else None),
        "clean_examples_final": round(sum(not any(v in r["final"] for v in r["planted"])
                                          for r in rows) / len(rows), 4),
        "words_kept_final": _mean([_words_kept(r["original"], r["planted"], r["final"])
                                   for r in rows]),
        "words_kept_accepted": _mean([_words_kept(r["original"], r["planted"], r["final"])
                                      for r in acc]),
        "distinct_1_final": _distinct([r["final"] for r in rows], 1),
        "distinct_2_final": _distinct([r["final"] for r in rows], 2),
        "distinct_1_accepted": _distinct([r["final"] for r in acc], 1),
        "distinct_2_accepted": _distinct([r["final"] for r in acc], 2),
        # Planted values that survive in the final text: missed by the detector, so neither
        # the review nor the fallback can catch them.
        "leaked_values_final": sorted({v for r in rows for v in r["planted"] if v in r["final"]}),
        "distinct_fakes_accepted": (len({w for r in acc for w in _words(r["final"])}
                                        - {w for r in acc for w in _words(r["original"])})
                                    if acc else None),
        "differs_from_fallback": (round(sum(r["final"] != r["fallback"] for r in acc)
                                        / len(acc), 4) if acc else None),
        "generation": {"seconds": round(gen_s, 1), "new_tokens": n_tokens,
                       "tokens_per_second": round(n_tokens / gen_s, 1),
                       "forward_256_tokens_median_s": round(statistics.median(fwd), 4)},
        "samples": [{"original": r["original"], "rewrite": r["rewrite"], "accepted": ok}
                    for r, ok in zip(rows[:5], first_ok)],
    }
    return result


def main():
    args = _PARSER.parse_args()
    import jax  # pylint: disable=import-outside-toplevel
    from gdr_beam.adapt.synthetic import pii_examples, template_ids  # pylint: disable=import-outside-toplevel
    from gdr_beam.engine import load_model  # pylint: disable=import-outside-toplevel
    from gdr_beam.tasks import get_task  # pylint: disable=import-outside-toplevel

    task = get_task("pii")
    examples = list(pii_examples(args.n_eval, args.eval_seed, args.split))
    disjoint = {"split": args.split, "eval_templates": template_ids(args.split),
                "eval_seed": args.eval_seed}
    if args.train_data:
        with open(args.train_data, encoding="utf-8") as f:
            train = [json.loads(line) for line in f if line.strip()]
        train_texts = {r["original"] for r in train}
        disjoint.update({
            "train_pairs": len(train),
            "train_templates": sorted({r["template"] for r in train}),
            "shared_templates": sorted({r["template"] for r in train}
                                       & set(template_ids(args.split))),
            "shared_texts": sum(e["text"] in train_texts for e in examples)})
        assert not disjoint["shared_templates"] and not disjoint["shared_texts"], disjoint
    summary_path = os.path.join(args.adapter, "train_summary.json")
    training = None
    if os.path.exists(summary_path):
        with open(summary_path, encoding="utf-8") as f:
            training = {k: v for k, v in json.load(f).items() if k != "losses"}
    with open(os.path.join(args.adapter, "adapter_config.json"), encoding="utf-8") as f:
        adapter_config = json.load(f)

    out = {"task": "pii", "device": f"{jax.devices()[0].platform} ({platform.processor() or platform.machine()}, "
                                    f"{os.cpu_count()} cores)",
           "eval_set": disjoint | {"examples": len(examples)}, "adapter": args.adapter,
           "adapter_config": adapter_config,
           "adapter_bytes": os.path.getsize(os.path.join(args.adapter, "adapter.safetensors")),
           "training": training, "temperature": args.temperature, "retries": args.retries,
           "originals": {"distinct_1": _distinct([e["text"] for e in examples], 1),
                         "distinct_2": _distinct([e["text"] for e in examples], 2)}}
    wanted = args.models.split(",")
    for name, adapter in (("base", None), ("adapted", args.adapter)):
        if name not in wanted:
            continue
        t0 = time.perf_counter()
        model = load_model(adapter=adapter)
        load_s = time.perf_counter() - t0
        out[name] = evaluate(model, task, examples, args)
        out[name]["load_seconds"] = round(load_s, 1)
        del model
        print(json.dumps({name: {k: v for k, v in out[name].items() if k != "samples"}}),
              file=sys.stderr, flush=True)
    if "base" in out and "adapted" in out:
        b, a = out["base"]["generation"], out["adapted"]["generation"]
        out["speed_ratio_adapted_vs_base"] = {
            "tokens_per_second": round(a["tokens_per_second"] / b["tokens_per_second"], 3),
            "forward_256_tokens": round(a["forward_256_tokens_median_s"]
                                        / b["forward_256_tokens_median_s"], 3)}
    print(json.dumps(out, indent=1))
    save_json(out, args.out, indent=1)


if __name__ == "__main__":
    main()
