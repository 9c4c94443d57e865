"""Dedup: normalisation, exact dedup, MinHash-LSH near dedup on a planted corpus (precision
and recall measured), the pairwise decision rule on chains, bucket capping, LSH statistics."""

import glob
import json
import os
import random

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.metrics.metric import MetricsFilter

from gdr_beam.beam import records as rec
from gdr_beam.beam.dedup import (
    Deduplicate,
    ExactDedup,
    NearDedup,
    NearDedupConfig,
    band_keys,
    bucket_pairs,
    candidate_probability,
    jaccard,
    minhash_permutations,
    minhash_signature,
    normalize_for_dedup,
    shingle_hashes,
    shingles,
)


def run(records, transform, out_dir):
    """records | transform on the DirectRunner -> (kept dicts, DeadLetters, gdr counters)."""
    pipeline = beam.Pipeline(runner="DirectRunner")
    result = pipeline | beam.Create(records, reshuffle=False) | transform
    (result.kept | "KeptJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True))
     | "WriteKept" >> beam.io.WriteToText(os.path.join(out_dir, "kept")))
    (result.dropped | "DroppedJson" >> beam.Map(lambda d: d.to_json_line())
     | "WriteDropped" >> beam.io.WriteToText(os.path.join(out_dir, "dropped")))
    outcome = pipeline.run()
    outcome.wait_until_finish()

    def lines(prefix):
        return sorted(line for path in glob.glob(os.path.join(out_dir, prefix + "*"))
                      for line in open(path, encoding="utf-8").read().splitlines())
    counters = {c.key.metric.name: c.committed for c in
                outcome.metrics().query(MetricsFilter().with_namespace("gdr"))["counters"]}
    return ([json.loads(line) for line in lines("kept")],
            [rec.DeadLetter.from_json_line(line) for line in lines("dropped")], counters)


def assert_partition(records, kept, dropped):
    """Every input ends as exactly one kept record or one dead letter."""
    ids = sorted(r["id"] for r in records)
    assert sorted([r["id"] for r in kept] + [d.id for d in dropped]) == ids
    assert len(set(ids)) == len(ids)


def test_jaccard():
    a = np.array([1, 2, 3, 4], dtype="<u8")
    b = np.array([3, 4, 5, 6], dtype="<u8")
    assert jaccard(a, b) == pytest.approx(2 / 6)
    assert jaccard(a, a) == 1.0
    assert jaccard(a, np.array([], dtype="<u8")) == 0.0
    assert jaccard(np.array([], dtype="<u8"), np.array([], dtype="<u8")) == 0.0


# --- Normalisation and shingles -------------------------------------------------------------

def test_normalize_for_dedup():
    assert normalize_for_dedup("  Hello,\n\tWORLD!  ") == "hello, world"
    assert normalize_for_dedup("\u201cHello world.\u201d") == "hello world"
    assert normalize_for_dedup("Ｈｅｌｌｏ\u00a0ｗｏｒｌｄ") == "hello world"    # NFKC
    assert normalize_for_dedup("STRASSE") == normalize_for_dedup("Straße")  # casefold
    assert normalize_for_dedup("ﬁne") == "fine"                            # ligature
    # Kept apart on purpose: inner punctuation, accents, digits.
    assert normalize_for_dedup("hello, world") != normalize_for_dedup("hello world")
    assert normalize_for_dedup("café") != normalize_for_dedup("cafe")
    assert normalize_for_dedup("5 apples") != normalize_for_dedup("five apples")
    assert normalize_for_dedup("...") == ""


def test_shingles():
    assert shingles("a b c d e f", 5) == ["a b c d e", "b c d e f"]
    assert shingles("Hello, World!", 5) == ["hello world"]   # fewer words than n: the whole
    assert shingles("  ... - ", 5) == []
    assert shingles("a - b, c", 2) == ["a b", "b c"]          # punctuation-only tokens go
    hashes = shingle_hashes("a b c d e f a b c d e", 5)
    assert len(hashes) == 6 and list(hashes) == sorted(hashes)  # a set: "a b c d e" once


# --- LSH ------------------------------------------------------------------------------------

