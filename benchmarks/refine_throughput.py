"""Documents/s on the real refinement workload: gdr-beam's engine vs llama.cpp and HF transformers.

The workload is what the job asks of the model, not a synthetic decode loop:
  * prompts: the task's own chat prompts (`get_task(task).messages(text)`: its fixed system
    message and few-shot pair, then the document), formatted by the checkpoint's template;
  * documents: seeded synthetic documents of mixed genres (emails, support tickets, news
    items, meeting notes, forum posts, clinic notes, cover letters) and lengths drawn
    log-uniformly from --min_words..--max_words, with planted personal data (Faker);
  * each document's budget is the job's (`RewriteBudget`: 1.3x its tokens + 32, at most
    --max_new_tokens), and every engine stops a row at end of turn or at its budget;
  * greedy decoding;
  * --adapter (e.g. shipped:pii, what the job merges by default): gdr-beam merges it into its
    weights, llama.cpp runs it as a LoRA GGUF (`gdr_beam.adapt.gguf_export`; equivalence
    measured by benchmarks/adapter_vs_llamacpp.py), HF is skipped (no loader for it there).
    Without an adapter the base 135M model seldom ends its turn and most rows run to their
    budget, unlike the job's.

Engines, each in its own subprocess, one after the other, on the same prompt token ids:
  gdr-beam   `LanguageModel.generate_ids` over all documents in one call (continuous
             batching: a pool of decode slots within max_batch_tokens=--max_batch_tokens,
             refilled as rows finish), prefix cache on;
             timed twice: `cold` includes XLA compilation, `warm` is the same call again
             (a job compiles once and runs for hours; the warm figure is its steady state).
             With --no_prefix_engine also a warm run with the prefix cache off.
  llama.cpp  llama-cpp-python, batch 1 (it decodes one sequence at a time), documents in order,
             reusing the common prefix of consecutive prompts by itself.
  HF         transformers `generate`, batch --hf_batch, prompts sorted by length, left-padded,
             a per-row stopping criterion for each row's budget.

Reported per engine: documents/s, useful output tokens/s (tokens each row returned, its
end-of-turn excluded), and the share of computed decode slots that were useful (rows x steps
actually computed; llama.cpp at batch 1 computes only useful ones). The machine is shared with
other work: compare the ratios, measured in the same run.

    python benchmarks/refine_throughput.py --n_docs=24 --max_words=400 \
        --out=benchmarks/results/refine_throughput_cpu.json
"""

import argparse
import json
import math
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_io import save_json  # noqa: E402  (a sibling module)

_PARSER = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
_PARSER.add_argument("--task", default="pii")
_PARSER.add_argument("--n_docs", type=int, default=24)
_PARSER.add_argument("--min_words", type=int, default=20)
_PARSER.add_argument("--max_words", type=int, default=1500)
_PARSER.add_argument("--max_new_tokens", type=int, default=2048,
                     help="Upper bound of every document's budget (the job's flag).")
_PARSER.add_argument("--max_batch_tokens", type=int, default=8192)
_PARSER.add_argument("--hf_batch", type=int, default=16)
_PARSER.add_argument("--engines", default="jax,llamacpp,hf")
_PARSER.add_argument("--no_prefix_engine", action="store_true",
                     help="Also time gdr-beam with its prefix cache off.")
_PARSER.add_argument("--seed", type=int, default=0)
_PARSER.add_argument("--model", default=None, help="Checkpoint (default: embedded SmolLM2).")
_PARSER.add_argument("--adapter", default=None,
                     help="LoRA adapter for gdr-beam and llama.cpp (shipped:TASK or a "
                          "directory); HF is left out when one is given.")
_PARSER.add_argument("--out", default=None, help="Also write the JSON here.")
_PARSER.add_argument("--worker", default=None, help=argparse.SUPPRESS)
_PARSER.add_argument("--work", default=None, help=argparse.SUPPRESS)


