"""What a rewrite changed outside the detected values, and whether each change is explained.

A faithful rewrite replaces the detected values and nothing else. The model's rewrites of real
text do more: they drop an opening paragraph, change dates, invent place names, repeat a
sentence in place of another. `unexplained_edits` aligns the rewrite to the original word by
word (difflib over word and punctuation tokens, case-insensitive) and returns every edit that
no rule explains. An edit is explained when

  - it replaces a detected value (the block overlaps a detected span, keeps the block's other
    words, and adds at most a few words: a fake name may have more words than the real one);
  - it only moves punctuation or spacing;
  - it is grammatical agreement with a replacement: articles (a/an/the), pronouns and titles
    (a fake of another gender turns "she" into "he", "Ms" into "Mr");
  - it replaces an identifier the detectors missed (the caller's `missed` says so, e.g. a word
    the name lists know, replaced by a value recognised as a name).

Anything else (deleted, added or changed words, numbers, dates, places) is unexplained.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Callable, Sequence

_TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
# Words a replacement may drag along: articles, pronouns and titles agree with the fake.
AGREEMENT = frozenset(
    "a an the he she him her his hers himself herself they them their theirs themselves "
    "mr mrs ms miss mx sir madam mister".split())
# Extra words a replaced value may bring ("Li" -> "Maya Torres", "Dr" -> "Dr.").
_SLACK_WORDS = 3


@dataclasses.dataclass(frozen=True)
class Edit:
    """One unexplained edit: original text [start, end) became `new`."""
    start: int
    end: int
    old: str
    new: str

    def describe(self) -> str:
        old = self.old if len(self.old) <= 60 else self.old[:57] + "..."
        new = self.new if len(self.new) <= 60 else self.new[:57] + "..."
        if not self.new:
            return f"deleted {old!r}"
        if not self.old:
            return f"added {new!r}"
        return f"changed {old!r} to {new!r}"


def _tokens(text: str) -> list:
    return [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]


def _words(tokens) -> list:
    return [t for t in tokens if t[2][0].isalnum() or t[2][0] == "_"]


def unexplained_edits(original: str, spans: Sequence, rewrite: str,
                      missed: Callable[[str, str], bool] = lambda old, new: False
                      ) -> list[Edit]:
    """Edits of `rewrite` against `original` that replace no detected span and are no
    agreement or punctuation change (see the module docstring). `spans` are the original's
    detected values (objects with start/end); `missed(old, new)` says whether an edit replaced
    an identifier the detectors missed."""
    a, b = _tokens(original), _tokens(rewrite)
    matcher = difflib.SequenceMatcher(a=[t[2].lower() for t in a], b=[t[2].lower() for t in b],
                                      autojunk=False)
    edits = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        old, new = a[i1:i2], b[j1:j2]
        start = old[0][0] if old else (a[i1 - 1][1] if i1 > 0 else 0)
        end = old[-1][1] if old else start
        new_text = rewrite[new[0][0]:new[-1][1]] if new else ""
        if _explained(original, spans, old, new, new_text, start, end, missed):
            continue
        if not old and _number_beside_value(spans, new, a[i1 - 1][0] if i1 else 0,
                                            a[i1][1] if i1 < len(a) else len(original)):
            continue
        edits.append(Edit(start, end, original[start:end], new_text))
    return edits


def _number_beside_value(spans, new, lo: int, hi: int) -> bool:
    """An insertion of a few numbers right beside a detected value (the tokens on either side
    of it touch the span): its fake has more number groups than the real one ("Suite 990" ->
    "Apt. 386", an IP address whose octets align differently)."""
    return 0 < len(new) <= 2 * _SLACK_WORDS and all(
        any(c.isdigit() for c in t[2]) or not t[2][0].isalnum() for t in new) and any(
        s.start <= hi and lo <= s.end for s in spans)


_POSSESSIVE_TAIL = re.compile(r"['\u2019]s?")


def _inside(original, word, span) -> bool:
    """Whether a word token lies in a detected span; a possessive the token carries past the
    span's end counts as inside ("White's" of the span "Cameron White")."""
    return span.start <= word[0] and (word[1] <= span.end or (
        word[0] < span.end and bool(_POSSESSIVE_TAIL.fullmatch(original, span.end, word[1]))))


def _explained(original, spans, old, new, new_text, start, end, missed) -> bool:
    old_words, new_words = _words(old), _words(new)
    if not old_words and not new_words:
        return True  # punctuation or spacing only
    covered = [s for s in spans if s.start < end and start < s.end] if old else \
        [s for s in spans if s.start <= start <= s.end]
    outside = [w for w in old_words if not any(_inside(original, w, s) for s in covered)]
    kept = {w[2].lower() for w in new_words}
    rest = [w for w in outside if w[2].lower() not in kept and w[2].lower() not in AGREEMENT]
    if covered:
        # A detected value replaced: the block's other words stay, little is added.
        value_words = len(old_words) - len(outside)
        added = [w for w in new_words if w[2].lower() not in {o[2].lower() for o in outside}]
        return not rest and len(added) <= value_words + _SLACK_WORDS
    old_set = {w[2].lower() for w in old_words}
    new_set = {w[2].lower() for w in new_words}
    if old_set <= AGREEMENT and new_set <= AGREEMENT:
        return True  # "she" -> "he", "a" -> "an", "Ms" -> "Mr"
    return bool(old_words and new_text and missed(original[start:end], new_text))