def test_candidate_probability_formula():
    assert candidate_probability(0.8, 16, 8) == pytest.approx(0.9470, abs=1e-4)
    assert candidate_probability(0.5, 16, 8) == pytest.approx(0.0608, abs=1e-4)
    assert candidate_probability(1.0, 16, 8) == 1.0
    assert candidate_probability(0.0, 16, 8) == 0.0
    values = [candidate_probability(s / 20, 16, 8) for s in range(21)]
    assert values == sorted(values)
    assert NearDedupConfig().candidate_probability(0.85) > 0.99


def _pair_at(similarity_num: int, common: int, rng: np.random.Generator):
    """Two hash sets of exact Jaccard common / (common + 2 * d)."""
    d = similarity_num
    values = np.unique(rng.integers(0, 2 ** 63, size=common + 2 * d, dtype=np.int64))
    assert len(values) == common + 2 * d    # 64-bit draws: a repeat is ~1e-15 likely
    values = rng.permutation(values).astype("<u8")
    a = np.sort(values[:common + d])
    b = np.sort(np.concatenate([values[:common], values[common + d:]]))
    return a, b


@pytest.mark.parametrize("bands,rows,common,d", [
    (16, 8, 80, 10),    # s = 0.8 with the defaults: 0.947
    (16, 8, 70, 15),    # s = 0.7: 0.613
    (4, 4, 60, 30),     # s = 0.5: 0.228
    (4, 4, 70, 15),     # s = 0.7: 0.666
])
def test_lsh_candidate_rate_matches_theory(bands, rows, common, d):
    config = NearDedupConfig(num_perm=bands * rows, bands=bands, rows=rows)
    permutations = minhash_permutations(config)
    rng = np.random.default_rng(bands * 1000 + common)
    similarity = common / (common + 2 * d)
    trials, hits = 600, 0
    for _ in range(trials):
        a, b = _pair_at(d, common, rng)
        assert jaccard(a, b) == pytest.approx(similarity)
        keys_a = band_keys(minhash_signature(a, config, permutations), bands, rows)
        keys_b = band_keys(minhash_signature(b, config, permutations), bands, rows)
        hits += any(x == y for x, y in zip(keys_a, keys_b))
    expected = candidate_probability(similarity, bands, rows)
    sd = (expected * (1 - expected) / trials) ** 0.5
    print(f"s={similarity:.2f} b={bands} r={rows}: candidate rate {hits / trials:.3f}, "
          f"theory {expected:.3f}")
    assert abs(hits / trials - expected) < 4.5 * sd + 0.005


def test_signatures_are_seeded_and_deterministic():
    config = NearDedupConfig()
    hashes = shingle_hashes("the quick brown fox jumps over the lazy dog again", 5)
    one = minhash_signature(hashes, config)
    assert np.array_equal(one, minhash_signature(hashes, config, minhash_permutations(config)))
    assert not np.array_equal(one, minhash_signature(hashes, NearDedupConfig(seed=2)))
    assert band_keys(one, 16, 8) == band_keys(one.copy(), 16, 8)


def test_bucket_pairs_cap():
    ids = [f"id{i}" for i in range(10)]
    pairs, skipped = bucket_pairs(list(reversed(ids)), 10)
    assert len(pairs) == 45 and skipped == 0
    assert all(a < b for a, b in pairs)
    pairs, skipped = bucket_pairs(ids, 4)
    head = [(a, b) for a in ids[:4] for b in ids[:4] if a < b]
    assert sorted(pairs) == sorted(head + [("id0", x) for x in ids[4:]])
    assert skipped == 45 - 12


@pytest.mark.parametrize("kwargs", [dict(bands=16, rows=4), dict(num_perm=0, bands=0, rows=8),
                                    dict(threshold=0.0), dict(threshold=1.5),
                                    dict(max_bucket_size=1), dict(ngram=0)])
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        NearDedupConfig(**kwargs)


def test_transforms_reject_wrong_config_type():
    with pytest.raises(TypeError):
        NearDedup({"threshold": 0.9})
    with pytest.raises(TypeError):
        Deduplicate(near=0.9)


# --- A planted corpus -----------------------------------------------------------------------

VOCAB = sorted({"".join(random.Random(i).choice("abcdefghijklmnopqrstuvwxyz")
                        for _ in range(random.Random(-i).randint(3, 10))) for i in range(20000)})


