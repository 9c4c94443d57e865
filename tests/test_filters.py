"""QualityFilter: each rule fires, and does not fire on the near miss; the Beam transform
routes every record exactly once, leaves kept records untouched, and counts every drop."""

import glob
import json
import os
import random

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter

from gdr_beam.beam import records as rec
from gdr_beam.beam.filters import (
    REASONS,
    FilterConfig,
    QualityFilter,
    duplicate_ngram_fraction,
    filter_reason,
)

_RNG = random.Random(7)
_VOCAB = sorted({"".join(_RNG.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(_RNG.randint(3, 9)))
                 for _ in range(3000)})


def prose(num_words: int, seed: int = 0) -> str:
    """Distinct random words: no repeats, no loops, no odd characters."""
    return " ".join(random.Random(seed).sample(_VOCAB, num_words))


def reason(text, config=FilterConfig(), **fields):
    result = filter_reason({"id": "x", "text": text, "verdict": "rewritten", **fields}, config)
    return None if result is None else result[0]


# --- filter_reason, rule by rule ------------------------------------------------------------

def test_clean_text_is_kept():
    assert reason("Hello.") is None
    assert reason(prose(300)) is None
    assert reason("Zoë's café costs 5 €, 東京 🙂\n\tindented\r\nline") is None


def test_rejected_verdict():
    assert reason(prose(20), verdict="rejected") == "rejected"
    for verdict in ("rewritten", "unchanged", "fallback"):
        assert reason(prose(20), verdict=verdict) is None
    assert reason(prose(20), FilterConfig(drop_rejected=False), verdict="rejected") is None
    # A rejected record is dropped as `rejected` even when its text would also fail.
    assert reason("", verdict="rejected") == "rejected"


def test_missing_text():
    assert filter_reason({"id": "x"}, FilterConfig())[0] == "missing_text"
    assert reason(None) == "missing_text"
    assert reason(5) == "missing_text"
    assert "int" in filter_reason({"id": "x", "text": 5})[1]


def test_too_short():
    assert reason("") == "too_short"
    assert reason(" \n\t ") == "too_short"
    assert reason("a") is None
    config = FilterConfig(min_chars=10, min_words=3)
    assert reason("abcd efghi", config) == "too_short"        # 9 non-space characters
    assert reason("abcd efghij", config) == "too_short"       # 10 characters but 2 words
    assert reason("ab cd efghij", config) is None             # 10 characters, 3 words
    detail = filter_reason({"text": "abcd efghi"}, config)[1]
    assert "9 non-whitespace characters" in detail and "min_chars=10" in detail


def test_too_long():
    text = prose(30)
    config = FilterConfig(max_chars=len(text))
    assert reason(text, config) is None
    assert reason(text + "s", config) == "too_long"
    assert f"max_chars={len(text)}" in filter_reason({"text": text + "s"}, config)[1]
    assert reason("a " * 60_000) == "too_long"                # the default bound, 100,000


@pytest.mark.parametrize("bad", ["\x00", "\x1b", "\x7f", "\x85", "\ufffd", "\ue000",
                                 "\U000f0001", "\U00100001"])
def test_bad_characters_each_kind(bad):
    assert reason("abc" + bad) == "bad_characters"
    assert f"U+{ord(bad):04X}" in filter_reason({"text": "abc" + bad})[1]


def test_bad_characters_ratio_near_miss():
    base = prose(60)[:198]
    assert reason(base + "\ufffd\ufffd") is None              # 2 of 200 = 1%: at the bound
    assert reason(base + "\ufffd\ufffd\ufffd") == "bad_characters"   # 3 of 201
    # Whitespace controls, format characters, symbols and emoji are not bad characters.
    assert reason("a\tb\nc\r\nd\u200be\u200df\ufeffg 🙂 ✓") is None


def test_duplicate_ngram_fraction():
    assert duplicate_ngram_fraction([], 3) == 0.0
    assert duplicate_ngram_fraction(["a", "b"], 3) == 0.0
    assert duplicate_ngram_fraction("a b c a b c".split(), 3) == pytest.approx(1 / 4)
    assert duplicate_ngram_fraction("x x x x".split(), 3) == pytest.approx(1 / 2)