# --- documents -----------------------------------------------------------------------------------

def _genres(fake, rng):
    """Genre -> (opening, sentence makers, closing); each maker returns one sentence."""
    def person():
        return fake.name()

    def when():
        return rng.choice(["on Monday", "next Tuesday", "at 9:30", "by Friday noon",
                           f"on {fake.date_this_year().strftime('%B %d')}", "tomorrow"])

    topics = ["the quarterly budget", "the server migration", "the delivery schedule",
              "the new onboarding process", "the annual audit", "the marketing plan",
              "the safety inspection", "the customer survey", "the billing system"]

    def topic():
        return rng.choice(topics)

    common = [
        lambda: f"Please review {topic()} before we meet {when()}.",
        lambda: f"{person()} said the numbers for {topic()} look better than last month.",
        lambda: f"You can reach me at {fake.email()} or on {fake.phone_number()}.",
        lambda: f"The draft for {topic()} is attached; comments are welcome.",
        lambda: f"We still need a decision on {topic()} {when()}.",
        lambda: (f"Send the signed forms to {fake.street_address()}, {fake.city()} "
                 f"{fake.postcode()}."),
        lambda: f"{fake.sentence(nb_words=rng.randint(8, 18))}",
        lambda: f"{fake.sentence(nb_words=rng.randint(6, 14))}",
        lambda: f"{person()} will take over while {person()} is away {when()}.",
    ]
    return {
        "email": (lambda: f"Hi {fake.first_name()},", common,
                  lambda: f"Best regards,\n{person()}"),
        "support_ticket": (lambda: f"Ticket #{rng.randint(10000, 99999)}: customer "
                           f"{person()} reports a problem with {topic()}.",
                           common + [lambda: f"Account email: {fake.email()}.",
                                     lambda: "The error appears after the second login."],
                           lambda: "Status: open, priority normal."),
        "news": (lambda: f"{fake.city().upper()} - Officials announced changes to "
                 f"{topic()} this week.",
                 common + [lambda: f"\"We expect results soon,\" said {person()}, a spokesperson.",
                           lambda: f"The council meets again {when()}."],
                 lambda: "The story is developing."),
        "meeting_notes": (lambda: f"Meeting notes, {fake.date_this_year()}. Present: "
                          f"{person()}, {person()}, {person()}.",
                          common + [lambda: f"Action: {person()} to follow up on {topic()}."],
                          lambda: "Next meeting in two weeks."),
        "forum_post": (lambda: f"Has anyone else had trouble with {topic()}?",
                       common + [lambda: "Any tips would be appreciated, thanks in advance.",
                                 lambda: f"My neighbour {person()} had the same issue."],
                       lambda: "Thanks, everyone."),
        "clinic_note": (lambda: f"Patient {person()}, born {fake.date_of_birth()}, seen "
                        f"{when()}.",
                        common + [lambda: "Blood pressure normal, follow-up in a month.",
                                  lambda: f"Referred to Dr. {fake.last_name()} for review."],
                        lambda: f"Signed, Dr. {fake.last_name()}"),
        "cover_letter": (lambda: f"Dear {person()},",
                         common + [lambda: f"I worked at {fake.company()} for "
                                   f"{rng.randint(2, 9)} years.",
                                   lambda: "I would welcome the chance to discuss the role."],
                         lambda: f"Sincerely,\n{person()}"),
    }


def make_documents(n: int, min_words: int, max_words: int, seed: int) -> list[dict]:
    """n seeded documents: a genre each (in turn) and a length drawn log-uniformly."""
    from faker import Faker
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    genres = _genres(fake, rng)
    names = sorted(genres)
    docs = []
    for i in range(n):
        genre = names[i % len(names)]
        target = int(math.exp(rng.uniform(math.log(min_words), math.log(max_words))))
        opening, makers, closing = genres[genre]
        parts = [opening()]
        words = len(parts[0].split())
        while words < target:
            sentence = rng.choice(makers)()
            parts.append(sentence)
            words += len(sentence.split())
            if rng.random() < 0.15:
                parts.append("\n\n")
        parts.append(closing())
        text = " ".join(parts).replace(" \n\n ", "\n\n")
        docs.append({"id": f"doc-{i}", "genre": genre, "text": text,
                     "words": len(text.split())})
    return docs


