"""Long documents: splitting into segments (segmentation.py) and one output from the segments'
results (tasks/documents.py). The rewrites given here stand in for the model's; the task's own
verifier reviews each one, as in a job. The Beam path with the real model is in test_refine.py."""

import ast
import re

import pytest

from gdr_beam.engine import load_tokenizer
from gdr_beam.segmentation import split_text
from gdr_beam.tasks import get_task
from gdr_beam.tasks.documents import INCONSISTENT, LEAKED, SegmentResult, assemble


@pytest.fixture(scope="module")
def count():
    tokenizer = load_tokenizer()
    return lambda text: len(tokenizer.encode(text))


def paragraph(i: int) -> str:
    return " ".join(f"Item {i}.{j} of the survey covers the north bank of the river."
                    for j in range(5))


LETTER = "\n\n".join(["Dear Laura Chen, thank you for your letter of May."]
                     + [paragraph(i) for i in range(5)]
                     + ["With best wishes to Laura Chen and Ms. Chen, call 415-555-0134."])


def test_split_covers_the_text_in_order_at_natural_boundaries(count):
    text = "  \n" + LETTER + "\n\n"
    ranges = split_text(text, count, 90)
    assert len(ranges) > 3
    for a, b in ranges:
        assert count(text[a:b]) <= 90
        assert not text[a].isspace() and not text[b - 1].isspace()
    # Everything between segments is the separator: whitespace only, nothing lost.
    gaps = [text[:ranges[0][0]]] + [text[b:a] for (_, b), (a, _) in zip(ranges, ranges[1:])] \
        + [text[ranges[-1][1]:]]
    assert all(not g.strip() for g in gaps)
    assert "".join(c for c in text if not c.isspace()) == "".join(
        c for a, b in ranges for c in text[a:b] if not c.isspace())
    # A paragraph that fits is never cut: segments end at a sentence end or a paragraph end.
    assert all(text[b - 1] in ".," or text[b:b + 2] == "\n\n" for a, b in ranges)
    assert split_text(text, count, 10_000) == [(3, 3 + len(LETTER))]
    assert split_text(" \n ", count, 10) == []


def test_split_cuts_a_word_without_boundaries(count):
    blob = "x9Qz" * 400
    ranges = split_text(blob, count, 50)
    assert len(ranges) > 1 and "".join(blob[a:b] for a, b in ranges) == blob
    assert all(count(blob[a:b]) <= 50 for a, b in ranges)


def test_code_splits_at_top_level_blocks_and_stays_parseable(count):
    source = "\n\n\n".join(
        f"def handler_{i}(event):\n    token = 'ghp_{'A1b2C3d4' * 4}z{i:03d}'\n"
        f"    for item in event:\n        if item:\n            print(item, token)\n"
        f"    return {i}" for i in range(6)) + "\n"
    ranges = split_text(source, count, 80, kind="code")
    assert len(ranges) >= 3
    assert all(source[a:a + 4] == "def " for a, b in ranges)  # whole functions
    task = get_task("secrets")
    results = [SegmentResult(i, None, ("leaked_value",)) for i in range(len(ranges))]
    done = assemble(task, "file.py", source, ranges, results, seed=0)
    assert done.verification.verdict == "fallback"
    assert "ghp_A1b2C3d4" not in done.verification.text
    ast.parse(done.verification.text)
    # Unchanged segments come back byte for byte, separators included.
    same = [SegmentResult(i, task.review(source[a:b], source[a:b]).accepted
                          or _unchanged(source[a:b]))
            for i, (a, b) in enumerate(ranges)]
    assert assemble(task, "f", source, ranges, same, 0).verification.text.count("def ") == 6


def _unchanged(text):
    from gdr_beam.tasks.base import Verification
    return Verification("unchanged", text)


def _results(task, text, ranges, rewrite):
    """Each segment reviewed by the task, as _Verify does; rewrite(i, segment) -> the
    "model's" reply, or None for a segment whose attempts failed."""
    out = []
    for i, (a, b) in enumerate(ranges):
        reply = rewrite(i, text[a:b])
        review = task.review(text[a:b], reply) if reply is not None else None
        accepted = review.accepted if review else None
        reasons = () if accepted else ((review.reason,) if review else ("truncated",))
        out.append(SegmentResult(i, accepted, reasons, "m"))
    return out