def word_jaccard(a: str, b: str, n: int = 5) -> float:
    """Independent of the module: lower-case whitespace words, n-gram sets."""
    def grams(t):
        w = t.lower().split()
        return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}
    ga, gb = grams(a), grams(b)
    return len(ga & gb) / len(ga | gb)


def edit(words, k, rng):
    """k single-word edits (substitute / delete / insert) at positions >= 6 apart."""
    words = list(words)
    positions = sorted(rng.sample(range(0, len(words) - 1, 6), k), reverse=True)
    for pos in positions:
        op = rng.choice("sdi")
        if op == "s":
            words[pos] = rng.choice(VOCAB)
        elif op == "d":
            del words[pos]
        else:
            words.insert(pos, rng.choice(VOCAB))
    return words


def surface_variant(text, rng):
    """The same text for exact dedup: case, whitespace and edge punctuation changes."""
    words = text.split()
    choice = rng.randrange(3)
    if choice == 0:
        return text.upper() + "."
    if choice == 1:
        return "  " + "\n".join(" ".join(words[i:i + 7]) for i in range(0, len(words), 7)) + " "
    return "\u201c" + "  ".join(w.capitalize() for w in words) + "!\u201d"


def planted_corpus(seed=0):
    """(records, group of each id, kind of each id). A group is one original text and its
    planted duplicates; within a group every pair has Jaccard >= 0.85 (a clique, so one kept
    per group is the unambiguous ideal), across groups similarity is low, and decoy pairs sit
    at ~0.5 and ~0.7 Jaccard: near each other, below the 0.8 threshold, never to be removed."""
    rng = random.Random(seed)
    texts = []  # (text, group, kind)

    def paragraph():
        return [rng.choice(VOCAB) for _ in range(rng.randint(150, 250))]

    for g in range(200):
        base = paragraph()
        texts.append((" ".join(base), g, "original"))
        if g < 60:      # one near copy at Jaccard >= 0.85
            while True:
                copy = edit(base, rng.randint(1, 3), rng)
                if word_jaccard(" ".join(base), " ".join(copy)) >= 0.85:
                    break
            texts.append((" ".join(copy), g, "near"))
        elif g < 80:    # two near copies, each close to the base and to each other
            while True:
                copies = [edit(base, 1, rng) for _ in range(2)]
                group = [base] + copies
                if all(word_jaccard(" ".join(x), " ".join(y)) >= 0.85
                       for i, x in enumerate(group) for y in group[i + 1:]):
                    break
            texts += [(" ".join(c), g, "near") for c in copies]
    for i in range(0, 40, 2):   # exact duplicates of originals and of near copies
        source_text, g, _ = texts[i * 3 % len(texts)]
        texts.append((surface_variant(source_text, rng), g, "exact"))
    for d, share in enumerate([2 / 3] * 10 + [0.85] * 6):   # decoys: J ~0.5 and ~0.7
        p = paragraph()
        cut = int(len(p) * share)
        q = p[:cut] + [rng.choice(VOCAB) for _ in range(len(p) - cut)]
        texts.append((" ".join(p), f"decoy{d}p", "decoy"))
        texts.append((" ".join(q), f"decoy{d}q", "decoy"))
    ids = rng.sample(range(10 ** 6), len(texts))
    records, group_of, kind_of = [], {}, {}
    for (text, g, kind), n in zip(texts, ids):
        rid = f"doc-{n:06d}"
        records.append({"id": rid, "text": text, "verdict": rng.choice(["rewritten", "unchanged"]),
                        "task": "pii", "source": f"shard-{n % 7}", "score": n / 1e6,
                        "tags": ["synthetic", kind]})
        group_of[rid], kind_of[rid] = g, kind
    return records, group_of, kind_of