# --- engines (each in its own subprocess) -------------------------------------------------------

def _run_jax(work, model_path):
    import jax
    import gdr_beam
    model = gdr_beam.load_model(model_path, max_batch_tokens=work["max_batch_tokens"],
                                adapter=work["adapter"])
    prompts, budgets = work["prompts"], work["budgets"]
    runs = {}
    modes = [("cold", True), ("warm", True)] + ([("warm_no_prefix", False)]
                                               if work["no_prefix_engine"] else [])
    for name, prefix in modes:
        model.sampler.prefix_cache = prefix
        if not prefix:
            model.sampler.prefixes = type(model.sampler.prefixes)()
        model.sampler.stats.reset()
        t0 = time.perf_counter()
        out = model.generate_ids(prompts, max_new_tokens=budgets)
        seconds = time.perf_counter() - t0
        stats = model.sampler.stats
        runs[name] = {"seconds": seconds, "outputs": out, "decode_slots": stats.decode_slots,
                      "useful_slots": stats.useful_slots,
                      "prefill_tokens": stats.prefill_tokens + stats.prefix_tokens,
                      "prefix_reused_tokens": stats.prefix_reused_tokens,
                      "admissions": stats.admissions, "repacks": stats.repacks}
    return {"engine": "gdr-beam JAX " + jax.__version__, "device": str(jax.devices()[0]),
            "dtype": model.dtype.name, "runs": runs}


def _run_llamacpp(work, model_path):
    import llama_cpp
    prompts, budgets, stop = work["prompts"], work["budgets"], set(work["stop_ids"])
    n_ctx = max(len(p) + b for p, b in zip(prompts, budgets)) + 8
    lora = None
    if work["adapter"]:
        from gdr_beam.adapt.gguf_export import export
        from gdr_beam.adapters import adapter_path
        lora = export(adapter_path(work["adapter"]),
                      os.path.join(os.path.dirname(work["work_path"]), "lora.gguf"))
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=n_ctx, n_batch=512, lora_path=lora,
                          n_threads=os.cpu_count(), verbose=False)
    for _ in llm.generate(prompts[0][:8], top_k=1, temp=0.0):  # warm-up: allocations
        break
    llm.reset()
    outputs = []
    t0 = time.perf_counter()
    for p, budget in zip(prompts, budgets):
        ids = []
        # generate() keeps the KV of the longest prefix this prompt shares with the last one.
        for token in llm.generate(p, top_k=1, temp=0.0, reset=True):
            if token in stop:
                break
            ids.append(int(token))
            if len(ids) >= budget:
                break
        outputs.append(ids)
    seconds = time.perf_counter() - t0
    useful = sum(min(len(o) + 1, b) for o, b in zip(outputs, budgets))
    return {"engine": "llama.cpp (llama-cpp-python " + llama_cpp.__version__ + ", batch 1)",
            "weights": os.path.basename(model_path),
            "runs": {"warm": {"seconds": seconds, "outputs": outputs, "decode_slots": useful,
                              "useful_slots": useful}}}


