"""What the Beam pipeline costs on top of the bare engine, on the same work.

The same N short PII-like records go (a) through `pipelines.refine` on the DirectRunner (read,
prompt, RunInference, verify, write TFRecords + TFDS metadata, dead letters, report) and (b)
straight into the engine: `generate_with_ids` on the very chat prompts and per-example seeds the
pipeline builds, with the handler's batch limits and the same max_new_tokens, greedy. Each
measurement runs cold in its own subprocess (import excluded; model load, compilation and
generation included on both sides), alternating between the two when --repeats > 1, so a noisy
period hits both. Prints JSON; the target is pipeline >= 90% of the bare engine.

    python benchmarks/pipeline_overhead.py                  # 256 records, 48 new tokens
    python benchmarks/pipeline_overhead.py --n=64 --repeats=3
"""

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time

# argparse, not absl flags: the pipeline worker imports pipelines.refine, whose absl flags
# (--model, --max_new_tokens, ...) would clash with same-named ones defined here.
_PARSER = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
_PARSER.add_argument("--n", type=int, default=256, help="Records.")
_PARSER.add_argument("--max_new_tokens", type=int, default=48,
                     help="Most tokens generated per record.")
_PARSER.add_argument("--max_batch_tokens", type=int, default=8192,
                     help="Token budget of a generation batch (both sides).")
_PARSER.add_argument("--repeats", type=int, default=1, help="Cold runs per side (median).")
_PARSER.add_argument("--model", default=None,
                     help="Checkpoint (default: the embedded SmolLM2-135M GGUF).")
_PARSER.add_argument("--worker", choices=["engine", "pipeline"], default=None,
                     help="Internal: run one side, print JSON.")
FLAGS = None  # parsed arguments, set in main

TASK = "pii"
SEED = 0
_FIRST = ["Maria", "John", "Priya", "Wei", "Anna", "Carlos", "Fatima", "Liam", "Olga", "Kenji"]
_LAST = ["Gonzalez", "Smith", "Patel", "Chen", "Schmidt", "Silva", "Khan", "Murphy", "Ivanova",
         "Sato"]
_STREETS = ["Evergreen Terrace", "Baker Street", "Main Street", "Elm Road", "Harbour Lane"]
_CITIES = ["Springfield", "London", "Berlin", "Osaka", "Lisbon", "Toronto"]
_TEMPLATES = [
    "Hi, I'm {name}, reach me at {email} or {phone}.",
    "Please send the invoice to {name}, {addr}.",
    "{name} (phone {phone}) asked us to update the account.",
    "Contact {email} about the order shipped to {addr}.",
    "The meeting with {name} moved to Thursday; call {phone} if late.",
    "Our server is at 10.0.{a}.{b}; the admin is {name}.",
]


def records(n: int) -> list:
    rng = random.Random(1234)
    out = []
    for i in range(n):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        text = rng.choice(_TEMPLATES).format(
            name=f"{first} {last}",
            email=f"{first.lower()}.{last.lower()}@example.com",
            phone=f"+1 {rng.randrange(200, 999)}-555-{rng.randrange(0, 10000):04d}",
            addr=f"{rng.randrange(1, 999)} {rng.choice(_STREETS)}, {rng.choice(_CITIES)}",
            a=rng.randrange(256), b=rng.randrange(256))
        out.append({"id": f"bench-{i:04d}", "text": text})
    return out


# --- the two sides (each in its own process) -----------------------------------------------

def _run_engine() -> dict:
    from gdr_beam.beam.handler import JaxModelHandler
    from gdr_beam.beam.refine import example_seed
    from gdr_beam.tasks import get_task

    recs = records(FLAGS.n)
    task = get_task(TASK)
    # The pipeline's own handler, so the model is loaded with exactly its batch limits.
    handler = JaxModelHandler(FLAGS.model, max_new_tokens=FLAGS.max_new_tokens,
                              max_batch_tokens=FLAGS.max_batch_tokens)
    t0 = time.perf_counter()
    model = handler.load_model()
    t1 = time.perf_counter()
    prompts = [model.apply_chat_template(task.messages(r["text"])) for r in recs]
    seeds = [example_seed(SEED, r["id"]) for r in recs]
    _, ids = model.generate_with_ids(prompts, max_new_tokens=FLAGS.max_new_tokens,
                                     temperature=0.0, seed=seeds)
    t2 = time.perf_counter()
    return {"load_s": t1 - t0, "work_s": t2 - t1, "total_s": t2 - t0,
            "generated_tokens": sum(map(len, ids)), "examples": len(recs),
            "batch_size": model.sampler.max_batch_size if hasattr(model, "sampler") else None}


