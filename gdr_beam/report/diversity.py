"""Diversity of a set of texts, embedding-free: distinct-n, gzip ratio, near-duplicate rate.

The GDR paper's claim is that per-example rewriting keeps the diversity of the original data
(where placeholder anonymisation collapses it); the report measures it on the same examples
before and after refinement. All three are cheap and need no model:

  distinct_n           distinct word n-grams / all word n-grams (lower-cased \\w+ words)
  gzip_ratio           gzip size / raw size of the texts joined by newlines (higher: less
                       repetitive)
  near_duplicate_rate  share of the texts that have another text of the set at word-3-gram
                       Jaccard >= 0.5 (the dedup stage's shingles, normalisation included).
                       Looser than the job's near dedup on purpose: it measures texts drifting
                       towards each other (a template, a placeholder), not copies.
"""

from __future__ import annotations

import gzip
import re
from typing import Sequence

from gdr_beam.beam.dedup import shingles

NEAR_DUP_NGRAM = 3
NEAR_DUP_JACCARD = 0.5
_WORD = re.compile(r"\w+", re.UNICODE)


def distinct_n(texts: Sequence[str], n: int) -> float:
    grams, total = set(), 0
    for text in texts:
        words = _WORD.findall(text.lower())
        for i in range(len(words) - n + 1):
            grams.add(tuple(words[i:i + n]))
            total += 1
    return round(len(grams) / total, 4) if total else 0.0


def gzip_ratio(texts: Sequence[str]) -> float:
    raw = "\n".join(texts).encode("utf-8")
    return round(len(gzip.compress(raw, 9, mtime=0)) / len(raw), 4) if raw else 0.0


def near_duplicate_rate(texts: Sequence[str], n: int = NEAR_DUP_NGRAM,
                        threshold: float = NEAR_DUP_JACCARD) -> float:
    """Exact all-pairs Jaccard: quadratic, so meant for the report's bounded sample only."""
    sets = [frozenset(shingles(t, n)) for t in texts]
    has_dup = [False] * len(sets)
    for i, a in enumerate(sets):
        if not a:
            continue
        for j in range(i + 1, len(sets)):
            b = sets[j]
            if not b or (has_dup[i] and has_dup[j]):
                continue
            # Cheap bound first: Jaccard <= min/max of the sizes.
            if min(len(a), len(b)) < threshold * max(len(a), len(b)):
                continue
            inter = len(a & b)
            if inter / (len(a) + len(b) - inter) >= threshold:
                has_dup[i] = has_dup[j] = True
    return round(sum(has_dup) / len(sets), 4) if sets else 0.0


def diversity(texts: Sequence[str]) -> dict:
    return {"distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2),
            "gzip_ratio": gzip_ratio(texts), "near_duplicate_rate": near_duplicate_rate(texts)}