def _run_hf(work, model_path):
    import torch
    import transformers
    torch.set_num_threads(os.cpu_count())
    directory, name = os.path.split(model_path)
    kwargs = {"gguf_file": name} if name.endswith(".gguf") else {}
    model = transformers.AutoModelForCausalLM.from_pretrained(
        directory if kwargs else model_path, dtype=torch.float32, **kwargs).eval()
    prompts, budgets, stop = work["prompts"], work["budgets"], sorted(work["stop_ids"])
    batch_size = work["hf_batch"]

    class RowBudgets(transformers.StoppingCriteria):
        """Per-row budgets: a row is done once it has its budget of new tokens."""

        def __init__(self, width, limits):
            self.width, self.limits = width, torch.tensor(limits)

        def __call__(self, input_ids, scores, **kwargs):
            return (input_ids.shape[1] - self.width) >= self.limits

    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs = [None] * len(prompts)
    slots = 0
    with torch.no_grad():
        model.generate(torch.tensor([prompts[0][:8]]), max_new_tokens=2, do_sample=False,
                       pad_token_id=0)  # warm-up
        t0 = time.perf_counter()
        for s in range(0, len(order), batch_size):
            rows = order[s:s + batch_size]
            width = max(len(prompts[i]) for i in rows)
            ids = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(rows):  # left padding, as HF recommends for decoder-only
                ids[r, width - len(prompts[i]):] = torch.tensor(prompts[i])
                mask[r, width - len(prompts[i]):] = 1
            limits = [budgets[i] for i in rows]
            out = model.generate(
                ids, attention_mask=mask, do_sample=False, max_new_tokens=max(limits),
                eos_token_id=stop, pad_token_id=0,
                stopping_criteria=transformers.StoppingCriteriaList([RowBudgets(width, limits)]))
            new = out[:, width:].tolist()
            slots += len(rows) * len(new[0])
            for r, i in enumerate(rows):
                row = new[r][:budgets[i]]
                outputs[i] = row[:next((j for j, t in enumerate(row) if t in stop), len(row))]
        seconds = time.perf_counter() - t0
    useful = sum(min(len(o) + 1, b) for o, b in zip(outputs, budgets))
    return {"engine": f"HF transformers {transformers.__version__}, torch {torch.__version__}, "
                      f"batch {batch_size}, length-sorted",
            "threads": torch.get_num_threads(),
            "runs": {"warm": {"seconds": seconds, "outputs": outputs, "decode_slots": slots,
                              "useful_slots": useful}}}


_ENGINES = {"jax": _run_jax, "llamacpp": _run_llamacpp, "hf": _run_hf}


def _worker(args):
    with open(args.work, encoding="utf-8") as f:
        work = json.load(f)
    t0 = time.perf_counter()
    result = _ENGINES[args.worker](work, work["model_path"])
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result))


# --- driver --------------------------------------------------------------------------------------

def _summary(run, docs, budgets):
    useful_tokens = sum(len(o) for o in run["outputs"])
    out = {"seconds": round(run["seconds"], 1),
           "documents_per_s": round(len(docs) / run["seconds"], 3),
           "useful_tokens_per_s": round(useful_tokens / run["seconds"], 1),
           "useful_output_tokens": useful_tokens,
           "rows_at_budget": sum(len(o) >= b for o, b in zip(run["outputs"], budgets)),
           "useful_slot_share": round(run["useful_slots"] / max(run["decode_slots"], 1), 3)}
    for key in ("prefill_tokens", "prefix_reused_tokens", "admissions", "repacks"):
        if key in run:
            out[key] = run[key]
    return out


