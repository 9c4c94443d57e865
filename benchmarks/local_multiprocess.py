"""Local multi-process speed-up: the real job through launch/local/run.py, 1 vs N workers.

The same small input (the 8 records of gdr_beam/samples/pii_sample.jsonl, repeated with varied
ids and a varied closing sentence, 24 records by default) goes through the whole job
(`python launch/local/run.py --num_workers=W ...`: DirectRunner in multi_processing mode, read,
prompt, RunInference with the embedded model, verify, write TFRecords + TFDS metadata, report)
once with 1 worker process and once with N, alternating when --repeats > 1 so a noisy period
hits both. Each run is a cold subprocess: wall time includes Python and Beam start-up, one
model load and compilation per worker process, and generation. Prints JSON with the median
wall times and the speed-up (1-worker time / N-worker time); --out also writes it to a file.

    python benchmarks/local_multiprocess.py --out=benchmarks/results/local_multiprocess_cpu.json
    python benchmarks/local_multiprocess.py --workers=2 --repeats=3 --max_new_tokens=32

On a machine with C cores, one JAX process already uses all C for its matrix products, so N
processes on the same C cores mostly trade that intra-op parallelism for N model loads and N
compilations; the speed-up to expect comes from the stages around the model overlapping, not
from generation. Report what you measure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from results_io import save_json  # a sibling module: this folder is on sys.path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "gdr_beam", "samples", "pii_sample.jsonl")
LAUNCHER = os.path.join(REPO, "launch", "local", "run.py")
_ENDINGS = ["", " Thanks!", " See you soon.", " Regards.", " (forwarded)", " Urgent."]

_PARSER = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
_PARSER.add_argument("--n", type=int, default=24, help="Records (default %(default)s).")
_PARSER.add_argument("--workers", type=int, default=2,
                     help="Worker processes of the multi-process run (default %(default)s).")
_PARSER.add_argument("--max_new_tokens", type=int, default=32,
                     help="Most tokens generated per record (default %(default)s).")
_PARSER.add_argument("--repeats", type=int, default=1,
                     help="Runs per setting, alternating; medians reported (default %(default)s).")
_PARSER.add_argument("--task", default="pii")
_PARSER.add_argument("--out", default=None, help="Also write the JSON here.")


def records(n: int) -> list[dict]:
    """n records cycling through the sample, each with its own id and a varied ending."""
    with open(SAMPLE, encoding="utf-8") as f:
        base = [json.loads(line) for line in f if line.strip()]
    out = []
    for i in range(n):
        r = dict(base[i % len(base)])
        r["id"] = f"{r['id']}-{i // len(base)}"
        r["text"] = r["text"] + _ENDINGS[(i // len(base)) % len(_ENDINGS)]
        out.append(r)
    return out


def run_once(workers: int, input_path: str, tmp: str, args) -> dict:
    out_dir = os.path.join(tmp, f"out-w{workers}-{time.time_ns()}")
    command = [sys.executable, LAUNCHER, f"--num_workers={workers}", f"--input={input_path}",
               f"--output_dir={out_dir}", f"--task={args.task}",
               f"--max_new_tokens={args.max_new_tokens}",
               # One generation per record, so both settings do the same model work.
               "--max_retries=0", "--progress_interval=1e9"]
    t0 = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{workers}-worker run failed ({proc.returncode}):\n"
                           f"{proc.stderr[-4000:]}")
    with open(os.path.join(out_dir, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    return {"wall_s": round(wall, 2), "outputs": report["counts"]["outputs"],
            "balanced": report["balanced"], "verdicts": report["outputs_by_verdict"],
            "throughput": report.get("throughput", {})}


def summarize(runs: list[dict]) -> dict:
    walls = [r["wall_s"] for r in runs]
    median = statistics.median(walls)
    last = runs[-1]
    return {"wall_s_median": round(median, 2), "wall_s_all": walls,
            "outputs": last["outputs"], "balanced": all(r["balanced"] for r in runs),
            "verdicts": last["verdicts"],
            "generated_tokens": last["throughput"].get("generated_tokens")}


def main(argv=None) -> dict:
    args = _PARSER.parse_args(argv)
    if args.workers < 2:
        _PARSER.error("--workers must be >= 2 (it is compared with 1 worker)")
    settings = (1, args.workers)
    runs = {w: [] for w in settings}
    with tempfile.TemporaryDirectory(prefix="gdr-multiproc-") as tmp:
        input_path = os.path.join(tmp, "in.jsonl")
        with open(input_path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in records(args.n))
        for r in range(args.repeats):
            # Alternate the order as well, so neither setting always runs first.
            for w in (settings if r % 2 == 0 else settings[::-1]):
                runs[w].append(run_once(w, input_path, tmp, args))
                print(f"repeat {r + 1}/{args.repeats}: {w} worker(s) "
                      f"{runs[w][-1]['wall_s']} s", file=sys.stderr, flush=True)
    one, many = summarize(runs[1]), summarize(runs[args.workers])
    import apache_beam  # pylint: disable=import-outside-toplevel
    import jax  # pylint: disable=import-outside-toplevel
    import gdr_beam  # pylint: disable=import-outside-toplevel
    result = {
        "benchmark": "local multi-process: launch/local/run.py, DirectRunner multi_processing",
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor()
                    or platform.machine(), "python": platform.python_version(),
                    "jax": jax.__version__, "apache_beam": apache_beam.__version__,
                    "device": "cpu"},
        "code": {"repo": REPO, "gdr_beam": os.path.dirname(gdr_beam.__file__)},
        "n": args.n, "max_new_tokens": args.max_new_tokens, "task": args.task,
        "repeats": args.repeats, "model": "embedded SmolLM2-135M-Instruct (f32 on CPU)",
        "workers_1": one, f"workers_{args.workers}": many,
        "speedup": round(one["wall_s_median"] / many["wall_s_median"], 3),
        "measures": "cold wall time of the whole job per run (start-up, one model load and "
                    "compilation per worker process, generation, writing, report); speedup = "
                    "median 1-worker time / median N-worker time",
    }
    print(json.dumps(result, indent=2))
    save_json(result, args.out)
    return result


if __name__ == "__main__":
    sys.path.insert(0, REPO)
    main()
