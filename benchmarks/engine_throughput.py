"""Generated tokens/s of the gdr-beam JAX engine against HF transformers and llama.cpp.

Every engine gets the same prompt token ids and generates exactly --max_new_tokens per prompt
(end-of-turn tokens do not stop it), greedily. Each engine lives in its own subprocess (its
peak memory is its own, its threads never run beside another engine's), and the timed calls
are interleaved: repeat r of batch size b runs on every engine, one after the other, before
repeat r+1. On a shared, noisy machine a slow period then hits all engines alike, so the
reported ratios (medians over repeats) compare like with like.

    python benchmarks/engine_throughput.py                 # all engines, prints JSON
    python benchmarks/engine_throughput.py --engines=jax,hf --batch_sizes=32
"""

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

flags.DEFINE_list("engines", ["jax", "jax_bf16w", "hf", "llamacpp"],
                  "Engines to measure. jax: default dtypes (f32 on CPU, bf16 on GPU); "
                  "jax_bf16w: bf16 weights with f32 activations.")
flags.DEFINE_list("batch_sizes", ["1", "8", "32", "64"], "Batch sizes (llama.cpp: 1 only).")
flags.DEFINE_integer("max_new_tokens", 64, "Tokens generated per prompt.")
flags.DEFINE_integer("repeats", 5, "Timed repeats per batch size (median reported).")
flags.DEFINE_string("model", None, "Checkpoint (default: the embedded SmolLM2-135M GGUF).")
flags.DEFINE_string("worker", None, "Internal: serve one engine over stdin/stdout.")
FLAGS = flags.FLAGS

_TOPICS = ["the ocean", "a city at night", "an old library", "a mountain village", "a robot",
           "a garden in spring", "a train journey", "the history of bread"]
_STYLES = ["Write a short story about", "Describe in detail", "Explain to a child",
           "Write a news report about", "List some facts about", "Write a poem about",
           "Give advice about", "Summarise what you know about"]

# Engines that only decode one sequence at a time (their batch-1 figure is their best).
_BATCH_ONE_ONLY = {"llamacpp"}


def _model_path():
    from gdr_beam.model import checkpoints
    return FLAGS.model or checkpoints.default_model_path()


def _prompts(path):
    from gdr_beam.model.tokenizer import Tokenizer
    tok = Tokenizer.from_hf_dir(path) if os.path.isdir(path) else Tokenizer.from_gguf(path)
    texts = [f"{s} {t}." for s in _STYLES for t in _TOPICS]
    return [tok.encode(tok.apply_chat_template([{"role": "user", "content": x}]))
            for x in texts]


# -- engines: each returns (description dict, run(list of id lists) -> tokens generated) ------


def _engine_jax(path, param_dtype=None):
    import jax
    import gdr_beam
    from gdr_beam.generate import SamplingParams, row_keys
    model = gdr_beam.load_model(path, param_dtype=param_dtype,
                                max_batch_size=max(int(b) for b in FLAGS.batch_sizes))
    n = FLAGS.max_new_tokens

    def run(batch):
        out = model.sampler.generate(batch, max_new_tokens=n, sampling=SamplingParams(),
                                     keys=row_keys(0, len(batch)), stop_ids=())
        return sum(map(len, out))

    return {"engine": "gdr-beam JAX " + jax.__version__, "device": str(jax.devices()[0]),
            "dtype": model.dtype.name, "param_dtype": model.param_dtype.name}, run


def _engine_hf(path):
    import torch
    import transformers
    torch.set_num_threads(os.cpu_count())
    directory, name = os.path.split(path)
    kwargs = {"gguf_file": name} if name.endswith(".gguf") else {}
    model = transformers.AutoModelForCausalLM.from_pretrained(
        directory if kwargs else path, dtype=torch.float32, **kwargs).eval()
    n = FLAGS.max_new_tokens

    def run(batch):
        width = max(map(len, batch))
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, p in enumerate(batch):  # left padding, as HF recommends for decoder-only models
            ids[r, width - len(p):] = torch.tensor(p)
            mask[r, width - len(p):] = 1
        with torch.no_grad():
            out = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=n,
                                 min_new_tokens=n, pad_token_id=0)
        return int((out.shape[1] - width) * len(batch))

    return {"engine": "HF transformers " + transformers.__version__ + ", torch "
            + torch.__version__, "threads": torch.get_num_threads(), "dtype": "float32"}, run