def test_planted_corpus_is_what_it_claims():
    records, group_of, kind_of = planted_corpus()
    by_group = {}
    for r in records:
        by_group.setdefault(group_of[r["id"]], []).append(r["text"])
    decoys = sorted(g for g in by_group if str(g).startswith("decoy") and g.endswith("p"))
    similarities = [word_jaccard(by_group[g][0], by_group[g[:-1] + "q"][0]) for g in decoys]
    assert all(0.4 < s < 0.8 for s in similarities), similarities
    assert any(s < 0.6 for s in similarities) and any(s > 0.65 for s in similarities)
    # Unrelated groups are far apart (spot check: the first 30 originals).
    originals = [r["text"] for r in records if kind_of[r["id"]] == "original"][:30]
    assert max(word_jaccard(a, b) for i, a in enumerate(originals) for b in originals[i + 1:]) < 0.1


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    records, group_of, kind_of = planted_corpus()
    runs = [run(records, Deduplicate(), str(tmp_path_factory.mktemp(f"planted{i}")))
            for i in range(2)]
    return records, group_of, kind_of, runs


def test_planted_precision_recall(planted):
    records, group_of, kind_of, runs = planted
    kept, dropped, _ = runs[0]
    assert_partition(records, kept, dropped)
    groups = {}
    for r in records:
        groups.setdefault(group_of[r["id"]], []).append(r["id"])
    dropped_ids = {d.id for d in dropped}
    should_drop = sum(len(members) - 1 for members in groups.values())
    true_drops = sum(min(len(set(m) & dropped_ids), len(m) - 1) for m in groups.values())
    precision = true_drops / len(dropped_ids)
    recall = true_drops / should_drop
    print(f"\nplanted corpus: {len(records)} records, {len(groups)} groups, "
          f"{should_drop} planted duplicates ({sum(k == 'exact' for k in kind_of.values())} "
          f"exact); dropped {len(dropped_ids)}; precision {precision:.4f}, recall {recall:.4f}")
    assert precision >= 0.99
    assert recall >= 0.95
    # The smallest id of every group survives, decoys included.
    kept_ids = {r["id"] for r in kept}
    assert all(min(members) in kept_ids for members in groups.values())
    assert all(rid in kept_ids for rid, kind in kind_of.items() if kind == "decoy")


def test_planted_dead_letters(planted):
    records, group_of, _, runs = planted
    kept, dropped, counters = runs[0]
    inputs = {r["id"]: r for r in records}
    kept_ids = {r["id"] for r in kept}
    for dead in dropped:
        assert dead.stage == "dedup"
        assert dead.reason in ("exact_duplicate", "near_duplicate")
        assert json.loads(dead.payload) == inputs[dead.id]
        named = dead.detail.split("id '", 1)[1].split("'", 1)[0]
        assert named < dead.id and group_of[named] == group_of[dead.id]
        if dead.reason == "near_duplicate":
            similarity = float(dead.detail.split("Jaccard ", 1)[1].split(" ", 1)[0])
            assert similarity >= 0.8
            assert named in kept_ids     # groups are cliques: no chains here
        else:   # the survivor of the exact stage, which near dedup may drop in turn
            assert normalize_for_dedup(inputs[named]["text"]) == \
                normalize_for_dedup(inputs[dead.id]["text"])
    assert any(d.reason == "exact_duplicate" for d in dropped)
    for reason in ("exact_duplicate", "near_duplicate"):
        assert counters.get(f"gdr/dedup/{reason}") == sum(d.reason == reason for d in dropped)
    assert counters["gdr/dedup/lsh_verified_pairs"] >= counters["gdr/dedup/near_duplicate"]
    # The ~0.7 decoys do become LSH candidates; verification by true Jaccard turns them away.
    assert counters["gdr/dedup/lsh_candidate_pairs"] > counters["gdr/dedup/lsh_verified_pairs"]


def test_planted_kept_records_are_untouched(planted):
    records, _, _, runs = planted
    inputs = {r["id"]: r for r in records}
    assert all(r == inputs[r["id"]] for r in runs[0][0])


def test_planted_deterministic(planted):
    (kept_a, dropped_a, _), (kept_b, dropped_b, _) = planted[3]
    assert kept_a == kept_b
    assert [d.to_json_line() for d in dropped_a] == [d.to_json_line() for d in dropped_b]


# --- The decision rule, buckets, edge cases -------------------------------------------------

def _window(words, start, length=200):
    return " ".join(words[start:start + length])