def test_repetition_ngram_rule_near_miss():
    words = prose(30, seed=3).split()
    # Appending the first k words repeats k - 2 of the 28 + k trigrams.
    kept = " ".join(words + words[:14])                       # 12 / 42 = 0.286
    dropped = " ".join(words + words[:16])                    # 14 / 44 = 0.318
    assert reason(kept) is None
    assert reason(dropped) == "repetition"
    assert "of the word 3-grams repeat" in filter_reason({"text": dropped})[1]


def test_repetition_ngram_rule_needs_min_words():
    words = prose(10, seed=4).split()
    assert reason(" ".join(words + words[:9])) is None         # 19 words: too few to judge
    assert reason(" ".join(words + words)) == "repetition"     # 20 words, 8 of 18 repeat


def test_repetition_ngram_rule_leaves_quoted_history_out():
    # An e-mail thread quoting every earlier message in full is ordinary data, not a loop.
    messages = [prose(40, seed=s) for s in range(6, 10)]
    thread, quoted = [], ""
    for m in messages:
        body = m + ("\n\n" + "\n".join("> " + ln for ln in quoted.split("\n")) if quoted else "")
        thread.append(body)
        quoted = body
    text = "\n\n-----\n\n".join(reversed(thread))
    assert duplicate_ngram_fraction(text.split(), 3) > 0.3
    assert reason(text) is None
    # The same repeats unquoted are still repetition.
    assert reason(text.replace("> ", "")) == "repetition"
    # A thread whose every message is quoted leaves only its headers unquoted: they repeat,
    # the thread does not (a long held-out benchmark document was dropped for this).
    days = ["Monday", "Tuesday", "Friday", "Monday", "Sunday", "Friday", "Monday", "Tuesday"]
    thread = "\n\n".join(f"On {day}, Paul wrote:\n" + "\n".join(
        "> " + ln for ln in prose(40, seed=20 + k).split("\n")) for k, day in enumerate(days))
    assert reason(thread) is None


def test_loop_single_word():
    assert reason("the " * 10) == "repetition"
    assert "1-word unit repeated 10 times" in filter_reason({"text": "the " * 10})[1]
    assert reason("the " * 9) is None                          # 9 words < loop_min_words
    assert reason("Ha ha ha ha!") is None


def test_loop_same_sentence():
    assert reason("I am fine. " * 4) == "repetition"           # 4 repeats, 12 words
    assert reason("I am fine. " * 3) is None
    assert reason("Thanks! " * 5) is None                      # 5 words: too short a span


def test_loop_at_the_end_of_a_long_text():
    # Too small a share of the text for the n-gram rule; the loop detector catches it.
    text = prose(1000, seed=5) + " " + "and then " * 6
    assert duplicate_ngram_fraction(text.split(), 3) < 0.3
    assert reason(text) == "repetition"
    assert "2-word unit repeated 6 times" in filter_reason({"text": text})[1]


def test_loop_character_run():
    assert reason("x" * 101) == "repetition"
    assert reason("ok " + "ha" * 51) == "repetition"           # 102 characters of "ha"
    assert reason("Title\n" + "-" * 100 + "\ntext") is None     # a ruler line of 100
    assert reason("Title\n" + "=" * 101) == "repetition"
    assert reason("a" + " " * 500 + "b") is None               # whitespace runs are layout
    assert reason(prose(40) + "\n\n\n\n" + prose(40, seed=1)) is None


def test_reasons_are_short_codes():
    assert set(REASONS) == {"rejected", "missing_text", "too_short", "too_long",
                            "bad_characters", "repetition"}


@pytest.mark.parametrize("kwargs", [dict(min_chars=-1), dict(max_chars=0), dict(ngram=0),
                                    dict(max_bad_char_ratio=1.5),
                                    dict(max_duplicate_ngram_fraction=-0.1),
                                    dict(loop_min_repeats=1), dict(min_chars=10, max_chars=5)])
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        FilterConfig(**kwargs)


def test_transform_rejects_wrong_config_type():
    with pytest.raises(TypeError):
        QualityFilter({"min_chars": 3})


