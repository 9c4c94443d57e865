"""All pii detectors together: non-overlapping spans in text order."""

from __future__ import annotations

from gdr_beam.tasks.base import Span
from gdr_beam.tasks.pii.names import NER, merge_persons, outside, gazetteer_persons
from gdr_beam.tasks.pii.structured import DETECTORS, phone_spans


def detect(text: str, names: bool = True) -> list[Span]:
    """Non-overlapping spans in text order. Structured detectors first: a phone number the NER
    model calls a person is still a phone number."""
    spans: list[Span] = []

    def add(span: Span):
        if not any(span.overlaps(s.start, s.end) for s in spans):
            spans.append(span)

    for category, pattern, valid in DETECTORS:
        for m in pattern.finditer(text):
            group = 1 if pattern.groups else 0
            value = m.group(group)
            if valid is None or valid(value):
                add(Span(m.start(group), m.end(group), category, value))
        if category == "street_address":  # phonenumbers before the looser phone regex
            for span in phone_spans(text):
                add(span)
    if names:
        candidates = [c for s in NER.persons(text) + gazetteer_persons(text)
                      for c in outside(text, s, spans)]
        for span in merge_persons(text, candidates):
            add(span)
    return sorted(spans, key=lambda s: s.start)

