"""Generated tokens/s of the gdr-beam JAX engine against HF transformers and llama.cpp.

Every engine gets the same prompt token ids and generates exactly --max_new_tokens per prompt
(end-of-turn tokens do not stop it), greedily. Each engine runs in its own subprocess, so its
peak memory is its own and its threads do not fight another engine's. Per batch size the timed
call is repeated and the median is reported; compile/warm-up time is reported separately.

    python benchmarks/engine_throughput.py                 # all engines, prints JSON
    python benchmarks/engine_throughput.py --engines=jax --batch_sizes=32
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

flags.DEFINE_list("engines", ["jax", "jax_bf16w", "hf", "llamacpp"],
                  "Engines to measure. jax: default dtypes (f32 on CPU); jax_bf16w: bf16 weights "
                  "with f32 activations.")
flags.DEFINE_list("batch_sizes", ["1", "8", "32", "64"], "Batch sizes (llama.cpp: 1 only).")
flags.DEFINE_integer("max_new_tokens", 64, "Tokens generated per prompt.")
flags.DEFINE_integer("repeats", 3, "Timed repeats per batch size (median reported).")
flags.DEFINE_string("model", None, "Checkpoint (default: the embedded SmolLM2-135M GGUF).")
flags.DEFINE_string("dtype", None, "JAX engine dtype (default: f32 on CPU, bf16 on GPU/TPU).")
flags.DEFINE_string("worker", None, "Internal: run one engine and print its JSON.")
FLAGS = flags.FLAGS

_TOPICS = ["the ocean", "a city at night", "an old library", "a mountain village", "a robot",
           "a garden in spring", "a train journey", "the history of bread"]
_STYLES = ["Write a short story about", "Describe in detail", "Explain to a child",
           "Write a news report about", "List some facts about", "Write a poem about",
           "Give advice about", "Summarise what you know about"]


def _prompts():
    from gdr_beam.model.tokenizer import Tokenizer
    from gdr_beam.model import checkpoints
    path = FLAGS.model or checkpoints.default_model_path()
    tok = (Tokenizer.from_hf_dir(path) if os.path.isdir(path) else Tokenizer.from_gguf(path))
    texts = [f"{s} {t}." for s in _STYLES for t in _TOPICS]
    return path, [tok.encode(f"<|im_start|>user\n{x}<|im_end|>\n<|im_start|>assistant\n")
                  for x in texts]


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time_batches(run, prompts, batch_sizes, repeats):
    """run(list_of_id_lists) -> generated token count. Returns per-batch-size figures."""
    out = {}
    for b in batch_sizes:
        batch = prompts[:b]
        t0 = time.perf_counter()
        run(batch)  # warm-up: compiles on JAX, allocates on the others
        warm = time.perf_counter() - t0
        times, tokens = [], 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            tokens = run(batch)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        out[str(b)] = {"tokens": tokens, "median_s": round(med, 3),
                       "tokens_per_s": round(tokens / med, 1),
                       "first_call_s": round(warm, 2)}
        print(f"[{FLAGS.worker}] batch {b}: {tokens / med:.1f} tok/s", file=sys.stderr)
    return out


def _worker_jax(path, prompts, batch_sizes, param_dtype=None):
    import jax
    import gdr_beam
    from gdr_beam.generate import SamplingParams, row_keys
    t0 = time.perf_counter()
    model = gdr_beam.load_model(path, dtype=FLAGS.dtype, param_dtype=param_dtype,
                                max_batch_size=max(batch_sizes))
    load_s = time.perf_counter() - t0
    n = FLAGS.max_new_tokens

    def run(batch):
        out = model.sampler.generate(batch, max_new_tokens=n, sampling=SamplingParams(),
                                     keys=row_keys(0, len(batch)), stop_ids=())
        return sum(map(len, out))

    return {"engine": "gdr-beam JAX", "device": str(jax.devices()[0]),
            "dtype": model.dtype.name, "param_dtype": model.param_dtype.name,
            "load_s": round(load_s, 2),
            "batches": _time_batches(run, prompts, batch_sizes, FLAGS.repeats)}


def _worker_hf(path, prompts, batch_sizes):
    import torch
    import transformers
    torch.set_num_threads(os.cpu_count())
    d, f = os.path.split(path)
    kw = {"gguf_file": f} if f.endswith(".gguf") else {}
    model = transformers.AutoModelForCausalLM.from_pretrained(d if kw else path,
                                                              dtype=torch.float32, **kw)
    model.eval()
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

    return {"engine": "HF transformers " + transformers.__version__,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "batches": _time_batches(run, prompts, batch_sizes, FLAGS.repeats)}


def _worker_llamacpp(path, prompts, batch_sizes):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=path, n_ctx=512, n_batch=512, n_threads=os.cpu_count(),
                          verbose=False)
    n = FLAGS.max_new_tokens

    def run(batch):
        total = 0
        for p in batch:  # llama-cpp-python's high-level API decodes one sequence at a time
            llm.reset()
            for k, _ in enumerate(llm.generate(p, top_k=1, temp=0.0), start=1):
                if k == n:
                    break
            total += k
        return total

    return {"engine": "llama.cpp (llama-cpp-python " + llama_cpp.__version__ + ")",
            "weights": os.path.basename(path),
            "batches": _time_batches(run, prompts, [1], max(FLAGS.repeats, 5))}


_WORKERS = {
    "jax": _worker_jax,
    "jax_bf16w": lambda *a: _worker_jax(*a, param_dtype="bfloat16"),
    "hf": _worker_hf,
    "llamacpp": _worker_llamacpp,
}


def main(argv):
    del argv
    batch_sizes = [int(b) for b in FLAGS.batch_sizes]
    if FLAGS.worker:
        path, prompts = _prompts()
        result = _WORKERS[FLAGS.worker](path, prompts, batch_sizes)
        result["peak_rss_mb"] = round(_peak_rss_mb())
        print(json.dumps(result))
        return
    results = {}
    for engine in FLAGS.engines:
        cmd = [sys.executable, os.path.abspath(__file__), f"--worker={engine}"] + [
            a for a in sys.argv[1:] if not a.startswith("--engines")]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            results[engine] = {"error": proc.stderr.strip().splitlines()[-1:]}
            continue
        results[engine] = json.loads(proc.stdout.strip().splitlines()[-1])
    summary = {"machine": {"cpus": os.cpu_count(), "platform": sys.platform},
               "max_new_tokens": FLAGS.max_new_tokens, "results": results}
    ratios = {}
    hf_b = results.get("hf", {}).get("batches", {})
    cpp = results.get("llamacpp", {}).get("batches", {}).get("1", {}).get("tokens_per_s")
    for engine in ("jax", "jax_bf16w"):
        for b, r in results.get(engine, {}).get("batches", {}).items():
            if cpp:
                ratios[f"{engine}_b{b}_over_llamacpp_b1"] = round(r["tokens_per_s"] / cpp, 2)
            if b in hf_b:
                ratios[f"{engine}_b{b}_over_hf_b{b}"] = round(
                    r["tokens_per_s"] / hf_b[b]["tokens_per_s"], 2)
    summary["ratios"] = ratios
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    app.run(main)