def main():
    args = _PARSER.parse_args()
    if args.worker:
        _worker(args)
        return
    from gdr_beam.beam.refine import RewriteBudget
    from gdr_beam.engine import load_tokenizer
    from gdr_beam.model import checkpoints
    from gdr_beam.tasks import get_task
    model_path = args.model or checkpoints.default_model_path()
    tok = load_tokenizer(model_path)
    task = get_task(args.task)
    docs = make_documents(args.n_docs, args.min_words, args.max_words, args.seed)
    budget_rule = RewriteBudget()
    prompts, budgets = [], []
    for d in docs:
        ids = tok.encode(tok.apply_chat_template(task.messages(d["text"])))
        if tok.add_bos and tok.bos_id is not None:
            ids = [tok.bos_id] + ids
        prompts.append(ids)
        budgets.append(budget_rule.tokens(len(tok.encode(d["text"])), args.max_new_tokens))
    engines = [e for e in args.engines.split(",") if e and not (args.adapter and e == "hf")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "work.json")
        work = {"prompts": prompts, "budgets": budgets, "stop_ids": sorted(tok.stop_ids),
                "model_path": model_path, "max_batch_tokens": args.max_batch_tokens,
                "hf_batch": args.hf_batch, "no_prefix_engine": args.no_prefix_engine,
                "adapter": args.adapter, "work_path": path}
        with open(path, "w", encoding="utf-8") as f:
            json.dump(work, f)
        for engine in engines:
            print(f"running {engine} ...", file=sys.stderr, flush=True)
            proc = subprocess.run([sys.executable, os.path.abspath(__file__),
                                   f"--worker={engine}", f"--work={path}"],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                results[engine] = {"error": proc.stderr[-2000:]}
                continue
            results[engine] = json.loads(proc.stdout.strip().splitlines()[-1])
    summary, outputs = {}, {}
    for engine, res in results.items():
        if "runs" not in res:
            summary[engine] = res
            continue
        summary[engine] = {k: v for k, v in res.items() if k != "runs"}
        for name, run in res["runs"].items():
            summary[engine][name] = _summary(run, docs, budgets)
            outputs[f"{engine}/{name}"] = run["outputs"]
    ratios = {}
    ours = summary.get("jax", {}).get("warm")
    for peer in ("llamacpp", "hf"):
        theirs = summary.get(peer, {}).get("warm")
        if ours and theirs:
            ratios[f"jax_over_{peer}_documents_per_s"] = round(
                ours["documents_per_s"] / theirs["documents_per_s"], 2)
            ratios[f"jax_over_{peer}_useful_tokens_per_s"] = round(
                ours["useful_tokens_per_s"] / theirs["useful_tokens_per_s"], 2)
    if "jax/warm" in outputs and "llamacpp/warm" in outputs:  # Q4_1 vs f32: some diverge
        same = sum(a == b for a, b in zip(outputs["jax/warm"], outputs["llamacpp/warm"]))
        ratios["jax_llamacpp_identical_outputs"] = f"{same}/{len(docs)}"
    if "jax/warm" in outputs and "hf/warm" in outputs:  # both f32: greedy should mostly agree
        same = sum(a == b for a, b in zip(outputs["jax/warm"], outputs["hf/warm"]))
        ratios["jax_hf_identical_outputs"] = f"{same}/{len(docs)}"
    if "jax/warm" in outputs and "jax/warm_no_prefix" in outputs:
        same = sum(a == b for a, b in zip(outputs["jax/warm"], outputs["jax/warm_no_prefix"]))
        ratios["jax_prefix_vs_no_prefix_identical_outputs"] = f"{same}/{len(docs)}"
    result = {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor()
                    or platform.machine(), "python": platform.python_version(),
                    "note": "shared with other agents' work; compare ratios from this run"},
        "workload": {"task": args.task, "adapter": args.adapter, "documents": len(docs),
                     "seed": args.seed,
                     "words": [args.min_words, args.max_words],
                     "doc_words_median": sorted(d["words"] for d in docs)[len(docs) // 2],
                     "doc_words_total": sum(d["words"] for d in docs),
                     "genres": sorted({d["genre"] for d in docs}),
                     "prompt_tokens_total": sum(map(len, prompts)),
                     "prompt_tokens_range": [min(map(len, prompts)), max(map(len, prompts))],
                     "budget_rule": "ceil(1.3 * document tokens) + 32, at most "
                                    f"{args.max_new_tokens}",
                     "budget_tokens_total": sum(budgets), "stop": "end of turn",
                     "sampling": "greedy"},
        "results": summary, "ratios": ratios}
    print(json.dumps(result, indent=2))
    save_json(result, args.out)


if __name__ == "__main__":
    main()
