"""The job end to end on Beam's PortableRunner (embedded job server, LOOPBACK workers): the
portable translation of the pipeline, the path Dataflow Runner v2 takes, on a tiny input."""

import json

import tensorflow_datasets as tfds

from gdr_beam import report as report_lib
from gdr_beam.beam import records as rec
from pipelines import refine

PORTABLE = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"]


def test_job_on_the_portable_runner(tmp_path):
    rows = [{"id": "p1", "text": "Call Ana Ruiz at 415-555-0134 about the invoice."},
            {"id": "p2", "text": "The meeting moved to Thursday."}]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n",
                    encoding="utf-8")
    out = str(tmp_path / "out")
    argv = refine.parse_flags(["refine", f"--input={path}", f"--output_dir={out}",
                               "--max_new_tokens=8", "--max_retries=0", *PORTABLE])
    report = refine.run(refine.RefineJob.from_flags(), argv[1:])
    assert report is not None, "the portable job did not finish"
    assert report["balanced"] and report["writes_balanced"], report["balance"]
    assert report["counts"]["inputs"] == 3 and report["counts"]["dead_letters"] == 1
    assert report["dead_letters_by_stage"] == {"read": {"invalid_json": 1}}
    examples = list(tfds.as_numpy(
        tfds.builder_from_directory(out).as_dataset(split="train")))
    assert sorted(e["id"].decode() for e in examples) == ["p1", "p2"]
    for e in examples:
        assert e["verdict"].decode() in rec.VERDICTS
        assert "415-555-0134" not in e["text"].decode()
    assert report_lib.read_report(out)["counts"]["outputs"] == 2