# --- The Beam transform ---------------------------------------------------------------------

def run_filter(records, config, out_dir):
    pipeline = beam.Pipeline(runner="DirectRunner")
    result = (pipeline | beam.Create(records, reshuffle=False) | QualityFilter(config))
    (result.kept | "KeptJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True))
     | "WriteKept" >> beam.io.WriteToText(os.path.join(out_dir, "kept")))
    (result.dropped | "DroppedJson" >> beam.Map(lambda d: d.to_json_line())
     | "WriteDropped" >> beam.io.WriteToText(os.path.join(out_dir, "dropped")))
    run = pipeline.run()
    run.wait_until_finish()

    def lines(prefix):
        return sorted(line for path in glob.glob(os.path.join(out_dir, prefix + "*"))
                      for line in open(path, encoding="utf-8").read().splitlines())
    kept = [json.loads(line) for line in lines("kept")]
    dropped = [rec.DeadLetter.from_json_line(line) for line in lines("dropped")]
    counters = {c.key.metric.name: c.committed
                for c in run.metrics().query(MetricsFilter().with_namespace("gdr"))["counters"]}
    return kept, dropped, counters


CASES = {  # id -> (text, verdict, expected reason or None)
    "k1": (prose(50, seed=10), "rewritten", None),
    "k2": ("Short but fine.", "unchanged", None),
    "k3": ("I am fine. " * 3, "fallback", None),
    "r1": (prose(50, seed=11), "rejected", "rejected"),
    "s1": ("   ", "rewritten", "too_short"),
    "l1": (prose(200, seed=12), "rewritten", "too_long"),
    "b1": ("Caf\ufffd au lait", "rewritten", "bad_characters"),
    "p1": ("the " * 40, "rewritten", "repetition"),
    "p2": ("x" * 150, "unchanged", "repetition"),
}
CONFIG = FilterConfig(max_chars=1000)


def make_records():
    return [{"id": rid, "text": text, "verdict": verdict, "task": "pii", "source": "unit",
             "score": 0.25, "tags": ["a", "b"], "meta": {"nested": [1, 2]}, "n": i}
            for i, (rid, (text, verdict, _)) in enumerate(sorted(CASES.items()))]


@pytest.fixture(scope="module")
def filtered(tmp_path_factory):
    return [run_filter(make_records(), CONFIG, str(tmp_path_factory.mktemp(f"run{i}")))
            for i in range(2)]


def test_every_input_ends_exactly_once(filtered):
    kept, dropped, _ = filtered[0]
    kept_ids = [r["id"] for r in kept]
    dropped_ids = [d.id for d in dropped]
    assert sorted(kept_ids + dropped_ids) == sorted(CASES)
    assert len(set(kept_ids + dropped_ids)) == len(CASES)


def test_reasons_and_dead_letters(filtered):
    kept, dropped, _ = filtered[0]
    assert {r["id"] for r in kept} == {rid for rid, c in CASES.items() if c[2] is None}
    inputs = {r["id"]: r for r in make_records()}
    for dead in dropped:
        assert dead.stage == "filter"
        assert dead.reason == CASES[dead.id][2]
        assert dead.detail
        # The payload is the record itself, a JSONL line a rerun can read.
        assert json.loads(dead.payload) == inputs[dead.id]


def test_kept_records_are_untouched(filtered):
    kept, _, _ = filtered[0]
    inputs = {r["id"]: r for r in make_records()}
    for record in kept:
        assert record == inputs[record["id"]]


def test_every_drop_is_counted(filtered):
    _, dropped, counters = filtered[0]
    expected = {}
    for dead in dropped:
        expected[f"gdr/filter/{dead.reason}"] = expected.get(f"gdr/filter/{dead.reason}", 0) + 1
    assert {k: v for k, v in counters.items() if k.startswith("gdr/filter/")} == expected


def test_deterministic(filtered):
    (kept_a, dropped_a, _), (kept_b, dropped_b, _) = filtered
    assert kept_a == kept_b
    assert [d.to_json_line() for d in dropped_a] == [d.to_json_line() for d in dropped_b]
