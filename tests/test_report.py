"""The run report (gdr_beam/report/): aggregates recomputed independently from the files the
pipeline wrote, the HTML's content, the pieces (diversity, timeline, charts). No model: the
refined records are built here, so the expected numbers are known without the pipeline."""

import glob
import html.parser
import json
import os
import random

import apache_beam as beam
import pytest
import tensorflow as tf

from gdr_beam import report as report_lib
from gdr_beam.beam import io as gio
from gdr_beam.beam import records as rec
from gdr_beam.report import aggregates, diversity, timeline

CATEGORIES = ("person", "email", "phone")
REASONS = ("leaked_value", "truncated", "content_lost", "new_sensitive")


def _dataset(n=40, seed=0):
    """Inputs, their refined records (every verdict, changes, fallback reasons), dead letters
    and drops, seeded."""
    rng = random.Random(seed)
    words = "alpha beta gamma delta river stone cloud maple orbit quartz".split()
    records, refined, dropped = [], [], []
    for i in range(n):
        text = " ".join(rng.choice(words) for _ in range(rng.randrange(3, 400)))
        records.append({"id": f"r{i:03d}", "text": text})
        verdict = ("rewritten", "fallback", "unchanged")[i % 3]
        changes = [{"start": 0, "end": 1, "category": rng.choice(CATEGORIES), "replacement": "x"}
                   for _ in range(rng.randrange(0, 3))] if verdict != "unchanged" else []
        reasons = [rng.choice(REASONS) for _ in range(2)] if verdict == "fallback" else []
        out = dict(id=f"r{i:03d}", text=text.replace("alpha", "omega"), verdict=verdict,
                   task="pii", model="m", original_sha256=rec.text_sha256(text),
                   changes=json.dumps(changes), fallback_reasons=json.dumps(reasons))
        if i % 13 == 12:
            dropped.append(rec.DeadLetter(id=out["id"], stage="filter", reason="too_short",
                                          payload=b"{}"))
        elif i == 5:
            later_dead = [rec.DeadLetter(id=out["id"], stage="prompt", reason="too_long",
                                         payload=b"{}")]
        else:
            refined.append(out)
    read_dead = [rec.DeadLetter(id="", stage="read", reason="invalid_json", payload=b"{")] * 3
    return records, refined, dropped, read_dead, later_dead


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    records, refined, dropped, read_dead, later_dead = _dataset()
    out = str(tmp_path_factory.mktemp("report") / "out")
    with beam.Pipeline(runner="DirectRunner") as p:
        kept = p | "Refined" >> beam.Create(refined)
        written = kept | gio.WriteRefined(out, num_shards=3)
        _ = ({"records": p | "Records" >> beam.Create(records),
              "read_dead_letter": p | "ReadDead" >> beam.Create(read_dead),
              "dead_letter": p | "LaterDead" >> beam.Create(later_dead),
              "filtered": p | "Dropped" >> beam.Create(dropped),
              "refined": kept, "files": written.files}
             | report_lib.RunReport(out, config={"task": "pii", "name": "refined"}))
    return out, records


def _written(out):
    """The outputs as written, read back with TensorFlow's own reader (not the report's)."""
    rows = []
    for path in sorted(glob.glob(os.path.join(out, "refined-train.tfrecord-*"))):
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
            feature = tf.train.Example.FromString(raw).features.feature
            rows.append({k: feature[k].bytes_list.value[0].decode() if
                         feature[k].bytes_list.value else "" for k in feature})
    return rows


def test_report_numbers_equal_counts_from_the_output_files(report_run):
    out, records = report_run
    report = report_lib.read_report(out)
    rows = _written(out)
    verdicts, categories, reasons, last = {}, {}, {}, {}
    for row in rows:
        verdicts[row["verdict"]] = verdicts.get(row["verdict"], 0) + 1
        for change in json.loads(row["changes"]):
            categories[change["category"]] = categories.get(change["category"], 0) + 1
        failed = json.loads(row["fallback_reasons"])
        for r in failed:
            reasons[r] = reasons.get(r, 0) + 1
        if failed:
            last[failed[-1]] = last.get(failed[-1], 0) + 1
    assert report["counts"]["outputs"] == len(rows)
    assert report["outputs_by_verdict"] == verdicts
    assert report["verdict_shares"] == {v: round(n / len(rows), 4) for v, n in verdicts.items()}
    assert report["replaced_by_category"] == categories
    assert report["verifier_failures"]["attempts_by_reason"] == reasons
    assert report["verifier_failures"]["last_attempt_by_reason"] == last
    assert report["verifier_failures"]["fallbacks"] == verdicts["fallback"]
    lengths = report["text_length"]
    edges = aggregates.LENGTH_EDGES
    for key, texts in (("inputs", [r["text"] for r in records]),
                       ("outputs", [r["text"] for r in rows])):
        want = [sum(1 for t in texts if edges[i] <= len(t) <
                    (edges[i + 1] if i + 1 < len(edges) else float("inf")))
                for i in range(len(edges))]
        assert lengths[key] == want, key
    assert lengths["mean_outputs"] == round(sum(len(r["text"]) for r in rows) / len(rows), 1)
    dead = 3 + 1
    assert report["counts"]["dead_letters"] == dead and report["counts"]["filtered"] == 3
    assert report["counts"]["inputs"] == len(records) + 3
    assert report["balanced"], report["balance"]
    # The diversity sample: every output here fits in it, so it equals the whole set.
    by_id = {r["id"]: r["text"] for r in records}
    div = report["diversity"]
    assert div["sample_size"] == len(rows)
    ids = sorted(rows, key=lambda r: aggregates.sort_key(r["id"]))
    assert div["after"] == diversity.diversity([r["text"] for r in ids])
    assert div["before"] == diversity.diversity([by_id[r["id"]] for r in ids])


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.text, self.tags, self.charts, self.scripts = [], [], [], []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "data-chart" in attrs:
            self.charts.append(attrs["data-chart"])
        if tag == "script":
            self._in_script = True
            self.scripts.append(attrs)

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if not self._in_script:
            self.text.append(data)


