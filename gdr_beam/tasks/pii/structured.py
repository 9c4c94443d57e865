"""Validated patterns for identifiers with a fixed shape: e-mails, IBANs, national ids, cards,
SSNs, IPs, dates of birth, phones."""

from __future__ import annotations

import datetime
import os
import re
from typing import Callable, Optional

Finder = Callable[[str], list]  # text -> [(start, end)] of found values

from gdr_beam.tasks.pii.addresses import address_spans
from gdr_beam.tasks.pii.checks import digits, iban_ok, luhn_ok
from gdr_beam.tasks.pii.national_ids import national_id_spans


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}")
# An ISO date inside a digit run makes it no phone: "in 2019 (2019-03-12)".
_ISO_DATE = re.compile(r"(?<!\d)(?:19|20)\d{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?!\d)")
# Words naming a birth (the cue of a date of birth).
_BIRTH_CUES = r"dob|d\.o\.b\.|date of birth|birth ?date|birthday"
_MONTHS = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
           r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")

def _pattern(pattern: re.Pattern, valid: Optional[Callable[[str], bool]] = None) -> Finder:
    """A finder from a regex (the value is its first group that matched, or the whole match)
    and a validator of the value."""
    def find(text: str) -> list:
        out = []
        for m in pattern.finditer(text):
            # the first group that took part (alternatives each have their own), else all
            group = next((i for i in range(1, pattern.groups + 1) if m.group(i) is not None), 0)
            if valid is None or valid(m.group(group)):
                out.append((m.start(group), m.end(group)))
        return out
    return find


# Role accounts: an organisation's desk, not a person ("To: support@example.org" was replaced
# by a fake personal address). Matched on the whole local part, separators removed.
_ROLE_ACCOUNTS = frozenset(
    "support info help helpdesk admin administrator noreply donotreply sales contact billing "
    "team office hr jobs careers press media marketing webmaster postmaster hostmaster abuse "
    "security privacy legal service customerservice feedback orders accounts enquiries "
    "inquiries reception bookings newsletter notifications alerts".split())


def _personal_email(value: str) -> bool:
    local = re.sub(r"[._+-]", "", value.partition("@")[0].lower())
    return local not in _ROLE_ACCOUNTS


def _addresses(text: str) -> list:
    return [(start, end) for start, end, _ in address_spans(text)]


# Years and a year range are no phone, whichever finder reads them as one: "the 2021-2022
# season", "in 1998-2004", "03/2021-2022".
_YEAR_RANGE = re.compile(r"(?:\d{1,2}/)?(?:19|20)\d\d ?[-–/] ?(?:(?:19|20)\d\d|\d\d)")


def _phones(text: str) -> list:
    import phonenumbers  # pylint: disable=import-outside-toplevel
    region = os.environ.get("GDR_PHONE_REGION", "US")
    # E.164 numbers have at most 15 digits; POSSIBLE leniency alone takes some longer runs
    # (order numbers) for numbers with an area code.
    return [(m.start, m.end)
            for m in phonenumbers.PhoneNumberMatcher(text, region,
                                                     leniency=phonenumbers.Leniency.POSSIBLE)
            if len(digits(m.raw_string)) <= 15 and not _YEAR_RANGE.fullmatch(m.raw_string)]


# A URL can name its owner (a personal site, a profile, a photo link), and no pattern tells a
# personal site from a company's, so every URL is replaced (privacy first, as Presidio does),
# except on hosts of public reference material (documentation, encyclopaedias, standards),
# which name no private person and which code and prose cite most.
_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"')\]]+")
_PUBLIC_HOSTS = re.compile(
    r"(?i)^(?:https?://)?(?:[\w-]+\.)*(?:wikipedia\.org|wikimedia\.org|python\.org|w3\.org|"
    r"ietf\.org|apache\.org|mozilla\.org|readthedocs\.io|readthedocs\.org|pypi\.org|"
    r"tensorflow\.org|jax\.readthedocs\.io|arxiv\.org|doi\.org|iso\.org|who\.int|europa\.eu|"
    r"gov\.uk|usa\.gov)(?:[/:?#]|$)|^(?:https?://)?docs\.")


def _urls(text: str) -> list:
    out = []
    for m in _URL.finditer(text):
        url = m.group().rstrip(".,;:!?")
        if not _PUBLIC_HOSTS.match(url):
            out.append((m.start(), m.start() + len(url)))
    return out