def test_one_identity_across_segments_and_a_failed_segment_falls_back_alone(count):
    task = get_task("pii")
    ranges = split_text(LETTER, count, 90)
    last = len(ranges) - 1

    def model(i, segment):  # the first paragraph rewritten well, the last one failed
        if i == 0:
            return segment.replace("Laura Chen", "Maya Torres")
        return None if i == last else segment

    done = assemble(task, "doc-1", LETTER, ranges, _results(task, LETTER, ranges, model), 3)
    text = done.verification.text
    assert [s["verdict"] for s in done.segments] == (
        ["rewritten"] + ["unchanged"] * (last - 1) + ["fallback"])
    assert done.verification.verdict == "fallback" and done.reasons == ("truncated",)
    # The fallback of the last paragraph kept the model's fake, word by word for "Ms. Chen".
    assert text.startswith("Dear Maya Torres,")
    assert text.endswith("With best wishes to Maya Torres and Ms. Torres, call "
                         + text.rsplit("call ", 1)[1])
    assert "415-555-0134" not in text and "Chen" not in text
    # Unchanged segments and separators are byte-exact; changes are in document offsets.
    for (a, b), seg in zip(ranges, done.segments):
        if seg["verdict"] == "unchanged":
            assert LETTER[a:b] in text
    for c in done.verification.changes:
        assert LETTER[c["start"]:c["end"]].strip(" ,") in ("Laura Chen", "Chen", "415-555-0134")
    assert text.count("\n\n") == LETTER.count("\n\n")
    again = assemble(task, "doc-1", LETTER, ranges, _results(task, LETTER, ranges, model), 3)
    assert again == done  # deterministic


def test_all_segments_fall_back_to_one_identity_map(count):
    task = get_task("pii")
    ranges = split_text(LETTER, count, 90)
    done = assemble(task, "doc-2", LETTER, ranges,
                    _results(task, LETTER, ranges, lambda i, s: None), 3)
    fakes = {c["replacement"] for c in done.verification.changes
             if LETTER[c["start"]:c["end"]] == "Laura Chen"}
    assert len(fakes) == 1
    surname = fakes.pop().split()[-1]
    assert f"Ms. {surname}" in done.verification.text
    assert done.verification.text == task.fallback("doc-2", LETTER, 3).text


def test_inconsistent_and_leaking_rewrites_are_demoted(count):
    task = get_task("pii")
    ranges = split_text(LETTER, count, 90)
    last = len(ranges) - 1

    def model(i, segment):
        if i == 0:
            return segment.replace("Laura Chen", "Maya Torres")
        if i == last:  # another fake for the same person: not one identity
            return (segment.replace("Laura Chen", "Ana Lopez").replace("Chen", "Lopez")
                    .replace("415-555-0134", "312-555-0188"))
        return segment

    done = assemble(task, "doc-3", LETTER, ranges, _results(task, LETTER, ranges, model), 3)
    assert done.segments[-1]["verdict"] == "fallback" and INCONSISTENT in done.reasons
    assert "Ana Lopez" not in done.verification.text
    assert done.verification.text.count("Maya Torres") == 2

    # One person in two forms: "Laura K. Chen" -> "Ana Lopez" pins Laura and Chen, so a
    # segment calling "Laura Chen" "Maya Torres" contradicts it, and the fallback follows it.
    doc = ("Laura K. Chen wrote the report.\n\n" + paragraph(1) + "\n\nLaura Chen signed it."
           "\n\n" + paragraph(2) + "\n\nThanks to Laura Chen.")
    ranges = split_text(doc, count, 40)

    def forms(i, segment):
        if i == 0:
            return segment.replace("Laura K. Chen", "Ana Lopez")
        if "signed" in segment:
            return segment.replace("Laura Chen", "Maya Torres")
        return None if "Thanks" in segment else segment

    done = assemble(task, "doc-5", doc, ranges, _results(task, doc, ranges, forms), 3)
    assert INCONSISTENT in done.reasons and "Maya" not in done.verification.text
    assert done.verification.text.count("Ana Lopez") == 3, done.verification.text

    # A name detected in the whole document that a segment kept: that segment falls back.
    doc = "Laura Chen wrote the report.\n\n" + paragraph(1) + "\n\nLaura signed it."
    ranges = split_text(doc, count, 40)
    assert "Laura" in {s.value for s in task.spans(doc)}
    kept = assemble(task, "doc-4", doc, ranges, _results(
        task, doc, ranges, lambda i, s: s.replace("Laura Chen", "Maya Torres")), 3)
    assert not re.search(r"\bLaura\b", kept.verification.text)
    assert LEAKED in kept.reasons or kept.segments[-1]["verdict"] == "fallback"
