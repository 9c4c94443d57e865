"""The run report: exact counts, the conservation check, throughput and before/after samples.

Built from the pipeline's outputs themselves (the records read, the dead letters, the refined
records and the shard files as written), not from Beam metrics: metrics are best-effort on
some runners (attempted vs committed, dropped on retries), while a combine over the data is
exact on every runner. `RunReport` takes a dict of PCollections:

    {"records": read.records,             # inputs that were read (ReadRecords.records)
     "read_dead_letter": read.dead_letter, # inputs that could not be (ReadRecords.dead_letter)
     "dead_letter": later_dead,            # DeadLetters of every later stage (refine, write)
     "refined": refine.refined,            # refined records, for the samples
     "files": written.files,               # the output shards (WriteRefined.files)
     "filtered": ..., "deduplicated": ...} # optional: records dropped on purpose

and writes `report.json` and `report.html` (static: no JavaScript, every text escaped) to the
output directory. The conservation check is

    inputs = outputs + filtered + deduplicated + dead_letters

where inputs = records + read dead letters (every input example leaves ReadRecords as exactly
one of the two), dead_letters = read + later dead letters, and outputs = the examples found in
the written shards, read back from disk. The two dead-letter inputs are kept apart so that a
later stage's dead letter of stage `read` (Refine re-normalises its input) is not mistaken for
an input.
"""

from __future__ import annotations

import difflib
import hashlib
import html
import json
import re
import time
from typing import Mapping, Optional, Sequence

import apache_beam as beam
from absl import logging
from apache_beam.io.filesystems import FileSystems

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
# Diffing is quadratic in the worst case; a sample's text is cut to this many characters first.
_MAX_DIFF_CHARS = 20_000
_MAX_DETAIL_CHARS = 500
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)


# --- Diffs ------------------------------------------------------------------------------------

