"""Splitting a text too long for one model reply into segments at natural boundaries.

A segment is a range [start, end) of the text that starts and ends on a non-space character.
What lies between two segments (blank lines, a line break and the next line's indentation,
the spaces after a sentence) is the separator: it is never sent to the model and is put back
byte for byte when the document is reassembled, so an unchanged segment, and everything around
the segments, comes back exactly as it was (see tasks/documents.py).

Boundaries, coarsest first; a piece is split at the next level only when it does not fit:
  prose  paragraphs (blank lines), lines, sentences, words
  code   top-level blocks (blank lines before an unindented line), blank lines, lines, words
and a single "word" still too long (a minified line, a base64 blob) is cut by characters.
Pieces of one level are packed greedily into segments of at most `limit` tokens, so a
segment holds as many whole paragraphs (or lines, ...) as fit: the model sees whole units of
text and as much context as its reply allows.
"""

from __future__ import annotations

import re
from typing import Callable, List, Sequence, Tuple

Range = Tuple[int, int]

_PROSE = (re.compile(r"\n[ \t]*\n\s*"),  # paragraphs
          re.compile(r"\n\s*"),  # lines
          re.compile(r"(?<=[.!?;:\u2026\u3002])\s+"),  # sentences
          re.compile(r"\s+"))  # words
_CODE = (re.compile(r"\n(?:[ \t]*\n)+(?=\S)"),  # top-level blocks: a blank line, no indent
         re.compile(r"\n[ \t]*\n\s*"),  # blank lines inside a block
         re.compile(r"\n\s*"),  # lines
         re.compile(r"\s+"))  # words
KINDS = ("prose", "code")


def split_text(text: str, count_tokens: Callable[[str], int], limit: int,
               kind: str = "prose") -> List[Range]:
    """The segments of `text`, each of at most `limit` tokens by `count_tokens` (one segment
    when the whole text fits). Covers every non-space character of the text exactly once, in
    order; an all-space text has no segments."""
    if kind not in KINDS:
        raise ValueError(f"unknown text kind {kind!r}; expected one of {KINDS}")
    if limit < 1:
        raise ValueError(f"limit must be >= 1 token, got {limit}")
    start, end = _strip(text, 0, len(text))
    if start == end:
        return []
    return _split(text, start, end, count_tokens, limit, _CODE if kind == "code" else _PROSE)


def _strip(text: str, start: int, end: int) -> Range:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _units(text: str, start: int, end: int, separator: re.Pattern) -> List[Range]:
    """The non-empty, stripped pieces of text[start:end] between matches of `separator`."""
    units, pos = [], start
    for m in separator.finditer(text, start, end):
        piece = _strip(text, pos, m.start())
        if piece[0] < piece[1]:
            units.append(piece)
        pos = m.end()
    piece = _strip(text, pos, end)
    if piece[0] < piece[1]:
        units.append(piece)
    return units


def _split(text: str, start: int, end: int, count: Callable[[str], int], limit: int,
           levels: Sequence[re.Pattern]) -> List[Range]:
    if count(text[start:end]) <= limit:
        return [(start, end)]
    for depth, separator in enumerate(levels):
        units = _units(text, start, end, separator)
        if len(units) > 1:
            return _pack(text, units, count, limit, levels[depth + 1:])
    return _cut(text, start, end, count, limit)


def _pack(text: str, units: Sequence[Range], count: Callable[[str], int], limit: int,
          finer: Sequence[re.Pattern]) -> List[Range]:
    """Consecutive units joined into segments of at most `limit` tokens (each separator counted
    as one token); a unit over the limit alone is split at the finer levels."""
    out: List[Range] = []
    current, tokens = None, 0
    for a, b in units:
        n = count(text[a:b])
        if n > limit:
            if current:
                out.append(current)
            current, tokens = None, 0
            out += _split(text, a, b, count, limit, finer)
            continue
        if current and tokens + 1 + n > limit:
            out.append(current)
            current, tokens = None, 0
        current, tokens = ((current[0], b), tokens + 1 + n) if current else ((a, b), n)
    if current:
        out.append(current)
    return out


def _cut(text: str, start: int, end: int, count: Callable[[str], int], limit: int
         ) -> List[Range]:
    """A piece without any boundary (one very long word), cut by characters into pieces of at
    most `limit` tokens."""
    out, pos = [], start
    while pos < end:
        # Characters per token of what is left, then shrink until the piece fits.
        chars = max(1, int((end - pos) * limit / max(count(text[pos:end]), 1)))
        stop = min(end, pos + chars)
        while stop - pos > 1 and count(text[pos:stop]) > limit:
            stop = pos + max(1, (stop - pos) * 9 // 10)
        out.append((pos, stop))
        pos = stop
    return out