def _engine_llamacpp(path):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=path, n_ctx=512, n_batch=512, n_threads=os.cpu_count(),
                          verbose=False)
    n = FLAGS.max_new_tokens

    def run(batch):
        total = 0
        for p in batch:  # llama-cpp-python decodes one sequence at a time
            llm.reset()
            for k, _ in enumerate(llm.generate(p, top_k=1, temp=0.0), start=1):
                if k == n:
                    break
            total += k
        return total

    return {"engine": "llama.cpp (llama-cpp-python " + llama_cpp.__version__ + ")",
            "weights": os.path.basename(path)}, run


_ENGINES = {
    "jax": _engine_jax,
    "jax_bf16w": lambda path: _engine_jax(path, param_dtype="bfloat16"),
    "hf": _engine_hf,
    "llamacpp": _engine_llamacpp,
}


def _serve(engine):
    """Worker: load, then answer one JSON line per batch size read from stdin."""
    path = _model_path()
    prompts = _prompts(path)
    t0 = time.perf_counter()
    info, run = _ENGINES[engine](path)
    info["load_s"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        batch = prompts[:int(line)]
        t0 = time.perf_counter()
        tokens = run(batch)
        seconds = time.perf_counter() - t0
        print(json.dumps({"tokens": tokens, "seconds": seconds,
                          "peak_rss_mb": round(resource.getrusage(
                              resource.RUSAGE_SELF).ru_maxrss / 1024)}), flush=True)


class _Worker:
    def __init__(self, engine, argv):
        cmd = [sys.executable, os.path.abspath(__file__), f"--worker={engine}"] + [
            a for a in argv if not a.startswith("--engines")]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.info = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker died: {' '.join(self.proc.args)}")
        return json.loads(line)

    def run(self, batch_size):
        self.proc.stdin.write(f"{batch_size}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def _measure(argv):
    sizes = [int(b) for b in FLAGS.batch_sizes]
    workers = {e: _Worker(e, argv) for e in FLAGS.engines}
    plan = {e: [b for b in sizes if e not in _BATCH_ONE_ONLY or b == 1] for e in workers}
    first = {e: {} for e in workers}
    for e, w in workers.items():  # warm-up: compiles (JAX), allocates (the others)
        for b in plan[e]:
            first[e][b] = w.run(b)["seconds"]
    runs = {e: {b: [] for b in plan[e]} for e in workers}
    for r in range(FLAGS.repeats):
        for b in sizes:
            for e, w in workers.items():
                if b in plan[e]:
                    runs[e][b].append(w.run(b))
        print(f"repeat {r + 1}/{FLAGS.repeats} done", file=sys.stderr)
    results = {}
    for e, w in workers.items():
        batches = {}
        for b, rs in runs[e].items():
            med = statistics.median(x["seconds"] for x in rs)
            batches[str(b)] = {"tokens": rs[0]["tokens"], "median_s": round(med, 3),
                               "tokens_per_s": round(rs[0]["tokens"] / med, 1),
                               "first_call_s": round(first[e][b], 2)}
        results[e] = dict(w.info, batches=batches,
                          peak_rss_mb=max(x["peak_rss_mb"] for rs in runs[e].values()
                                          for x in rs))
        w.close()
    return results


def _ratios(results):
    ratios = {}
    cpp = results.get("llamacpp", {}).get("batches", {}).get("1", {}).get("tokens_per_s")
    hf = results.get("hf", {}).get("batches", {})
    for engine in ("jax", "jax_bf16w"):
        for b, r in results.get(engine, {}).get("batches", {}).items():
            if cpp:
                ratios[f"{engine}_b{b}_over_llamacpp_b1"] = round(r["tokens_per_s"] / cpp, 2)
            if b in hf:
                ratios[f"{engine}_b{b}_over_hf_b{b}"] = round(
                    r["tokens_per_s"] / hf[b]["tokens_per_s"], 2)
    return ratios


def main(argv):
    if FLAGS.worker:
        _serve(FLAGS.worker)
        return
    results = _measure(sys.argv[1:])
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or
                    platform.machine(), "python": platform.python_version()},
        "max_new_tokens": FLAGS.max_new_tokens, "repeats": FLAGS.repeats,
        "results": results, "ratios": _ratios(results)}, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    app.run(main)
