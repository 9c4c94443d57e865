"""Word-level diffs of a text before and after refinement (for the report's samples)."""

from __future__ import annotations

import difflib
import re

# Diffing is quadratic in the worst case; a sample's text is cut to this many characters first.
MAX_DIFF_CHARS = 20_000
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)


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
