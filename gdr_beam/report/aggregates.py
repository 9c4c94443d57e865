"""What the report counts, as one CombineFn over tagged elements, and the report dict built
from its result.

Counts come from the data itself (the records read, the dead letters, the shards as written
and read back from disk), never from Beam metrics, which are best-effort on some runners. What
it gathers, each exact over the whole run unless said otherwise:

  inputs read, dead letters by stage/reason, filtered/deduplicated by reason
  written outputs by verdict, replaced values by category (`changes`), the verifier's failure
    reasons of the fallbacks (`fallback_reasons`), text lengths, long texts refined in
    segments and each segment's verdict (`segments`)                  (from the shards on disk)
  text lengths of the inputs                                           (from the records read)
  samples per verdict and a diversity sample: the k records with the smallest hash of their
    id, so deterministic and spread over the dataset                   (bounded, not exact)
"""

from __future__ import annotations

import hashlib
import heapq
import json
from typing import Mapping, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from gdr_beam.beam.records import json_list
from gdr_beam.report import diffs
from gdr_beam.report.diversity import diversity

MAX_DETAIL_CHARS = 500
# Diversity is measured on this many (original, output) pairs, each text cut to this length.
DIVERSITY_SAMPLE = 400
DIVERSITY_MAX_CHARS = 5_000
# Text length histogram: [0, 32), [32, 64), ... [16384, 32768), [32768, inf) characters.
LENGTH_EDGES = [0] + [2 ** k for k in range(5, 16)]
MAIN_VERDICTS = ("rewritten", "fallback", "unchanged")


def length_bucket(n: int) -> int:
    return 0 if n < LENGTH_EDGES[1] else min(n.bit_length() - 5, len(LENGTH_EDGES) - 1)


def length_labels() -> list:
    labels = []
    for i, lo in enumerate(LENGTH_EDGES):
        hi = LENGTH_EDGES[i + 1] if i + 1 < len(LENGTH_EDGES) else None
        labels.append(f"{lo}-{hi - 1}" if hi else f"{lo}+")
    return labels


def sort_key(rid: str) -> str:
    # A hash, not the id itself: ids are often sequential, and the sample should not be all
    # from one corner of the dataset. Deterministic, so reruns show the same sample.
    return hashlib.sha256(rid.encode("utf-8")).hexdigest()


# --- Tagging: each input PCollection's elements -> (kind, value) ------------------------------

def tag_record(record):
    text = record.get("text")
    return "record", len(text) if isinstance(text, str) else 0


def tag_dead(kind):
    def tag(dead):
        return kind, (dead.stage, dead.reason, dead.id, dead.source,
                      dead.detail[:MAX_DETAIL_CHARS])
    return tag


def tag_dropped(kind):
    def tag(element):
        reason = element.get("reason", "") if isinstance(element, Mapping) \
            else getattr(element, "reason", "")  # a DeadLetter of stage filter/dedup
        return kind, reason if isinstance(reason, str) else ""
    return tag


def tag_refined(record):
    summary = {name: record.get(name) for name in ("id", "text", "verdict", "changes",
                                                   "fallback_reasons")}
    return "refined", (sort_key(str(record.get("id", ""))), summary)


