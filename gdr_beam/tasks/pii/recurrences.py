"""A value detected once in a document is a value wherever it recurs.

Detectors read context: "Name: Mimir Andreasen" and "Dear Mimir Andreasen," are found, the same
name in "India Ltd. Mimir Andreasen's killers" or a street line typed after "send it to" may not
be. A reader of the refined document would still find the real value there, and the one person
would get a fake in one place and keep the name in another. So every further occurrence of a
detected value is a span too (same category, hence the same fake through the identity map):

  - structured values (e-mails, phones, ids, addresses, ...) where the same string recurs as a
    whole token;
  - a person's name words where they recur capitalised, as whole words, each run of them one
    span ("Andreasen", "Mimir Andreasen"), a possessive left outside. A name word that is also
    an English word ("Swift", "Rose", "Will") is taken only where it cannot be the word: not at
    the start of a sentence or line. Where a run overlaps a span already taken (a detector
    found only "Sahaku" in "The Yumeka Sahaku version"), its words outside that span are
    taken, so no word of the name is left for a reader.
"""

from __future__ import annotations

import bisect
import re
from typing import Iterable

from gdr_beam.tasks.base import Span
from gdr_beam.tasks.pii.gazetteers import english_words

# Categories whose values recur verbatim; a person's words are handled apart.
_VERBATIM = ("email", "phone", "url", "handle", "iban", "credit_card", "ssn", "national_id",
             "ip_address", "date_of_birth", "street_address", "id_number")
_INITIAL = re.compile(r"[A-Z]\.?")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n]|[\"“(>*-])[ \t]*$")
_POSSESSIVE = re.compile(r"['\u2019]s?$")


def recurrences(text: str, spans: Iterable[Span], categories=None) -> list[Span]:
    """New spans for the further occurrences of `spans`' values in text, none overlapping
    `spans` or each other. categories: only values of these (default: all)."""
    taken = sorted(spans, key=lambda s: s.start)
    found: list[Span] = []
    # Starts and ends of every span so far, in text order (they never overlap, so the ends are
    # sorted too): an overlap test is one bisection, not a scan (long documents hold thousands).
    starts, ends = [s.start for s in taken], [s.end for s in taken]

    def free(start: int, end: int) -> bool:
        i = bisect.bisect_left(starts, end)  # spans starting before `end`
        return i == 0 or ends[i - 1] <= start

    def take(span: Span):
        i = bisect.bisect_left(starts, span.start)
        starts.insert(i, span.start)
        ends.insert(i, span.end)
        found.append(span)

    for value, category in sorted({(s.value, s.category) for s in taken
                                   if s.category in _VERBATIM
                                   and (categories is None or s.category in categories)},
                                  key=lambda vc: -len(vc[0])):
        for m in re.finditer(r"(?<![\w@./-])" + re.escape(value) + r"(?![\w@]|[./-]\w)", text):
            if free(m.start(), m.end()):
                take(Span(m.start(), m.end(), category, value))
    if categories is None or "person" in categories:
        for run in _name_runs(text, taken):
            for span in [run] if free(run.start, run.end) else _words(text, run):
                if free(span.start, span.end):
                    take(span)
    return sorted(found, key=lambda s: s.start)


def _words(text: str, run: Span) -> list[Span]:
    """A run's name words, each a span (an initial left alone)."""
    return [Span(run.start + m.start(), run.start + m.end(), "person", m.group())
            for m in re.finditer(r"\S+", run.value) if not _INITIAL.fullmatch(m.group())]


def _name_runs(text: str, spans: list) -> list[Span]:
    words = set()
    for s in spans:
        if s.category != "person":
            continue
        for w in s.value.split():
            w = _POSSESSIVE.sub("", w).strip(",;:")
            if len(w) >= 2 and not _INITIAL.fullmatch(w) and w[:1].isupper():
                words.add(w)
    if not words:
        return []
    common = english_words()
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    word = rf"(?:{alternatives})"
    # A run of the document's name words, an initial allowed inside ("Mimir M. Andreasen").
    run = re.compile(rf"(?<![\w@.'\u2019-]){word}(?:[ \t]+(?:[A-Z]\.[ \t]+)?{word})*(?![\w@-])")
    out = []
    for m in run.finditer(text):
        value = m.group()
        if " " not in value and value.lower() in common \
                and _SENTENCE_START.search(text, 0, m.start()):
            continue
        out.append(Span(m.start(), m.end(), "person", value))
    return out