# "@jane_doe": a handle, not the domain of an e-mail (the e-mail finder runs first).
_HANDLE = re.compile(r"(?<![\w.@])@[A-Za-z][A-Za-z0-9_.]{1,29}(?<!\.)\b")
# A short local number after a phone cue ("Mobile: 84 23 30", "call me at 96 63 21", "stop
# receiving messages to 85 99 60").
_CUED_PHONE = re.compile(r"(?i)\b(?:phone|tel|telephone|mobile|cell|fax|desk|office|call(?: me)?"
                         r"(?: at| on)?|reach me at|text me at|whatsapp|ph|messages? to|texts? to|"
                         r"sms to|my (?:phone |mobile |cell )?number(?: is)?)\.?:?\s+"
                         r"(\+?\d{2,4}(?:[ .-]\d{2,4}){1,4})(?![\w-])")

_BIRTH_WORD = re.compile(r"(?i)\b(?:" + _BIRTH_CUES + r"|born)\b")
_FULL_DATE = re.compile(r"(?<![\w/.-])(?:\d{4}-\d{2}-\d{2}|\d{1,2}[/.]\d{1,2}[/.]\d{4}|"
                        + _MONTHS + r"\.? \d{1,2},? \d{4}|\d{1,2} " + _MONTHS + r"\.?,? \d{4})"
                        r"(?![\w/-]|\.\d)")


def _birth_dates_in_a_birth_text(text: str) -> list:
    """In a text that speaks of a birth anywhere ("tell me your date of birth. It's
    10/17/1968", a letter whose first paragraph gives a birthday its last repeats), a full
    date at least ten years old is taken for a birth date: few other full dates of a private
    text are that old, and a date is personal data either way. Not in other texts."""
    if not _BIRTH_WORD.search(text):
        return []
    latest = datetime.date.today().year - 10
    return [(m.start(), m.end()) for m in _FULL_DATE.finditer(text)
            if 1900 <= int(re.search(r"\d{4}", m.group()).group()) <= latest]


# (category, finder) in priority order: an earlier finder wins overlapping spans.
DETECTORS: list[tuple[str, Finder]] = [
    ("email", _pattern(re.compile(
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), _personal_email)),
    ("iban", _pattern(re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
                      iban_ok)),
    # Before cards and phones: a 15-digit French NIR can pass Luhn, an 11-digit PESEL looks
    # like a phone number, and the national id's fake keeps its country and checksum.
    ("national_id", national_id_spans),
    ("credit_card", _pattern(re.compile(r"\b\d(?:[ -]?\d){12,18}\b"), luhn_ok)),
    ("ssn", _pattern(re.compile(r"\b\d{3}-\d{2}-\d{4}\b"))),
    ("ip_address", _pattern(re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}"
                                       r"(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"))),
    # Only the date (group 1) is the value; the cue before it stays.
    ("date_of_birth", _pattern(re.compile(
        r"(?i)\b(?:" + _BIRTH_CUES + r"|born(?: on)?)[:\s]+"
        r"(?:(?:is|was|on|the|in|of|at|:|-)\s+){0,3}"
        r"(\d{4}-\d{2}-\d{2}|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}|" + _MONTHS + r"\.? \d{1,2},? \d{4}|"
        r"\d{1,2} " + _MONTHS + r"\.?,? \d{4})"))),
    ("date_of_birth", _birth_dates_in_a_birth_text),
    ("street_address", _addresses),
    ("url", _urls),
    ("handle", _pattern(_HANDLE)),
    ("phone", _phones),  # Google's libphonenumber before the looser digit-shape regex
    ("phone", _pattern(_CUED_PHONE, lambda s: 5 <= len(digits(s)) <= 15)),
    # an area code with its trunk 0 before a slash (Austria, Hungary, Germany): "02124/15868344",
    # "(06)91/417-7763"; not a date or a month and years ("01/02/2019", "03/2021-2022")
    ("phone", _pattern(re.compile(r"(?<![\w./+-])\(?0\d{1,4}\)?\d{0,3}/[ ]?\d{2,8}"
                                  r"(?:[ .-]?\d{2,5}){0,3}(?![\w/-])"),
                       lambda s: len(digits(s)) <= 15 and len(digits(s.split("/")[1])) >= 7
                       and not re.match(r"/ ?(?:19|20)\d\d\b", s[s.index("/"):]))),
    ("phone", _pattern(re.compile(r"(?<![\w.+-])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{2,5}\)?){1,4}"
                                  r"(?:\s*(?:x|ext\.?)\s*\d{1,5})?(?![\w-])"),
                       lambda s: 7 <= len(digits(re.sub(r"(?:x|ext\.?).*", "", s))) <= 15
                       and not _DATE.fullmatch(s) and not _ISO_DATE.search(s)
                       and not _YEAR_RANGE.fullmatch(s))),
]