def _run_pipeline() -> dict:
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.options.pipeline_options import PipelineOptions
    from pipelines import refine

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "in.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in records(FLAGS.n))
        job = refine.RefineJob(input=path, output_dir=os.path.join(tmp, "out"), task=TASK,
                               model=FLAGS.model, max_new_tokens=FLAGS.max_new_tokens,
                               temperature=0.0, seed=SEED, adapter="none",  # as the engine
                               max_batch_tokens=FLAGS.max_batch_tokens,
                               # The engine side generates once per record; so does this.
                               max_retries=0, progress_interval=1e9)
        t0 = time.perf_counter()
        pipeline = beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"]))
        refine.build(pipeline, job, time.time())
        result = pipeline.run()
        result.wait_until_finish()
        t1 = time.perf_counter()
        metrics = result.metrics().query(MetricsFilter().with_namespace("gdr"))
        counters = {c.key.metric.name: c.committed for c in metrics["counters"]}
        dists = {d.key.metric.name: d.committed for d in metrics["distributions"]}
        report = json.load(open(os.path.join(job.output_dir, "report.json"), encoding="utf-8"))
    load = dists.get("load_model_latency_milli_secs")  # RunInference's own measure
    load_s = load.sum / 1000 if load else 0.0
    batches = dists.get("gdr/generate/batch_size")
    return {"load_s": load_s, "work_s": t1 - t0 - load_s, "total_s": t1 - t0,
            "generated_tokens": counters.get("gdr/generate/tokens_out", 0),
            "examples": report["counts"]["outputs"], "balanced": report["balanced"],
            "verdicts": report["outputs_by_verdict"],
            "runinference_batches": batches.count if batches else None,
            "mean_runinference_batch": round(batches.mean, 1) if batches else None}


# --- driver -----------------------------------------------------------------------------------

def _spawn(side: str) -> dict:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    argv = [a for a in sys.argv[1:] if not a.startswith("--worker")]
    env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), f"--worker={side}", *argv],
                          cwd=repo, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rates(run: dict, n: int) -> dict:
    return {"examples_per_s": round(n / run["total_s"], 3),
            "tokens_per_s": round(run["generated_tokens"] / run["total_s"], 2),
            "examples_per_s_after_load": round(n / run["work_s"], 3),
            "tokens_per_s_after_load": round(run["generated_tokens"] / run["work_s"], 2)}


def main():
    global FLAGS
    FLAGS = _PARSER.parse_args()
    if FLAGS.worker:
        run = _run_engine() if FLAGS.worker == "engine" else _run_pipeline()
        print(json.dumps(run))
        return
    runs = {"engine": [], "pipeline": []}
    for r in range(FLAGS.repeats):
        for side in ("engine", "pipeline"):
            runs[side].append(_spawn(side))
            print(f"repeat {r + 1}/{FLAGS.repeats}: {side} done", file=sys.stderr)
    results = {}
    for side, rs in runs.items():
        median = sorted(rs, key=lambda x: x["total_s"])[len(rs) // 2]
        results[side] = {**{k: round(v, 3) if isinstance(v, float) else v
                            for k, v in median.items()},
                         **_rates(median, FLAGS.n),
                         "total_s_all": [round(x["total_s"], 2) for x in rs]}
    e, p = results["engine"], results["pipeline"]
    pairs = [round(a["total_s"] / b["total_s"], 3)  # engine time / pipeline time = speed ratio
             for a, b in zip(runs["engine"], runs["pipeline"])]
    import jax  # after the workers: the driver itself never computes
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or
                    platform.machine(), "python": platform.python_version(),
                    "jax": jax.__version__, "device": str(jax.devices()[0]),
                    "apache_beam": __import__("apache_beam").__version__},
        "n": FLAGS.n, "max_new_tokens": FLAGS.max_new_tokens,
        "max_batch_tokens": FLAGS.max_batch_tokens, "repeats": FLAGS.repeats,
        "engine": e, "pipeline": p,
        "ratio": {
            "examples_per_s": round(p["examples_per_s"] / e["examples_per_s"], 3),
            "tokens_per_s": round(p["tokens_per_s"] / e["tokens_per_s"], 3),
            "examples_per_s_after_load": round(
                p["examples_per_s_after_load"] / e["examples_per_s_after_load"], 3),
            # Each repeat's engine and pipeline runs are neighbours in time, so their ratio
            # cancels the machine's slow drifts; the median of these is the headline figure on a
            # shared machine, the spread says how far to trust it.
            "per_repeat": pairs,
            "median_per_repeat": statistics.median(pairs),
        },
        "target": "pipeline >= 0.9 x engine (examples/s, cold runs incl. load); "
                  "ratio.median_per_repeat is the side-by-side figure",
    }, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
