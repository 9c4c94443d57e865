"""Validated patterns for identifiers with a fixed shape: e-mails, IBANs, cards, SSNs, IPs,
dates of birth, phones."""

from __future__ import annotations

import os
import re
from typing import Callable, Optional

from gdr_beam.tasks.base import Span
from gdr_beam.tasks.pii.addresses import ADDRESS
from gdr_beam.tasks.pii.checks import digits, iban_ok, luhn_ok


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}")
_MONTHS = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
           r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")

DETECTORS: list[tuple[str, re.Pattern, Optional[Callable[[str], bool]]]] = [
    ("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
     None),
    ("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"), iban_ok),
    ("credit_card", re.compile(r"\b\d(?:[ -]?\d){12,18}\b"), luhn_ok),
    ("ssn", re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), None),
    ("ip_address", re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}"
                              r"(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"), None),
    # Only the date (group 1) is the value; the cue before it stays.
    ("date_of_birth", re.compile(
        r"(?i)\b(?:dob|d\.o\.b\.|date of birth|birth ?date|birthday|born(?: on)?)[:\s]+"
        r"(\d{4}-\d{2}-\d{2}|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}|" + _MONTHS + r"\.? \d{1,2},? \d{4}|"
        r"\d{1,2} " + _MONTHS + r"\.?,? \d{4})"), None),
    ("street_address", ADDRESS, None),
    ("phone", re.compile(r"(?<![\w.+-])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{2,5}\)?){1,4}"
                         r"(?:\s*(?:x|ext\.?)\s*\d{1,5})?(?![\w-])"),
     lambda s: 7 <= len(digits(re.sub(r"(?:x|ext\.?).*", "", s))) <= 15
     and not _DATE.fullmatch(s)),
]


def phone_spans(text: str) -> list[Span]:
    import phonenumbers  # pylint: disable=import-outside-toplevel
    region = os.environ.get("GDR_PHONE_REGION", "US")
    # E.164 numbers have at most 15 digits; POSSIBLE leniency alone takes some longer runs
    # (order numbers) for numbers with an area code.
    return [Span(m.start, m.end, "phone", m.raw_string)
            for m in phonenumbers.PhoneNumberMatcher(text, region,
                                                     leniency=phonenumbers.Leniency.POSSIBLE)
            if len(digits(m.raw_string)) <= 15]