def test_pairwise_rule_chain_and_vee(tmp_path):
    rng = random.Random(11)
    w1 = [rng.choice(VOCAB) for _ in range(260)]
    w2 = [rng.choice(VOCAB) for _ in range(260)]
    # Windows 15 words apart: neighbours at Jaccard 181/211 = 0.86, two apart at 0.73.
    assert word_jaccard(_window(w1, 0), _window(w1, 15)) > 0.85
    assert word_jaccard(_window(w1, 0), _window(w1, 30)) < 0.75
    records = [
        # chain a ~ b ~ c, a !~ c: b and c are dropped (c names b).
        {"id": "chain-a", "text": _window(w1, 0)},
        {"id": "chain-b", "text": _window(w1, 15)},
        {"id": "chain-c", "text": _window(w1, 30)},
        # vee: a ~ c and b ~ c, a !~ b, c the largest id: only c is dropped.
        {"id": "vee-a", "text": _window(w2, 0)},
        {"id": "vee-c", "text": _window(w2, 15)},
        {"id": "vee-b", "text": _window(w2, 30)},
        {"id": "empty", "text": ""},   # no words, no shingles: never a near duplicate
        {"id": "dots", "text": "..."},
    ]
    kept, dropped, _ = run(records, NearDedup(), str(tmp_path))
    assert_partition(records, kept, dropped)
    assert sorted(r["id"] for r in kept) == ["chain-a", "dots", "empty", "vee-a", "vee-b"]
    detail = {d.id: d.detail for d in dropped}
    assert "'chain-a'" in detail["chain-b"] and "'chain-b'" in detail["chain-c"]
    assert "'vee-a'" in detail["vee-c"] and "1 more of smaller id" in detail["vee-c"]


def test_capped_bucket_still_dedups_by_star(tmp_path):
    rng = random.Random(12)
    base = [rng.choice(VOCAB) for _ in range(200)]
    copies = [base] + [edit(base, 1, rng) for _ in range(5)]
    records = [{"id": f"c{i}", "text": " ".join(words)} for i, words in enumerate(copies)]
    kept, dropped, counters = run(records, NearDedup(NearDedupConfig(max_bucket_size=2)),
                                  str(tmp_path))
    assert_partition(records, kept, dropped)
    assert [r["id"] for r in kept] == ["c0"]
    assert counters["gdr/dedup/lsh_bucket_capped"] > 0
    assert counters["gdr/dedup/lsh_pairs_skipped"] > 0


def test_exact_only_and_missing_text(tmp_path):
    records = [
        {"id": "b", "text": "Hello World.", "keep": [1, 2]},
        {"id": "a", "text": "hello\n  world"},
        {"id": "c", "text": "\u201cHELLO WORLD!\u201d"},
        {"id": "d", "text": "Hello, world"},    # inner comma: not exact, but a near duplicate
        {"id": "e", "text": None},
        {"id": "f"},
        {"id": "g", "text": "Something else entirely"},
    ]
    kept, dropped, counters = run(records, Deduplicate(near=None), str(tmp_path / "exact"))
    assert_partition(records, kept, dropped)
    assert sorted(r["id"] for r in kept) == ["a", "d", "g"]
    reasons = {d.id: (d.reason, d.detail) for d in dropped}
    assert reasons["b"][0] == reasons["c"][0] == "exact_duplicate"
    assert "'a'" in reasons["b"][1]
    assert reasons["e"][0] == reasons["f"][0] == "missing_text"
    assert counters["gdr/dedup/exact_duplicate"] == 2
    assert counters["gdr/dedup/missing_text"] == 2

    kept, dropped, _ = run(records, Deduplicate(), str(tmp_path / "both"))
    assert_partition(records, kept, dropped)
    assert sorted(r["id"] for r in kept) == ["a", "g"]
    assert {d.id: d.reason for d in dropped}["d"] == "near_duplicate"


def test_exact_dedup_keeps_smallest_id_whatever_the_order(tmp_path):
    records = [{"id": f"x{i}", "text": "same text"} for i in (5, 3, 9, 1, 7)]
    kept, dropped, _ = run(list(reversed(records)), ExactDedup(), str(tmp_path))
    assert [r["id"] for r in kept] == ["x1"]
    assert all("'x1'" in d.detail for d in dropped)