def count_written(path):
    """One output shard -> ("written", (verdict, categories, reasons, length)) per example in
    it, read back from disk: the report describes what was written, not what was meant to be."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from gdr_beam.beam.tfrecord import read_frames  # pylint: disable=import-outside-toplevel
    with FileSystems.open(path) as f:
        for frame in read_frames(f):
            if frame.error:  # our own shard is corrupt: the run did not write what it claims
                yield "corrupt_output", path
                if frame.fatal:
                    return
                continue
            feature = tf.train.Example.FromString(frame.data).features.feature

            def string(name):
                value = feature.get(name)
                return value.bytes_list.value[0].decode("utf-8", "replace") \
                    if value is not None and value.bytes_list.value else ""

            categories = tuple(str(c.get("category", "")) for c in json_list(string("changes"))
                               if isinstance(c, Mapping))
            reasons = tuple(str(r) for r in json_list(string("fallback_reasons")))
            segments = tuple(str(s.get("verdict", "")) for s in json_list(string("segments"))
                             if isinstance(s, Mapping))
            yield "written", (string("verdict"), categories, reasons, len(string("text")),
                              segments)


# --- The combine ------------------------------------------------------------------------------

class ReportFn(beam.CombineFn):
    """Tagged (kind, value) pairs -> one dict of counts plus bounded, deterministic samples."""

    def __init__(self, samples_per_verdict: int, dead_samples_per_reason: int,
                 diversity_sample: int = DIVERSITY_SAMPLE):
        super().__init__()
        self._k = samples_per_verdict
        self._dead_k = dead_samples_per_reason
        self._div_k = diversity_sample

    def create_accumulator(self):
        buckets = len(LENGTH_EDGES)
        return {"records": 0, "read_dead": 0, "written": {}, "refined": {}, "dead": {},
                "filtered": {}, "deduplicated": {}, "corrupt_output": 0,
                "categories": {}, "reasons": {}, "last_reasons": {},
                "segmented": 0, "segment_verdicts": {},
                "len_inputs": [0] * buckets, "len_outputs": [0] * buckets,
                "chars_inputs": 0, "chars_outputs": 0,
                "samples": {}, "dead_samples": {}, "diversity": []}

    def add_input(self, acc, element):
        kind, value = element
        if kind == "record":
            acc["records"] += 1
            acc["len_inputs"][length_bucket(value)] += 1
            acc["chars_inputs"] += value
        elif kind == "written":
            verdict, categories, reasons, length, segments = value
            _inc(acc["written"], verdict)
            if segments:
                acc["segmented"] += 1
                for segment_verdict in segments:
                    _inc(acc["segment_verdicts"], segment_verdict)
            for category in categories:
                _inc(acc["categories"], category)
            for reason in reasons:
                _inc(acc["reasons"], reason)
            if reasons:
                _inc(acc["last_reasons"], reasons[-1])
            acc["len_outputs"][length_bucket(length)] += 1
            acc["chars_outputs"] += length
        elif kind == "corrupt_output":
            acc["corrupt_output"] += 1
        elif kind in ("filtered", "deduplicated"):
            _inc(acc[kind], value)
        elif kind in ("dead", "read_dead"):
            if kind == "read_dead":
                acc["read_dead"] += 1
            stage, reason, rid, source, detail = value
            key = f"{stage}/{reason}"
            _inc(acc["dead"], key)
            _keep_smallest(acc["dead_samples"], key, ((rid, source), {
                "id": rid, "stage": stage, "reason": reason, "source": source,
                "detail": detail}), self._dead_k)
        elif kind == "refined":
            key, summary = value
            verdict = str(summary.get("verdict") or "")
            _inc(acc["refined"], verdict)
            _keep_smallest(acc["samples"], verdict, (key, summary), self._k)
            text = summary.get("text") if isinstance(summary.get("text"), str) else ""
            _keep_heap(acc["diversity"], (-int(key[:16], 16), key, str(summary.get("id")),
                                          text[:DIVERSITY_MAX_CHARS]), self._div_k)
        else:
            raise ValueError(f"unknown report element kind {kind!r}")
        return acc

    def merge_accumulators(self, accumulators):
        out = self.create_accumulator()
        for acc in accumulators:
            for name in ("records", "read_dead", "corrupt_output", "chars_inputs",
                         "chars_outputs", "segmented"):
                out[name] += acc[name]
            for name in ("len_inputs", "len_outputs"):
                out[name] = [a + b for a, b in zip(out[name], acc[name])]
            for name in ("written", "refined", "dead", "filtered", "deduplicated",
                         "categories", "reasons", "last_reasons", "segment_verdicts"):
                for key, n in acc[name].items():
                    _inc(out[name], key, n)
            for name, k in (("samples", self._k), ("dead_samples", self._dead_k)):
                for key, items in acc[name].items():
                    for item in items:
                        _keep_smallest(out[name], key, item, k)
            for item in acc["diversity"]:
                _keep_heap(out["diversity"], item, self._div_k)
        return out

    def extract_output(self, acc):
        return acc


def _inc(counts: dict, key, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


def _keep_smallest(buckets: dict, key, item, k: int) -> None:
    items = buckets.setdefault(key, [])
    if any(item[0] == other[0] for other in items):
        return  # equal keys are the same element: a sample lists each once
    items.append(item)
    items.sort(key=lambda pair: pair[0])
    del items[k:]


def _keep_heap(heap: list, entry, k: int) -> None:
    """Keeps the k entries (rank, key, id, text) of largest rank, i.e. smallest key: rank is
    minus the key's first 16 hex digits, so `heap` is a max-heap on the key and each record
    costs O(log k) (every output passes through it)."""
    if len(heap) < k:
        heapq.heappush(heap, entry)
    elif entry[0] > heap[0][0]:
        heapq.heapreplace(heap, entry)


def sample_ids(acc) -> frozenset:
    """The ids whose original text the report needs: the samples and the diversity sample."""
    return frozenset([s["id"] for items in acc["samples"].values() for _, s in items]
                     + [e[2] for e in acc["diversity"]])


# --- The report dict --------------------------------------------------------------------------

def build_report(acc: Mapping, originals: Mapping[str, str], *, config: Mapping,
                 files: Sequence[str], elapsed_s: Optional[float]) -> dict:
    """The combine's accumulator + the sampled originals -> the report dict (JSON-able)."""
    dead_by_stage = {}
    for key in sorted(acc["dead"]):
        stage, reason = key.split("/", 1)
        dead_by_stage.setdefault(stage, {})[reason] = acc["dead"][key]
    dead_total = sum(acc["dead"].values())
    inputs = acc["records"] + acc["read_dead"]
    outputs = sum(acc["written"].values())
    filtered = sum(acc["filtered"].values())
    deduplicated = sum(acc["deduplicated"].values())
    refined = sum(acc["refined"].values())
    write_dead = sum(dead_by_stage.get("write", {}).values())
    balanced = inputs == outputs + filtered + deduplicated + dead_total
    by_verdict = dict(sorted(acc["written"].items()))
    report = {
        "config": dict(config),
        "counts": {
            "inputs": inputs,
            "read": acc["records"],
            "refined": refined,
            "outputs": outputs,
            "filtered": filtered,
            "deduplicated": deduplicated,
            "dead_letters": dead_total,
        },
        "balanced": balanced,
        "balance": (f"inputs {inputs} {'==' if balanced else '!='} outputs {outputs} + "
                    f"filtered {filtered} + deduplicated {deduplicated} + "
                    f"dead_letters {dead_total}"),
        # Every refined record must be on disk or a write dead letter; a mismatch means the
        # writer lost or invented records even when the total happens to balance.
        "writes_balanced": refined == outputs + write_dead and not acc["corrupt_output"],
        "outputs_by_verdict": by_verdict,
        # Shares of the outputs; the three verdicts a reader looks for are always present.
        "verdict_shares": {v: round(n / outputs, 4) if outputs else 0.0
                           for v, n in sorted({**{v: 0 for v in MAIN_VERDICTS},
                                               **by_verdict}.items())},
        "dead_letters_by_stage": dead_by_stage,
        "filtered_by_reason": dict(sorted(acc["filtered"].items())),
        "deduplicated_by_reason": dict(sorted(acc["deduplicated"].items())),
        "replaced_by_category": _by_count(acc["categories"]),
        # Texts too long for one model reply, refined in segments (an output's `segments`).
        "segmented": {
            "outputs": acc["segmented"],
            "segments": sum(acc["segment_verdicts"].values()),
            "segments_by_verdict": dict(sorted(acc["segment_verdicts"].items())),
        },
        "verifier_failures": {
            # Why the model's attempts were not used, over the fallback outputs: every failed
            # attempt's reason, and the last attempt's (the one the fallback replaced).
            "fallbacks": by_verdict.get("fallback", 0),
            "attempts_by_reason": _by_count(acc["reasons"]),
            "last_attempt_by_reason": _by_count(acc["last_reasons"]),
        },
        "text_length": {
            "unit": "characters",
            "buckets": length_labels(),
            "inputs": list(acc["len_inputs"]),
            "outputs": list(acc["len_outputs"]),
            "mean_inputs": round(acc["chars_inputs"] / acc["records"], 1)
            if acc["records"] else None,
            "mean_outputs": round(acc["chars_outputs"] / outputs, 1) if outputs else None,
        },
        "diversity": _diversity(acc["diversity"], originals),
        "throughput": _throughput(outputs, refined, elapsed_s),
        "files": sorted(files),
        "samples": _samples(acc["samples"], originals),
        "dead_letter_samples": [item for key in sorted(acc["dead_samples"])
                                for _, item in acc["dead_samples"][key]],
    }
    if acc["corrupt_output"]:
        report["corrupt_output_records"] = acc["corrupt_output"]
    return report