def test_html_parses_and_shows_the_headline_and_the_charts_data(report_run):
    out, _ = report_run
    report = report_lib.read_report(out)
    with open(os.path.join(out, "report.html"), encoding="utf-8") as f:
        page = f.read()
    parser = _Page()
    parser.feed(page)
    parser.close()
    text = " ".join(parser.text)
    counts = report["counts"]
    # Headline first: inputs -> outputs, the balance, before any chart or sample.
    headline = f"{counts['inputs']} → {counts['outputs']}"
    assert headline in text and "Balanced" in text
    assert text.index(headline) < text.index("Outputs by verdict") < text.index("Run settings")
    for verdict, share in report["verdict_shares"].items():
        assert f"{100 * share:.1f}%" in text, verdict
    assert parser.charts == ["verdicts", "categories", "failure_reasons", "text_length",
                             "diversity", "throughput", "dead_letters"]
    assert "svg" in parser.tags
    # Each chart's numbers are in the page as text.
    for name, n in {**report["outputs_by_verdict"], **report["replaced_by_category"],
                    **report["verifier_failures"]["attempts_by_reason"]}.items():
        assert f"{name}: {n}" in page or (name in text and str(n) in text), name
    for value in report["text_length"]["outputs"]:
        assert str(value) in text
    for side in ("before", "after"):
        for metric, value in report["diversity"][side].items():
            assert f"{metric} {side}: {value:.4g}" in page, (metric, side)
    # Offline: no external resource, only our own inline script.
    assert all("src" not in attrs for attrs in parser.scripts)
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    # The same page again from report.json alone.
    assert report_lib.render_html(report) == page


def test_html_escapes_everything():
    before = "Call Maria at 555-0134 <now>."
    after = "Call Jane Doe at 555-0000 <now>."
    page = report_lib.render_html({
        "config": {"name": "<script>alert(1)</script>"}, "balanced": True,
        "counts": {"inputs": 1}, "outputs_by_verdict": {"<img src=x>": 1},
        "replaced_by_category": {"</svg><script>": 2}, "samples": [
            {"id": "<b>x</b>", "verdict": "rewritten", "before": before, "after": after,
             "fallback_reasons": ["<i>r</i>"]}]})
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "<img src=x>" not in page and "</svg><script>" not in page
    assert "<del>Maria</del>" in page and "<ins>Jane Doe</ins>" in page
    assert "&lt;now&gt;" in page and "<b>x</b>" not in page and "<i>r</i>" not in page


def test_diversity_measures():
    same = ["the cat sat on the mat today"] * 4
    varied = ["the cat sat on the mat", "a dog ran in the park",
              "rain fell over the quiet town", "we met at noon for tea"]
    assert diversity.distinct_n(same, 1) == round(6 / 28, 4)
    assert diversity.distinct_n(varied, 2) > diversity.distinct_n(same, 2)
    assert diversity.near_duplicate_rate(same) == 1.0
    assert diversity.near_duplicate_rate(varied) == 0.0
    assert diversity.near_duplicate_rate(varied + [varied[0] + " again"]) == 0.4
    assert diversity.gzip_ratio(same) < diversity.gzip_ratio(varied)


def test_timeline_from_counters():
    names = {f"{timeline.PREFIX}examples_5s_00000": 4, f"{timeline.PREFIX}tokens_5s_00000": 40,
             f"{timeline.PREFIX}examples_5s_00002": 2, f"{timeline.PREFIX}tokens_5s_00002": 30,
             f"{timeline.PREFIX}examples_60s_00000": 6, f"{timeline.PREFIX}tokens_60s_00000": 70,
             "gdr/generate/tokens_out": 70}
    short = timeline.from_counters(names, elapsed_s=14.0)
    assert short["bucket_s"] == 5
    assert [(p["t_s"], p["examples"], p["tokens"]) for p in short["points"]] == [
        (0, 4, 40), (5, 0, 0), (10, 2, 30)]  # the empty bucket shows as a stall
    assert short["points"][2]["tokens_per_s"] == 6.0
    # A run longer than the 5 s horizon falls back to minutes.
    assert timeline.from_counters(names, elapsed_s=400.0)["bucket_s"] == 60
    assert timeline.from_counters({}, 3.0) == {"bucket_s": None, "points": []}