def diff_segments(before: str, after: str) -> list:
    """Word-level diff: [(op, text)] with op in equal / delete / insert, in reading order.

    Words, runs of whitespace and single punctuation marks are the units, so a replaced name
    shows as one deleted and one inserted word rather than scattered letters.
    """
    a, b = _TOKEN.findall(before), _TOKEN.findall(after)
    segments = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            segments.append(("equal", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            segments.append(("delete", "".join(a[i1:i2])))
        if j2 > j1:
            segments.append(("insert", "".join(b[j1:j2])))
    return segments


def changed_spans(before: str, after: str) -> list:
    """The spans of `before` that differ in `after`: [{start, end, before, after}] with
    character offsets into `before` (an insertion has start == end)."""
    spans, pos, pending = [], 0, None
    for op, text in diff_segments(before, after):
        if op == "equal":
            pending = None
            pos += len(text)
            continue
        if pending is None:
            pending = {"start": pos, "end": pos, "before": "", "after": ""}
            spans.append(pending)
        if op == "delete":
            pending["before"] += text
            pending["end"] += len(text)
            pos += len(text)
        else:
            pending["after"] += text
    return spans


# --- The combine ------------------------------------------------------------------------------

def _sort_key(rid: str) -> str:
    # A hash, not the id itself: ids are often sequential, and the sample should not be all
    # from one corner of the dataset. Deterministic, so reruns show the same sample.
    return hashlib.sha256(rid.encode("utf-8")).hexdigest()


def _tag_record(_):
    return "record", None


def _tag_dead(kind):
    def tag(dead):
        return kind, (dead.stage, dead.reason, dead.id, dead.source,
                      dead.detail[:_MAX_DETAIL_CHARS])
    return tag


def _tag_dropped(kind):
    def tag(element):
        reason = element.get("reason", "") if isinstance(element, Mapping) \
            else getattr(element, "reason", "")  # a DeadLetter of stage filter/dedup
        return kind, reason if isinstance(reason, str) else ""
    return tag


def _tag_refined(record):
    summary = {name: record.get(name) for name in ("id", "text", "verdict", "changes")}
    return "refined", (_sort_key(str(record.get("id", ""))), summary)


def _count_written(path):
    """One output shard -> ("written", verdict) per example in it, read back from disk."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from gdr_beam.beam.tfrecord import read_frames  # pylint: disable=import-outside-toplevel
    with FileSystems.open(path) as f:
        for frame in read_frames(f):
            if frame.error:  # our own shard is corrupt: the run did not write what it claims
                yield "corrupt_output", path
                if frame.fatal:
                    return
                continue
            feature = tf.train.Example.FromString(frame.data).features.feature.get("verdict")
            verdict = feature.bytes_list.value[0].decode("utf-8") \
                if feature is not None and feature.bytes_list.value else ""
            yield "written", verdict


class _ReportFn(beam.CombineFn):
    """Tagged (kind, value) pairs -> one dict of counts plus bounded, deterministic samples."""

    def __init__(self, samples_per_verdict: int, dead_samples_per_reason: int):
        super().__init__()
        self._k = samples_per_verdict
        self._dead_k = dead_samples_per_reason

    def create_accumulator(self):
        return {"records": 0, "read_dead": 0, "written": {}, "refined": {}, "dead": {}, "filtered": {}, "deduplicated": {}, "corrupt_output": 0,
                "samples": {}, "dead_samples": {}}

    def add_input(self, acc, element):
        kind, value = element
        if kind == "record":
            acc["records"] += 1
        elif kind == "written":
            _inc(acc["written"], value)
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
            sort_key, summary = value
            verdict = str(summary.get("verdict") or "")
            _inc(acc["refined"], verdict)
            _keep_smallest(acc["samples"], verdict, (sort_key, summary), self._k)
        else:
            raise ValueError(f"unknown report element kind {kind!r}")
        return acc

    def merge_accumulators(self, accumulators):
        out = self.create_accumulator()
        for acc in accumulators:
            for name in ("records", "read_dead", "corrupt_output"):
                out[name] += acc[name]
            for name in ("written", "refined", "dead", "filtered", "deduplicated"):
                for key, n in acc[name].items():
                    _inc(out[name], key, n)
            for name, k in (("samples", self._k), ("dead_samples", self._dead_k)):
                for key, items in acc[name].items():
                    for item in items:
                        _keep_smallest(out[name], key, item, k)
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


# --- Assembling the report --------------------------------------------------------------------

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
        "outputs_by_verdict": dict(sorted(acc["written"].items())),
        "dead_letters_by_stage": dead_by_stage,
        "filtered_by_reason": dict(sorted(acc["filtered"].items())),
        "deduplicated_by_reason": dict(sorted(acc["deduplicated"].items())),
        "throughput": _throughput(outputs, refined, elapsed_s),
        "files": sorted(files),
        "samples": _samples(acc["samples"], originals),
        "dead_letter_samples": [item for key in sorted(acc["dead_samples"])
                                for _, item in acc["dead_samples"][key]],
    }
    if acc["corrupt_output"]:
        report["corrupt_output_records"] = acc["corrupt_output"]
    return report


def _throughput(outputs, refined, elapsed_s):
    out = {"elapsed_s": None if elapsed_s is None else round(elapsed_s, 3)}
    if elapsed_s and elapsed_s > 0:
        out["examples_per_s"] = round(refined / elapsed_s, 3)
        out["outputs_per_s"] = round(outputs / elapsed_s, 3)
    return out


def add_generated_tokens(report: dict, tokens: int) -> dict:
    """Adds the generated-token count and rate to a report (in place; returned too).

    Token counts live in the engine, not in the records, so they come from the runner's
    metrics after the run: exact on the DirectRunner and Dataflow's committed metrics, but
    unlike the counts above not derived from the data itself; hence a separate step.
    """
    throughput = report.setdefault("throughput", {})
    throughput["generated_tokens"] = tokens
    if throughput.get("elapsed_s"):
        throughput["tokens_per_s"] = round(tokens / throughput["elapsed_s"], 3)
    return report


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
                      "task_changes": changes}
            if before is not None:
                a, b = before[:_MAX_DIFF_CHARS], after[:_MAX_DIFF_CHARS]
                sample["changed_spans"] = changed_spans(a, b)
                sample["truncated"] = len(before) > len(a) or len(after) > len(b)
            samples.append(sample)
    return samples


class _Finish(beam.DoFn):
    def __init__(self, output_dir: str, config: Mapping, started_at: Optional[float]):
        self._output_dir = output_dir
        self._config = dict(config)
        self._started_at = started_at

    def process(self, acc, originals, files):
        elapsed = None if self._started_at is None else time.time() - self._started_at
        report = build_report(acc, originals, config=self._config, files=files,
                              elapsed_s=elapsed)
        write_report(report, self._output_dir)
        yield report


class RunReport(beam.PTransform):
    """dict of PCollections (see the module docstring) -> the report dict, also written.

    `config` goes into the report as is (task, model, flags...). `started_at` (time.time() when
    the job was launched) makes the throughput figures: they span the whole job, start-up,
    model loading and compilation included, since that is what a run costs.
    """

    def __init__(self, output_dir: str, *, config: Optional[Mapping] = None,
                 started_at: Optional[float] = None, samples_per_verdict: int = 5,
                 dead_samples_per_reason: int = 3):
        super().__init__()
        self._output_dir = output_dir.rstrip("/")
        self._config = dict(config or {})
        self._started_at = started_at
        self._k = samples_per_verdict
        self._dead_k = dead_samples_per_reason

    def expand(self, pcolls):
        unknown = set(pcolls) - {"records", "read_dead_letter", "dead_letter", "refined",
                                 "files", "filtered", "deduplicated"}
        if unknown:
            raise ValueError(f"RunReport: unknown inputs {sorted(unknown)}")
        missing = {"records", "read_dead_letter", "dead_letter", "files"} - set(pcolls)
        if missing:
            raise ValueError(f"RunReport: missing inputs {sorted(missing)}")
        tagged = [pcolls["records"] | "TagRecords" >> beam.Map(_tag_record),
                  pcolls["read_dead_letter"] | "TagReadDead" >> beam.Map(_tag_dead("read_dead")),
                  pcolls["dead_letter"] | "TagDead" >> beam.Map(_tag_dead("dead")),
                  pcolls["files"] | "CountWritten" >> beam.FlatMap(_count_written)]
        if "refined" in pcolls:
            tagged.append(pcolls["refined"] | "TagRefined" >> beam.Map(_tag_refined))
        for kind in ("filtered", "deduplicated"):
            if kind in pcolls:
                tagged.append(pcolls[kind] | f"Tag_{kind}" >> beam.Map(_tag_dropped(kind)))
        acc = (tagged | "Merge" >> beam.Flatten()
               | "Combine" >> beam.CombineGlobally(_ReportFn(self._k, self._dead_k)))
        # The originals of the sampled records only: a side-input filter, not a join, so the
        # full dataset is never shuffled for a report that shows a few dozen examples.
        sample_ids = acc | "SampleIds" >> beam.Map(
            lambda a: frozenset(s["id"] for items in a["samples"].values() for _, s in items))
        originals = (pcolls["records"]
                     | "PickOriginals" >> beam.Filter(lambda r, ids: r["id"] in ids,
                                                      ids=beam.pvalue.AsSingleton(sample_ids))
                     | "OriginalText" >> beam.Map(lambda r: (r["id"], r["text"]))
                     | "Originals" >> beam.combiners.ToDict())
        files = pcolls["files"] | "FileList" >> beam.combiners.ToList()
        return acc | "Write" >> beam.ParDo(
            _Finish(self._output_dir, self._config, self._started_at),
            originals=beam.pvalue.AsSingleton(originals), files=beam.pvalue.AsSingleton(files))


# --- Files ------------------------------------------------------------------------------------

def write_report(report: Mapping, output_dir: str) -> tuple:
    """report.json + report.html in output_dir (local or any Beam filesystem)."""
    json_path = FileSystems.join(output_dir, REPORT_JSON)
    html_path = FileSystems.join(output_dir, REPORT_HTML)
    for path, data in ((json_path, json.dumps(report, indent=2, sort_keys=True,
                                              ensure_ascii=False) + "\n"),
                       (html_path, render_html(report))):
        with FileSystems.create(path) as f:
            f.write(data.encode("utf-8"))
    logging.info("Run report: %s (%s)", json_path, report.get("balance"))
    return json_path, html_path


def read_report(output_dir: str) -> dict:
    with FileSystems.open(FileSystems.join(output_dir, REPORT_JSON)) as f:
        return json.loads(f.read().decode("utf-8"))


_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 70em; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
.ok { color: #070; } .bad { color: #b00; font-weight: bold; }
del { background: #fdd; text-decoration: line-through; }
ins { background: #dfd; text-decoration: none; }
.text { white-space: pre-wrap; font-family: monospace; }
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _table(rows: Sequence, header: Sequence[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _diff_html(before: str, after: str) -> tuple:
    """(before with deletions marked, after with insertions marked), escaped."""
    left, right = [], []
    for op, text in diff_segments(before, after):
        if op == "equal":
            left.append(_e(text))
            right.append(_e(text))
        elif op == "delete":
            left.append(f"<del>{_e(text)}</del>")
        else:
            right.append(f"<ins>{_e(text)}</ins>")
    return "".join(left), "".join(right)


def render_html(report: Mapping) -> str:
    """A static page: counts, the balance check, throughput, dead letters, diffs. No JS."""
    counts = report.get("counts", {})
    ok = report.get("balanced")
    parts = ["<!DOCTYPE html><html><head><meta charset=\"utf-8\">",
             f"<title>GDR run report: {_e(report.get('config', {}).get('name', ''))}</title>",
             f"<style>{_STYLE}</style></head><body>",
             "<h1>GDR run report</h1>",
             _table(sorted(report.get("config", {}).items()), ["setting", "value"]),
             f"<p class=\"{'ok' if ok else 'bad'}\">{'Balanced' if ok else 'NOT balanced'}: "
             f"{_e(report.get('balance', ''))}</p>",
             "<h2>Counts</h2>", _table(list(counts.items()), ["what", "examples"]),
             "<h2>Outputs by verdict</h2>",
             _table(list(report.get("outputs_by_verdict", {}).items()), ["verdict", "examples"]),
             "<h2>Dead letters</h2>",
             _table([(stage, reason, n)
                     for stage, reasons in report.get("dead_letters_by_stage", {}).items()
                     for reason, n in reasons.items()], ["stage", "reason", "examples"]),
             "<h2>Throughput</h2>",
             _table(list(report.get("throughput", {}).items()), ["measure", "value"])]
    dead_samples = report.get("dead_letter_samples", [])
    if dead_samples:
        parts += ["<h2>Dead letter samples</h2>",
                  _table([(d["stage"], d["reason"], d["id"], d["source"], d["detail"])
                          for d in dead_samples],
                         ["stage", "reason", "id", "source", "detail"])]
    parts.append("<h2>Samples</h2>")
    for sample in report.get("samples", []):
        before, after = sample.get("before"), sample.get("after") or ""
        if before is None:
            left, right = "<em>(original not found)</em>", _e(after)
        else:
            left, right = _diff_html(before[:_MAX_DIFF_CHARS], after[:_MAX_DIFF_CHARS])
        parts.append(f"<h3>{_e(sample.get('id'))} — {_e(sample.get('verdict'))}</h3>"
                     "<table><tr><th>before</th><th>after</th></tr>"
                     f"<tr><td class=\"text\">{left}</td><td class=\"text\">{right}</td></tr>"
                     "</table>")
    files = report.get("files", [])
    if files:
        parts += ["<h2>Output files</h2><ul>"] + [f"<li>{_e(p)}</li>" for p in files] + ["</ul>"]
    parts.append("</body></html>\n")
    return "\n".join(parts)