def _by_count(counts: Mapping) -> dict:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _diversity(heap: Sequence, originals: Mapping[str, str]) -> dict:
    pairs = sorted((e[1], originals[e[2]][:DIVERSITY_MAX_CHARS], e[3])
                   for e in heap if e[2] in originals)
    return {"sample_size": len(pairs), "max_chars": DIVERSITY_MAX_CHARS,
            "before": diversity([b for _, b, _ in pairs]),
            "after": diversity([a for _, _, a in pairs])}


def _throughput(outputs, refined, elapsed_s):
    out = {"elapsed_s": None if elapsed_s is None else round(elapsed_s, 3)}
    if elapsed_s and elapsed_s > 0:
        out["examples_per_s"] = round(refined / elapsed_s, 3)
        out["outputs_per_s"] = round(outputs / elapsed_s, 3)
    return out


def add_runner_metrics(report: dict, tokens: Optional[int] = None,
                       timeline: Optional[dict] = None, *,
                       prompt_tokens: Optional[int] = None) -> dict:
    """Adds what only the runner's metrics know, after the run (in place; returned too): the
    generated-token count and rate, and throughput over time (see timeline.py). Exact on the
    DirectRunner and Dataflow's committed metrics, but unlike the counts above not derived
    from the data itself; hence a separate step. Token counts include retries."""
    throughput = report.setdefault("throughput", {})
    if tokens is not None:
        throughput["generated_tokens"] = tokens
        if throughput.get("elapsed_s"):
            throughput["tokens_per_s"] = round(tokens / throughput["elapsed_s"], 3)
    if prompt_tokens is not None:  # every attempt's prompt, retries included
        throughput["prompt_tokens"] = prompt_tokens
    if timeline is not None:
        report["timeline"] = timeline
    return report


def add_generated_tokens(report: dict, tokens: int) -> dict:
    return add_runner_metrics(report, tokens=tokens)


def _samples(buckets: Mapping, originals: Mapping[str, str]) -> list:
    samples = []
    for verdict in sorted(buckets):
        for _, summary in buckets[verdict]:
            rid = summary.get("id")
            before = originals.get(rid)
            after = summary.get("text") if isinstance(summary.get("text"), str) else ""
            changes = summary.get("changes")
            if isinstance(changes, str):
                try:
                    changes = json.loads(changes) if changes else []
                except ValueError:
                    pass  # shown as the string the task wrote
            sample = {"id": rid, "verdict": verdict, "before": before, "after": after,
                      "task_changes": changes,
                      "fallback_reasons": json_list(summary.get("fallback_reasons"))}
            if before is not None:
                a, b = before[:diffs.MAX_DIFF_CHARS], after[:diffs.MAX_DIFF_CHARS]
                sample["changed_spans"] = diffs.changed_spans(a, b)
                sample["truncated"] = len(before) > len(a) or len(after) > len(b)
            samples.append(sample)
    return samples
