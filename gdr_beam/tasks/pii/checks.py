"""Checksums and digit helpers of structured identifiers (cards, IBANs)."""

from __future__ import annotations

import re


def digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def luhn_ok(s: str) -> bool:
    ds = [int(d) for d in digits(s)]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2)
                for i, d in enumerate(reversed(ds)))
    return 13 <= len(ds) <= 19 and total % 10 == 0


def iban_ok(s: str) -> bool:
    compact = s.replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1

