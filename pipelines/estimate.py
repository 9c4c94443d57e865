"""`python -m pipelines.refine --estimate=N ...`: what a full run would cost, before launching it.

It refines a seeded sample of N input records here (the same job, DirectRunner, on this
machine's device: CPU, or the GPU/TPU when one is attached), measures what the sample cost
(prompt and generated tokens per input record, retries included) and its verdict mix, sizes the
whole input without reading it all (gdr_beam/beam/survey.py), and turns that into expected
worker-hours and cost for the launchers' machine types from the dated price table
`launch/prices.json`. Every figure is approximate and says where it came from: the local rate is
measured on the sample (generation only, model loading and compilation excluded), the
accelerators' rates are the table's assumptions unless --estimate_tokens_per_s gives one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from typing import Optional, Sequence

from apache_beam.io.filesystems import FileSystems

from gdr_beam.beam import io as gio
from gdr_beam.beam import survey as survey_lib
from gdr_beam.beam.tfrecord import write_frame

PRICES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "launch",
                      "prices.json")
ESTIMATE_JSON = "estimate.json"


def load_prices(path: str = PRICES) -> Optional[dict]:
    if not os.path.exists(path):
        return None  # installed without the repository's launch/: hours only
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _write_sample(payloads: Sequence[bytes], fmt: str, directory: str) -> str:
    if fmt == "jsonl":
        path = os.path.join(directory, "sample.jsonl")
        with open(path, "wb") as f:
            f.write(b"".join(p + b"\n" for p in payloads))
    else:  # tfrecord, and a TFDS split's shards (tfrecord of tf.train.Example)
        path = os.path.join(directory, "sample.tfrecord")
        with open(path, "wb") as f:
            for p in payloads:
                write_frame(f, p)
    return path


def estimate(job, n: int, refine, tokens_per_s: Optional[float] = None,
             prices: Optional[dict] = None) -> dict:
    """Refines a sample of `n` records of job.input and extrapolates (see the module doc).

    `refine` is the pipelines.refine module that runs the job, passed in rather than imported:
    under `python -m pipelines.refine` it is `__main__`, and importing it again by name would
    define its flags twice."""
    fmt = job.input_format or gio.infer_format(job.input)
    found = survey_lib.survey(job.input, fmt, n, job.seed,
                              split=job.split if fmt == "tfds" else None)
    if not found.sample:
        raise ValueError(f"no records found in {job.input!r}")
    with tempfile.TemporaryDirectory() as tmp:
        sample_job = dataclasses.replace(
            job, input=_write_sample(found.sample, fmt, tmp),
            input_format="jsonl" if fmt == "jsonl" else "tfrecord",
            output_dir=os.path.join(tmp, "out"), num_shards=1)
        refine.reset_progress()
        began = time.time()
        report = refine.run(sample_job, ["--runner=DirectRunner", "--direct_num_workers=1"])
        wall = time.time() - began
        generation_s = refine.generation_seconds()
    if report is None:
        raise RuntimeError("the sample run did not finish")
    sampled = report["counts"]["inputs"]
    throughput = report.get("throughput", {})
    generated = throughput.get("generated_tokens") or 0
    prompt = throughput.get("prompt_tokens") or 0
    per_record = {"prompt_tokens": round(prompt / sampled, 1),
                  "generated_tokens": round(generated / sampled, 1)}
    expected_generated = per_record["generated_tokens"] * found.records
    machines = []
    local_rate = generated / generation_s if generation_s else None
    machines.append(_machine("this machine (measured on the sample)", local_rate, None,
                             "measured: generated tokens / generation time of the sample, "
                             "model loading and compilation excluded", expected_generated))
    for m in (prices or {}).get("machines", []):
        rate = tokens_per_s or m["generated_tokens_per_s"]
        machines.append(_machine(
            m["name"], rate, m["usd_per_worker_hour"],
            "--estimate_tokens_per_s" if tokens_per_s else m["throughput_source"],
            expected_generated, launcher=m.get("launcher")))
    outputs = report["counts"]["outputs"]
    return {
        "approximate": True,
        "task": refine.task_name(job), "model": job.model or "embedded SmolLM2-135M-Instruct",
        "adapter": report.get("config", {}).get("adapter"),
        "input": {"path": job.input, "format": fmt, "files": found.files,
                  "bytes": found.bytes, "records": found.records,
                  "records_exact": found.records_exact, "how": found.how},
        "sample": {"requested": n, "records": sampled, "how": found.sample_how,
                   "seed": job.seed, "wall_s": round(wall, 1),
                   "generation_s": round(generation_s, 1) if generation_s else None,
                   "outputs_by_verdict": report["outputs_by_verdict"],
                   "verdict_shares": report.get("verdict_shares", {}),
                   "dead_letters": report["counts"]["dead_letters"],
                   "filtered": report["counts"]["filtered"],
                   "deduplicated": report["counts"]["deduplicated"],
                   "outputs": outputs},
        "per_record": per_record,
        "expected": {"prompt_tokens": round(per_record["prompt_tokens"] * found.records),
                     "generated_tokens": round(expected_generated),
                     "outputs": round(outputs / sampled * found.records)},
        "machines": machines,
        "prices": {k: v for k, v in (prices or {}).items() if k != "machines"} or None,
    }


def _machine(name, rate, usd_per_hour, source, expected_generated, launcher=None) -> dict:
    hours = expected_generated / rate / 3600 if rate else None
    return {"name": name, "launcher": launcher,
            "generated_tokens_per_s": round(rate, 1) if rate else None,
            "throughput_source": source,
            "worker_hours": _sig(hours),
            "usd_per_worker_hour": usd_per_hour,
            "cost_usd": _sig(hours * usd_per_hour)
            if hours is not None and usd_per_hour is not None else None}


def _sig(x: Optional[float]) -> Optional[float]:
    return None if x is None else float(f"{x:.4g}")  # 4 significant digits: small runs too


def _num(x) -> str:
    if x is None:
        return "–"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.2f}" if abs(x) >= 1 else f"{x:.3g}"


def render(est: dict) -> str:
    """The estimate as text for the terminal."""
    inp, sample, per = est["input"], est["sample"], est["per_record"]
    shares = ", ".join(f"{v} {100 * s:.0f}%" for v, s in sample["verdict_shares"].items())
    lines = [
        f"GDR estimate for --task={est['task']} (APPROXIMATE; model {est['model']}, "
        f"adapter {est['adapter'] or 'none'})",
        f"  input: {inp['records']:,} records{'' if inp['records_exact'] else ' (estimated)'}, "
        f"{survey_lib.human_bytes(inp['bytes'])} in {inp['files']} file(s); {inp['how']}",
        f"  sample: {sample['records']} records refined here in {sample['wall_s']:.0f}s "
        f"(generation {_num(sample['generation_s'])}s); {sample['how']}",
        f"    verdicts: {shares or 'none'}; dead letters {sample['dead_letters']}, filtered "
        f"{sample['filtered']}, deduplicated {sample['deduplicated']}",
        f"    per input record: {per['prompt_tokens']:.0f} prompt tokens, "
        f"{per['generated_tokens']:.0f} generated tokens (retries included)",
        f"  expected for the whole input: {est['expected']['generated_tokens']:,} generated "
        f"tokens, {est['expected']['prompt_tokens']:,} prompt tokens, "
        f"~{est['expected']['outputs']:,} outputs",
        "",
        f"  {'machine':<38} {'gen. tokens/s':>13} {'worker-hours':>12} {'USD/hour':>9} "
        f"{'cost USD':>9}"]
    for m in est["machines"]:
        lines.append(f"  {m['name']:<38} {_num(m['generated_tokens_per_s']):>13} "
                     f"{_num(m['worker_hours']):>12} {_num(m['usd_per_worker_hour']):>9} "
                     f"{_num(m['cost_usd']):>9}")
    lines.append("  throughput assumptions:")
    for m in est["machines"]:
        lines.append(f"    {m['name']}: {m['throughput_source']}")
    prices = est.get("prices")
    if prices:
        lines.append(f"  prices: launch/prices.json as of {prices.get('as_of')} "
                     f"({prices.get('currency')}), approximate: {prices.get('note')}")
    else:
        lines.append("  prices: no launch/prices.json here (an install without the "
                     "repository's launch/); worker-hours only")
    lines.append("  Worker-hours assume one worker at the rate shown for the whole run; more "
                 "workers divide the time, not the cost. Start-up time is not included.")
    return "\n".join(lines)


def write_estimate(est: dict, output_dir: str) -> str:
    path = FileSystems.join(output_dir.rstrip("/"), ESTIMATE_JSON)
    with FileSystems.create(path) as f:
        f.write((json.dumps(est, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return path
