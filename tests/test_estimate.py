"""--estimate: the input survey (count and sample without reading it all) and one real, tiny
estimate run with the embedded model."""

import gzip
import json
import os

import pytest

from gdr_beam.beam import survey
from gdr_beam.beam.tfrecord import write_frame
from pipelines import estimate, refine


def _jsonl(path, n, blank_every=0):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"r{i}", "text": "word " * (i % 20 + 1)}) + "\n")
            if blank_every and i % blank_every == 0:
                f.write("\n")  # blank lines are not records
    return str(path)


def test_survey_counts_exactly_when_the_scan_covers_the_input(tmp_path):
    a = _jsonl(tmp_path / "a.jsonl", 300, blank_every=7)
    _jsonl(tmp_path / "b.jsonl", 200)
    s = survey.survey(str(tmp_path / "*.jsonl"), "jsonl", 10, seed=1)
    assert (s.files, s.records, s.records_exact) == (2, 500, True)
    assert s.bytes == os.path.getsize(a) + os.path.getsize(tmp_path / "b.jsonl")
    assert len(s.sample) == 10 and len(set(s.sample)) == 10
    assert all(json.loads(line)["id"].startswith("r") for line in s.sample)
    # Seeded: the same seed draws the same sample, another seed another one.
    assert survey.survey(a, "jsonl", 10, seed=1).sample == \
        survey.survey(a, "jsonl", 10, seed=1).sample
    assert survey.survey(a, "jsonl", 10, seed=1).sample != \
        survey.survey(a, "jsonl", 10, seed=2).sample


def test_survey_extrapolates_and_samples_the_whole_file(tmp_path):
    path = _jsonl(tmp_path / "big.jsonl", 20000)
    s = survey.survey(path, "jsonl", 20, seed=0, max_scan_bytes=64 << 10)
    assert not s.records_exact and "estimated" in s.how
    assert abs(s.records - 20000) / 20000 < 0.1
    ids = sorted(int(json.loads(line)["id"][1:]) for line in s.sample)
    assert len(ids) == 20 and ids[-1] > 10000  # not only the scanned head of the file
    # gzip: no seeking, so the sample comes from the records scanned, and says so.
    with gzip.open(str(path) + ".gz", "wb") as g, open(path, "rb") as f:
        g.write(f.read())
    z = survey.survey(str(path) + ".gz", "jsonl", 5, max_scan_bytes=16 << 10)
    assert not z.records_exact and "not read" in z.sample_how and len(z.sample) == 5


def test_survey_tfrecord(tmp_path):
    path = tmp_path / "in.tfrecord"
    with open(path, "wb") as f:
        for i in range(50):
            write_frame(f, f"record {i}".encode())
    s = survey.survey(str(path), "tfrecord", 5, seed=3)
    assert (s.records, s.records_exact, len(s.sample)) == (50, True, 5)
    assert all(p.startswith(b"record ") for p in s.sample)


def test_estimate_on_the_sample_with_the_real_model(tmp_path):
    path = _jsonl(tmp_path / "in.jsonl", 40)
    out = str(tmp_path / "out")
    refine.parse_flags(["refine", f"--input={path}", f"--output_dir={out}",
                        "--max_new_tokens=8", "--max_retries=0", "--estimate=2"])
    job = refine.RefineJob.from_flags()
    prices = estimate.load_prices()
    est = estimate.estimate(job, 2, refine, prices=prices)
    assert est["input"]["records"] == 40 and est["input"]["records_exact"]
    assert est["sample"]["records"] == 2
    assert sum(est["sample"]["outputs_by_verdict"].values()) == est["sample"]["outputs"]
    per = est["per_record"]
    assert 0 < per["generated_tokens"] <= 8 and per["prompt_tokens"] > 50
    assert est["expected"]["generated_tokens"] == pytest.approx(per["generated_tokens"] * 40,
                                                                abs=1)
    local, *accelerators = est["machines"]
    assert local["generated_tokens_per_s"] > 0 and local["cost_usd"] is None
    assert len(accelerators) == len(prices["machines"]) >= 2
    for m, row in zip(accelerators, prices["machines"]):
        hours = est["expected"]["generated_tokens"] / row["generated_tokens_per_s"] / 3600
        assert m["worker_hours"] == pytest.approx(hours, rel=0.01)
        assert m["cost_usd"] == pytest.approx(hours * row["usd_per_worker_hour"], rel=0.01)
    text = estimate.render(est)
    assert "APPROXIMATE" in text and prices["as_of"] in text and "assumed" in text
    path = estimate.write_estimate(est, out)
    with open(path, encoding="utf-8") as f:
        assert json.load(f)["input"]["records"] == 40
