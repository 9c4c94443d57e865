"""Quasi-identifiers (`--pii_policy`): what identifies a person only in combination.

A date, a town, an employer or an age names nobody alone, but together they often single one
person out (the classic result: zip code, birth date and sex identify most Americans). The
default policy (`direct`) keeps them; the other policies rewrite them COHERENTLY, never as
placeholders, so the text still reads as a real one and its internal relations survive:

  dates         every date of a document moves by ONE per-document offset, each in its own
                format ("12 March 2019", "2019-03-12" and "12/03/2019" stay one date). The
                offset is whole years Y (1 to 3 either way under `quasi`) plus days D (7 to 60
                either way; 7 to 180 under Safe Harbor, which keeps years): a full
                date moves Y years then D days (so intervals between dates are kept, within a
                day at a leap year; a date within D days of a new year moves one year more or
                less than a bare year), a month and year moves from its 15th, a day and month
                without a year by D days, a bare year ("in 2019", "a 2001 film") by Y years
                (historical years too: the cost of the policy, measured as words kept). A
                weekday written before a full date is recomputed. Times of day are kept.
                `hipaa_safe_harbor` keeps years (Safe Harbor allows them): Y = 0 and bare years
                stay; a full date still moves D days (its year changes only across a new year).
  places        towns and cities (spaCy GPE/LOC entities and Faker's per-country town lists;
                never countries) -> another town of the same country where a Faker list knows
                the original (Faker keeps real town lists for ~30 countries), else a Faker
                US-style town; `quasi` also swaps US states for other states (regions), while
                Safe Harbor allows states. Postcodes after a cue ("ZIP: 10001") keep their
                first three digits (what Safe Harbor allows) and get fresh other digits.
  organisations spaCy ORG entities and capitalised runs ending in a legal form ("Ltd", "SA",
                "GmbH", ...) -> a fake of the same shape: the legal form and the generic words
                kept ("Malu Paper Mills Ltd" -> "Hartley Paper Mills Ltd"), the distinctive
                words replaced by surnames, an acronym by another acronym of its length.
  ages          "45-year-old", "45 years old", "45 y/o", "aged 45", "age: 45", "turned 45":
                `quasi` moves every age of the document by one per-document jitter (1 to 3
                years, either way; a minor stays a minor and an adult an adult); Safe Harbor
                writes ages over 89 as 90 (its one "90 or older" category, as a plausible age
                rather than a placeholder) and keeps the others.
  record numbers (`hipaa_safe_harbor` only) a number after a cue naming a medical record,
                health plan, account, licence, certificate, vehicle plate, VIN or serial
                number -> the same shape with fresh digits.

  professions   (`quasi` only) a job title tied to a person by a cue ("works as a", "she is
                an", ", the ... ," after a name, alone on the line below a name) and ending in
                the head noun of one of Faker's job titles -> another Faker job title.

Not done: a profession without such a cue ("the plumber came"), nationalities, bare street
names without a number and Safe Harbor's biometric identifiers and photographs (not text) are
kept.

Detection runs on the spaCy pipeline the name detector already runs (one parse per text,
cached in names.NER). Replacements come from `QuasiFakes`, one per document, seeded by
(run seed, example id) like the identity map that owns it (identities.py): one replacement
per distinct value across the document, never one shared by two values.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import random
import re
from typing import Callable, Optional, Sequence

from gdr_beam.tasks.base import Span
from gdr_beam.tasks.pii.addresses import street_word
from gdr_beam.tasks.pii.fakes import with_faker
from gdr_beam.tasks.pii.gazetteers import cities_by_locale, city_names, countries_and_states, \
    english_words, first_names, last_names
from gdr_beam.tasks.pii.names import NER, org_word

# The span categories this module produces (the identity map hands them to QuasiFakes).
QUASI_CATEGORIES = ("date", "year", "place", "region", "organization", "age", "postcode",
                    "record_number", "profession")


@dataclasses.dataclass(frozen=True)
class Policy:
    """What a `--pii_policy` rewrites besides the direct identifiers."""
    name: str
    dates: bool = False
    keep_years: bool = False  # bare years stay and the offset has no whole years (Safe Harbor)
    places: bool = False  # towns, cities, postcodes
    regions: bool = False  # states and provinces (`quasi`; Safe Harbor allows a state)
    organizations: bool = False
    ages: str = ""  # "jitter" (every age) or "over_89" (Safe Harbor: only ages over 89)
    professions: bool = False
    record_numbers: bool = False

    @property
    def quasi(self) -> bool:
        return self != POLICIES["direct"]


POLICIES = {
    "direct": Policy("direct"),
    "quasi": Policy("quasi", dates=True, places=True, regions=True, organizations=True,
                    ages="jitter", professions=True),
    "hipaa_safe_harbor": Policy("hipaa_safe_harbor", dates=True, keep_years=True, places=True,
                                ages="over_89", record_numbers=True),
}


# --- dates -----------------------------------------------------------------------------------

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTH = r"(?P<month>(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)[a-z]*\.?)"
_DAY = r"(?P<day>\d{1,2})(?P<ord>st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:1[89]|20)\d\d)"
_WEEKDAY = r"(?:(?P<weekday>(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs)?|Fri|Sat(?:ur)?|Sun)(?:day)?)" \
           r",?\s+)?"
_DATE_FORMS = [
    ("iso", re.compile(r"(?<![\w/.-])(?P<year>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})(?![\w/-])")),
    ("numeric", re.compile(r"(?<![\w/.-])(?P<a>\d{1,2})(?P<sep>[/.-])(?P<b>\d{1,2})(?P=sep)"
                           r"(?P<year>\d{4}|\d{2})(?![\w/-]|\.\d)")),
    ("dmy", re.compile(_WEEKDAY + _DAY + r"(?:\s+of)?\s+" + _MONTH + r",?\s+" + _YEAR
                       + r"(?!\d)")),
    ("mdy", re.compile(_WEEKDAY + _MONTH + r"\s+" + _DAY + r",?\s+" + _YEAR + r"(?!\d)")),
    ("my", re.compile(_MONTH + r",?\s+" + _YEAR + r"(?!\d)")),
    ("dm", re.compile(_WEEKDAY + _DAY + r"(?:\s+of)?\s+" + _MONTH + r"(?![\w])")),
    ("md", re.compile(_WEEKDAY + _MONTH + r"\s+" + _DAY + r"(?![\w:])")),
]
# A bare year: 1900-2099, not inside a number, a decade ("1990s") or an amount.
_BARE_YEAR = re.compile(r"(?<![\w$€£.,/-])(?:19|20)\d\d(?![\w%/-]|[.,]\d)")


def _month_number(word: str) -> Optional[int]:
    w = word.rstrip(".").lower()
    for i, name in enumerate(_MONTHS):
        if name.lower().startswith(w[:3]) and name.lower().startswith(w) or (
                w == "sept" and i == 8):
            return i + 1
    return None


def _month_word(month: int, like: str) -> str:
    """Month `month` written like `like`: full or abbreviated, with its period, in its case."""
    name = _MONTHS[month - 1]
    bare = like.rstrip(".")
    if len(bare) <= 4 and bare.lower() != name.lower():
        name = name[:3]
    name += "." if like.endswith(".") else ""
    return name.upper() if bare.isupper() and len(bare) > 1 else name


def _ordinal(day: int) -> str:
    return "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _numbers_order(values: Sequence[str]) -> str:
    """'dmy' or 'mdy' for the numeric dates of one document (`values`: all its dates): the
    order a day above 12 shows (the first such date decides for all); without one, month
    first when the document writes its dates in words month first ("March 12, 2019", US
    usage), else day first (most of the world's usage, and the texts' own when they write
    "12 March 2019")."""
    for v in values:
        m = _DATE_FORMS[1][1].fullmatch(v)
        if m:
            a, b = int(m.group("a")), int(m.group("b"))
            if a > 12 >= b:
                return "dmy"
            if b > 12 >= a:
                return "mdy"
    if any(_DATE_FORMS[3][1].fullmatch(v) or _DATE_FORMS[6][1].fullmatch(v) for v in values):
        return "mdy"
    return "dmy"


def date_spans(text: str) -> list[Span]:
    """Dates in the formats above, longest form first, none overlapping."""
    spans: list[Span] = []
    for _, pattern in _DATE_FORMS:
        for m in pattern.finditer(text):
            if any(s.overlaps(m.start(), m.end()) for s in spans):
                continue
            if _parse(m.group(), "dmy") is None and _parse(m.group(), "mdy") is None:
                continue  # "31/31/2020", "February 30": not a date
            spans.append(Span(m.start(), m.end(), "date", m.group()))
    return sorted(spans, key=lambda s: s.start)


def year_spans(text: str, taken: Sequence[Span]) -> list[Span]:
    return [Span(m.start(), m.end(), "year", m.group()) for m in _BARE_YEAR.finditer(text)
            if not any(s.overlaps(m.start(), m.end()) for s in taken)]


@dataclasses.dataclass(frozen=True)
class _Date:
    form: str
    match: "re.Match"
    year: Optional[int]
    month: int
    day: Optional[int]


def _parse(value: str, order: str) -> Optional[_Date]:
    for form, pattern in _DATE_FORMS:
        m = pattern.fullmatch(value)
        if not m:
            continue
        try:
            if form == "iso":
                year, month, day = int(m.group("year")), int(m.group("m")), int(m.group("d"))
            elif form == "numeric":
                a, b = int(m.group("a")), int(m.group("b"))
                day, month = (a, b) if order == "dmy" else (b, a)
                year = int(m.group("year"))
                if len(m.group("year")) == 2:
                    year += 2000 if year < 50 else 1900
            else:
                month = _month_number(m.group("month"))
                if month is None:
                    return None
                day = int(m.group("day")) if "day" in m.groupdict() and m.group("day") else None
                year = int(m.group("year")) if "year" in m.groupdict() and m.group("year") \
                    else None
            datetime.date(year or 2001, month, day or 1)  # validates
        except ValueError:
            return None
        return _Date(form, m, year, month, day)
    return None


def _shift(date: datetime.date, years: int, days: int) -> datetime.date:
    year = date.year + years
    moved = date.replace(year=year, day=min(date.day, 28)) if date.month == 2 and date.day == 29 \
        else date.replace(year=year)
    return moved + datetime.timedelta(days=days)


def _write(d: _Date, new: datetime.date, order: str) -> str:
    """The shifted date in the original's format."""
    m = d.match
    if d.form == "iso":
        return f"{new.year:04d}-{new.month:02d}-{new.day:02d}"
    if d.form == "numeric":
        first, second = (new.day, new.month) if order == "dmy" else (new.month, new.day)
        pad = len(m.group("a")) == 2 or len(m.group("b")) == 2
        year = f"{new.year:04d}" if len(m.group("year")) == 4 else f"{new.year % 100:02d}"
        fmt = (lambda n: f"{n:02d}") if pad else str
        return f"{fmt(first)}{m.group('sep')}{fmt(second)}{m.group('sep')}{year}"
    value, out, pos = m.group(), [], 0

    def put(group: str, new_text: str):
        nonlocal pos
        out.extend([value[pos:m.start(group) - m.start()], new_text])
        pos = m.end(group) - m.start()

    parts = []
    if "weekday" in m.groupdict() and m.group("weekday"):
        parts.append(("weekday", m.start("weekday")))
    if "day" in m.groupdict() and m.group("day"):
        parts.append(("day", m.start("day")))
        if m.group("ord"):
            parts.append(("ord", m.start("ord")))
    parts.append(("month", m.start("month")))
    if "year" in m.groupdict() and m.group("year"):
        parts.append(("year", m.start("year")))
    for group, _ in sorted(parts, key=lambda p: p[1]):
        if group == "weekday":
            weekday = _WEEKDAYS[new.weekday()]
            old = m.group("weekday")
            put(group, weekday[:len(old)] if len(old) <= 4 else weekday)
        elif group == "day":
            day = str(new.day).zfill(len(m.group("day")))
            put(group, day)
        elif group == "ord":
            put(group, _ordinal(new.day))
        elif group == "month":
            put(group, _month_word(new.month, m.group("month")))
        else:
            put(group, str(new.year))
    out.append(value[pos:])
    return "".join(out)


def date_offsets_agree(original: str, spans: Sequence[Span], changes) -> tuple[str, str]:
    """A rewrite's dates must move by one offset, as the fallback's do: the full dates of the
    original (day, month and year) and what the rewrite made of them (its `changes`, original
    offsets) give one shift in days, give or take a leap day. ("", "") when they agree."""
    order = _numbers_order([s.value for s in spans if s.category == "date"])
    shifts = {}
    for s in spans:
        if s.category != "date":
            continue
        old = _parse(s.value, order)
        touching = sorted((c for c in changes if c["start"] < s.end and s.start < c["end"]),
                          key=lambda c: c["start"])
        if old is None or old.year is None or old.day is None or not touching:
            continue
        start, end = min(s.start, touching[0]["start"]), max(s.end, touching[-1]["end"])
        pieces, pos = [], start
        for c in touching:
            pieces += [original[pos:c["start"]], c["replacement"]]
            pos = c["end"]
        became = " ".join(pieces + [original[pos:end]])
        found = date_spans(became)
        new = _parse(found[0].value, order) if found else None
        if new is None or new.year is None or new.day is None:
            continue
        shifts[s.value] = (datetime.date(new.year, new.month, new.day)
                           - datetime.date(old.year, old.month, old.day)).days
    if shifts and max(shifts.values()) - min(shifts.values()) > 1:
        (a, da), (b, db) = min(shifts.items(), key=lambda kv: kv[1]), \
            max(shifts.items(), key=lambda kv: kv[1])
        return "incoherent", (f"the dates moved by different offsets ({da} days for {a!r}, "
                              f"{db} for {b!r}); move every date by the same number of days")
    return "", ""


# --- places, organisations, ages, record numbers -----------------------------------------------

# Legal forms; the long ones in any case ("CO.LTD.", "INC"), the short ones only as written.
_LEGAL_FORM = (r"(?:(?i:Co\.,? ?Ltd\.?|Ltd\.?|Limited|Inc\.?|Incorporated|LLC|L\.L\.C\.|LLP|plc|"
               r"Corp\.?|Corporation)|Co\.|GmbH|AG|KG|SE|SA|S\.A\.|SAS|SARL|S\.p\.A\.|SpA|"
               r"S\.L\.|BV|B\.V\.|NV|N\.V\.|Pty\.? Ltd\.?|Oy|AB|ASA|A/S)")
# A run of capitalised words (no sentence's period inside: "Poland. Acme Inc." is two) before
# a legal form.
_ORG_WORD = r"[a-z]?[A-Z][\w&'-]*(?:\.[A-Z][\w&'-]*)*"  # "iRobot", "U.S"
_ORG_WITH_FORM = re.compile(r"(?<![\w&'.-])((?:" + _ORG_WORD + r"[ \t]+(?:(?:of|and|&|the|de|du)"
                            r"[ \t]+)?){0,4}" + _ORG_WORD + r"),?[ \t]+(" + _LEGAL_FORM
                            + r")(?![\w])")
_FORM_AT_END = re.compile(r",?[ \t]+" + _LEGAL_FORM + r"$")
_AGE = re.compile(
    r"(?i)(?<![\w.-])(?P<n>\d{1,3})(?:[- ]years?[- ]old\b|[- ]?y/?o\b|[- ]?y\.o\.|[- ]yrs?[- ]old\b"
    r"|[- ]years?[- ]of[- ]age\b)"
    r"|(?<![\w-])(?:aged?:?|turned|turning)[ \t]+(?P<m>\d{1,3})(?![\w.,]\d|\w)")
_RECORD_CUE = re.compile(
    r"(?i)\b(?:MRN|medical record(?: number| no\.?| #)?|patient (?:id|number|no\.?)|"
    r"health plan (?:id|number|no\.?)|member (?:id|number|no\.?)|policy (?:number|no\.?|#)|"
    r"account (?:number|no\.?|#)|acct\.? (?:no\.?|#)?|licen[cs]e (?:number|no\.?|#|plate)|"
    r"certificate (?:number|no\.?|#)|(?:number|licen[cs]e) plate|VIN|serial (?:number|no\.?|#)|"
    r"device (?:id|serial))[ \t]*[:#]?[ \t]*(?P<v>[A-Z0-9][A-Z0-9-]{3,}[0-9][A-Z0-9-]*"
    r"|[0-9][A-Z0-9-]{3,})")
# A postcode: after a cue ("ZIP: 10001", "postal code G1V 3V5"), or after a country name that
# ends an address block ("Germany 50637").
_POSTCODE = r"(?P<v>(?=[A-Z0-9]*\d)[A-Z0-9]{2,5}(?:[ -][A-Z0-9]{2,4})?)(?![\w-])"
_POSTCODE_CUE = re.compile(r"(?i:\b(?:zip(?: ?code)?|post(?:al)? ?code))[ \t]*[:#]?[ \t]*"
                           + _POSTCODE)
_COUNTRY_POSTCODE = re.compile(r"(?m)(?P<country>[A-Z][\w .'-]+?)[ \t]+" + _POSTCODE
                               + r"[ \t]*$")
# An employer named after a cue, without a legal form ("I work for Equity Residential").
_EMPLOYER = re.compile(r"\b(?:work(?:s|ed|ing)? (?:for|at)|employed (?:by|at)|join(?:s|ed|ing)?)"
                       r"[ \t]+((?:" + _ORG_WORD + r"[ \t]+(?:(?:of|and|&)[ \t]+)?){0,4}"
                       + _ORG_WORD + r")")
# A town in capitals after a place preposition ("I am in WINMALEE for", "to HELSINKI").
_CAPS = r"[A-ZÀ-ÖØ-Þ][A-ZÀ-ÖØ-Þ'-]{2,}"
_CAPS_TOWN = re.compile(r"\b(?:in|to|from|at|near|via)[ \t]+((?:" + _CAPS + r"[ \t])*" + _CAPS
                        + r")(?![\w])")
# Unit lines of an address block, between its street line and its town line.
_UNIT_LINE = re.compile(r"(?i)[ \t>?*-]*(?:apt|apartment|suite|ste|unit|flat|floor|fl|room|"
                        r"building|bldg|po box)\b\.?[^\n]*$")
# Words an organisation of any kind may carry: kept in its fake ("Hartley Paper Mills Ltd").
_SECTOR_WORDS = frozenset(
    "of and & the for de du des la le et y entertainment software paper foods food global "
    "retail residential equity energy health healthcare insurance investments investment "
    "management consulting associates solutions networks network communications properties "
    "realty resources orchestra hotel hotels restaurant cafe studio studios design digital "
    "logistics transport construction engineering electric electronics chemicals steel "
    "mining oil gas power water products brands stores store shop acquisitions acquisition "
    "corporate trading national american united first general union".split())


@functools.lru_cache(maxsize=None)
def _jobs() -> tuple:
    from faker.providers.job.en_US import Provider  # pylint: disable=import-outside-toplevel
    return tuple(j for j in Provider.jobs if "," not in j and "(" not in j)


@functools.lru_cache(maxsize=None)
def _profession_pattern():
    """A job title: up to three words ending in the head noun of one of Faker's job titles
    ("engineer", "clerk", "technician", ...), after a cue that ties it to a person: "works as
    a", "I am a", "she is an", ", the ... ," after a name, or alone on the line below a name."""
    heads = sorted({j.split()[-1].lower() for j in _jobs()} - {"crew"}, key=len, reverse=True)
    head = r"(?i:" + "|".join(re.escape(h) for h in heads) + r")s?"
    title = r"(?:[A-Za-z][a-z-]+[ \t]+){0,3}" + head
    return re.compile(
        r"(?i:\b(?:work(?:s|ed|ing)?|employed|hired|trained|qualified)[ \t]+as|"
        r"\b(?:I[ \t]+am|I'm|[Ss]he[ \t]+is|[Hh]e[ \t]+is|[Ss]he[ \t]+was|[Hh]e[ \t]+was))"
        r"[ \t]+(?P<a>(?:an?|the)[ \t]+(?P<t>" + title + r"))(?![\w-])"
        r"|,[ \t]+(?P<b>the[ \t]+(?P<u>" + title + r")),"
        r"|(?m:^[ \t>?*-]*(?P<c>" + title + r")[ \t]*$)")


def profession_spans(text: str, taken: Sequence[Span]) -> list[Span]:
    """Professions tied to a person (see _profession_pattern); a line's title only below a
    line that holds a person's name."""
    out = []
    for m in _profession_pattern().finditer(text):
        group = "a" if m.group("a") else "b" if m.group("b") else "c"
        start, end = m.start(group), m.end(group)
        if group == "c":
            prev_end = text.rfind("\n", 0, start)
            prev_start = text.rfind("\n", 0, max(prev_end, 0)) + 1
            while prev_end > 0 and not text[prev_start:prev_end].strip():  # blank lines
                prev_end = prev_start - 1
                prev_start = text.rfind("\n", 0, max(prev_end, 0)) + 1
            if prev_end <= 0 or not any(t.category == "person" and prev_start <= t.start
                                        < prev_end for t in taken):
                continue
        out.append(Span(start, end, "profession", text[start:end]))
    return out


def _generic_word(word: str) -> bool:
    """A word any organisation may carry ("Paper", "Mills", "Bank", "of"): kept in its fake."""
    return org_word(word) or word.lower().strip(",.") in _SECTOR_WORDS


_ABOVE_TOWNS = frozenset("us usa u.s. u.s.a. uk u.k. eu america europe asia africa "
                         "oceania".split()) | {"united states", "great britain", "england",
                                               "scotland", "wales", "northern ireland",
                                               "south korea", "north korea", "the netherlands",
                                               "czechia", "russia", "latin america"}
# Capitals spaCy takes for an organisation or place that name neither.
_NOT_NAMES = frozenset("ATM ASAP IBAN PIN SSN DOB FYI ETA CEO CFO CTO COO HR IT PDF URL ID VAT "
                       "GDPR FAQ OK TBD NB PS".split())


def _is_country_or_state(value: str) -> bool:
    return value in countries_and_states() or value.lower() in _ABOVE_TOWNS


@functools.lru_cache(maxsize=None)
def _us_states() -> tuple:
    from faker.providers.address.en_US import Provider  # pylint: disable=import-outside-toplevel
    return tuple(Provider.states)


def _spacy_spans(text: str, policy: Policy) -> list[Span]:
    """Places and organisations from the spaCy entities of the text (the parse the name
    detector made), corrected by the gazetteers: spaCy's small model calls "Wrocław" an ORG."""
    doc = NER.doc(text)
    out = []
    for ent in doc.ents:
        start, end, value = ent.start_char, ent.end_char, ent.text
        lead = re.match(r"(?i)the\s+", value)
        if lead:
            start, value = start + lead.end(), value[lead.end():]
        value = value.rstrip(" .,;:'’s") if value.endswith(("'s", "’s")) else value
        end = start + len(value)
        if not value or not value[:1].isupper() or "\n" in value or value in _NOT_NAMES \
                or any(c in value for c in "()[]{}") or street_word(value.split()[-1]):
            continue  # "ATM", "Cyprus (Greek", a street's name ("Pikk St.", "Zistelweg")
        listed = value in city_names() or value.isupper() and value.title() in city_names()
        if ent.label_ in ("GPE", "LOC", "ORG", "PERSON", "FAC") and listed \
                and value not in first_names():
            out.append(Span(start, end, "place", value))
        elif ent.label_ == "GPE" and not _is_country_or_state(value):
            if policy.places and not any(c.isdigit() for c in value):
                out.append(Span(start, end, "place", value))
        elif value in ("New York", "Washington") and policy.places:  # the city, mostly
            out.append(Span(start, end, "place", value))
        elif ent.label_ == "GPE" and value in _us_states() and policy.regions:
            out.append(Span(start, end, "region", value))
        elif ent.label_ == "ORG" and policy.organizations and len(value) > 1 \
                and not _is_country_or_state(value) \
                and not (" " not in value and value.lower() in english_words()):  # "Notes"
            out.append(Span(start, end, "organization", value))
    return [s for s in out if (s.category != "place" or policy.places)]


def _listed_towns(text: str) -> list[Span]:
    """Words that a Faker town list holds and no other list does: not an English word, first
    name or surname ("Hutthurm", "Thohoyandou"; not "Reading", "Florence", "Lincoln")."""
    out = []
    for m in re.finditer(r"(?<![\w'-])[^\W\d_][\w'-]{3,}", text):
        w = m.group()
        if w[:1].isupper() and w in city_names() and w.lower() not in english_words() \
                and w not in first_names() and w not in last_names() and not street_word(w):
            out.append(Span(m.start(), m.end(), "place", w))
    return out


def _town_lines(text: str, taken: Sequence[Span]) -> list[Span]:
    """The town line of an address block: the first line below a street address (unit lines
    such as "Suite 394" skipped) that holds only words ("Hamilton East", "HELSINKI"; a line
    with its postcode is the address detector's)."""
    out = []
    for a in taken:
        if a.category != "street_address":
            continue
        pos = a.end
        for _ in range(3):
            nl = text.find("\n", pos)
            if nl < 0:
                break
            line_end = text.find("\n", nl + 1)
            line_end = len(text) if line_end < 0 else line_end
            line = text[nl + 1:line_end]
            pos = line_end
            if not line.strip() or _UNIT_LINE.fullmatch(line):
                continue
            m = re.fullmatch(r"[ \t>?*-]*([^\W\d_][^\d\n,;:]{1,40}?)[ \t.,]*", line)
            value = m.group(1).strip() if m else ""
            if value and len(value.split()) <= 4 and not _is_country_or_state(value):
                start = nl + 1 + line.index(value)
                out.append(Span(start, start + len(value), "place", value))
            break
    return out


def quasi_spans(text: str, taken: Sequence[Span], policy: Policy) -> list[Span]:
    """The policy's quasi-identifier spans of text, none overlapping `taken` (the direct
    identifiers, found first: a date of birth stays a date of birth) or each other."""
    if not policy.quasi:
        return []
    spans: list[Span] = []
    busy = list(taken)

    def add(span: Span):
        if span.value.strip() and not any(span.overlaps(s.start, s.end) for s in busy):
            spans.append(span)
            busy.append(span)

    if policy.record_numbers:
        for m in _RECORD_CUE.finditer(text):
            add(Span(m.start("v"), m.end("v"), "record_number", m.group("v")))
    if policy.places:
        for m in _POSTCODE_CUE.finditer(text):
            add(Span(m.start("v"), m.end("v"), "postcode", m.group("v")))
        for m in _COUNTRY_POSTCODE.finditer(text):
            if _is_country_or_state(m.group("country").strip(" ?>*-")):
                add(Span(m.start("v"), m.end("v"), "postcode", m.group("v")))
    if policy.dates:
        for s in date_spans(text):
            add(s)
    if policy.ages:
        for m in _AGE.finditer(text):
            group = "n" if m.group("n") else "m"
            if policy.ages == "over_89" and int(m.group(group)) <= 90:
                continue  # Safe Harbor keeps ages up to 89; 90 is its "90 or older"
            add(Span(m.start(), m.end(), "age", m.group()))
    if policy.organizations:
        for m in _ORG_WITH_FORM.finditer(text):
            start = m.start(1)
            lead = re.match(r"(?:The|A|An|At|In|For|From|With|By|To|On)[ \t]+", m.group(1))
            if lead:
                start += lead.end()
            add(Span(start, m.end(), "organization", text[start:m.end()]))
        for m in _EMPLOYER.finditer(text):
            value = m.group(1)
            if not _is_country_or_state(value) and value.lower() not in english_words():
                add(Span(m.start(1), m.end(1), "organization", value))
    if policy.professions:
        for s in profession_spans(text, taken):
            add(s)
    if policy.places:
        for s in _town_lines(text, taken):
            add(s)
        for m in _CAPS_TOWN.finditer(text):
            value = m.group(1)
            if not _is_country_or_state(value.title()) and value.lower() not in english_words() \
                    and value not in _NOT_NAMES:
                add(Span(m.start(1), m.end(1), "place", value))
    if policy.places or policy.organizations:
        for s in _spacy_spans(text, policy):
            add(s)
    if policy.places:
        for s in _listed_towns(text):
            add(s)
    if policy.dates and not policy.keep_years:
        for s in year_spans(text, busy):
            add(s)
    # A place or organisation found once is one wherever it recurs (spaCy tags by context).
    for value, category in sorted({(s.value, s.category) for s in spans
                                   if s.category in ("place", "region", "organization")},
                                  key=lambda vc: -len(vc[0])):
        for m in re.finditer(r"(?<![\w@.-])" + re.escape(value) + r"(?![\w@-])", text):
            add(Span(m.start(), m.end(), category, value))
    return sorted(spans, key=lambda s: s.start)


# --- fakes -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _cities_by_locale() -> dict:
    """Faker locale -> its list of real towns, for the Latin-script locales that keep one."""
    return {loc: tuple(c for c in cities if c[:1].isupper())
            for loc, cities in cities_by_locale().items()}


@functools.lru_cache(maxsize=None)
def _locale_of_city() -> dict:
    out: dict = {}
    for loc, cities in sorted(_cities_by_locale().items()):
        for c in cities:
            out.setdefault(c, loc)
    return out


class QuasiFakes:
    """The quasi-identifier replacements of one document (see the module docstring).

    rng(key) -> the document's seeded Random for `key`; fresh(draw) draws again while a value
    repeats a real value or another value's fake (the identity map's rule); spans: the
    document's spans (its numeric dates decide day-first or month-first)."""

    def __init__(self, policy: Policy, rng: Callable[[str], random.Random],
                 fresh: Callable[[Callable[[], str]], str], spans: Sequence[Span],
                 fixed: Optional[dict] = None):
        """fixed: value -> replacement already chosen elsewhere in the document (an accepted
        model rewrite of another segment): a date there sets the document's offset, so the
        fallback's dates move as the model's did."""
        self._policy, self._rng, self._fresh = policy, rng, fresh
        r = rng("quasi\x00date offset")
        self.years = 0 if policy.keep_years else r.choice((-3, -2, -1, 1, 2, 3))
        # With whole years moved, the days stay few so that a date's year mostly moves with
        # the bare years of the text; alone (Safe Harbor) they hide day and month.
        most = 180 if policy.keep_years else 60
        self.days = r.choice([d for d in range(-most, most + 1) if abs(d) >= 7])
        self.age_delta = rng("quasi\x00age jitter").choice((-3, -2, -1, 1, 2, 3))
        self._order = _numbers_order([s.value for s in spans if s.category == "date"])
        for s in spans:
            if s.category == "date" and (fixed or {}).get(s.value) and self._follow(
                    s.value, fixed[s.value]):
                break

    def _follow(self, old_value: str, new_value: str) -> bool:
        """Take the offset from one full date and its replacement; False if either is none,
        or if under `quasi` it moves by less than half a year (bare years could not move with
        it, and a bare year left as it was is a leak: the document's own offset then holds)."""
        old, new = _parse(old_value, self._order), _parse(new_value, self._order)
        if not old or not new or None in (old.year, old.day, new.year, new.day):
            return False
        before = datetime.date(old.year, old.month, old.day)
        delta = (datetime.date(new.year, new.month, new.day) - before).days
        years = 0 if self._policy.keep_years else round(delta / 365.25)
        if delta == 0 or (years == 0 and not self._policy.keep_years):
            return False
        self.years, self.days = years, delta - (_shift(before, years, 0) - before).days
        return True

    def replace(self, span: Span) -> str:
        cat, value = span.category, span.value
        if cat == "date":
            return self._date(value)
        if cat == "year":
            return str(int(value) + self.years)
        if cat == "age":
            return self._age(value)
        if cat == "postcode":
            return self._postcode(value)
        if cat == "record_number":
            rng = self._rng("quasi\x00" + value)
            return self._fresh(lambda: "".join(
                str(rng.randrange(10)) if c.isdigit() else c for c in value))
        if cat == "place":
            return self._place(value)
        if cat == "region":
            rng = self._rng("quasi\x00" + value)
            return self._fresh(lambda: rng.choice([s for s in _us_states() if s != value]))
        if cat == "organization":
            return self._organization(value)
        if cat == "profession":
            return self._profession(value)
        raise ValueError(f"not a quasi-identifier category: {cat!r}")

    def _date(self, value: str) -> str:
        d = _parse(value, self._order)
        if d is None:  # detected in one order, never None in practice
            return value
        if d.year is None:  # a day and month: D days within a common year
            new = datetime.date(2001, d.month, d.day or 15) + datetime.timedelta(days=self.days)
        else:
            new = _shift(datetime.date(d.year, d.month, d.day or 15), self.years, self.days)
        out = _write(d, new, self._order)
        if out == value:  # a month and year whose shift stayed inside the month
            new = _shift(datetime.date(d.year or 2001, d.month, 15), self.years or 1,
                         self.days)
            out = _write(d, new, self._order)
        return out

    def _age(self, value: str) -> str:
        m = re.search(r"\d{1,3}", value)
        age = int(m.group())
        if self._policy.ages == "over_89":
            new = 90
        else:
            new = age + self.age_delta
            if (age < 18) != (new < 18) or new < 1:  # a minor stays a minor, an adult an adult
                new = age - self.age_delta
            new = max(new, 1)
        return value[:m.start()] + str(new) + value[m.end():]

    def _profession(self, value: str) -> str:
        """Another job title of Faker's list, its article agreeing ("an engineer" -> "a
        nurse"), in the original's case."""
        rng = self._rng("quasi\x00" + value)
        article = re.match(r"(?i)(an?|the)[ \t]+", value)
        bare = value[article.end():] if article else value

        def draw() -> str:
            job = rng.choice(_jobs())
            job = job.lower() if bare.islower() else job
            if article and article.group(1).lower() != "the":
                word = ("an" if job[:1].lower() in "aeiou" else "a")
                word = word.capitalize() if article.group(1)[:1].isupper() else word
                return f"{word} {job}"
            return (value[:article.end()] if article else "") + job
        return self._fresh(draw)

    def _postcode(self, value: str) -> str:
        """The leading characters kept (three of a US ZIP, what Safe Harbor allows; fewer of a
        shorter code, always two fresh ones), the rest fresh of the same kind."""
        rng = self._rng("quasi\x00" + value)
        keep = min(3, max(1, sum(c.isalnum() for c in value) - 2))

        def draw() -> str:
            out, seen = [], 0
            for c in value:
                seen += c.isalnum()
                if not c.isalnum() or seen <= keep:
                    out.append(c)
                else:
                    out.append(str(rng.randrange(10)) if c.isdigit()
                               else rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ"))
            return "".join(out)
        return self._fresh(draw)

    def _place(self, value: str) -> str:
        rng = self._rng("quasi\x00" + value)
        locale = _locale_of_city().get(value)
        if locale:
            towns = [c for c in _cities_by_locale()[locale] if c != value]
            return self._fresh(lambda: rng.choice(towns))
        return self._fresh(lambda: with_faker(rng, lambda f: f.city()))

    def _organization(self, value: str) -> str:
        """Same shape: the legal form and generic words kept, the distinctive words replaced
        by surnames, an acronym by an acronym of its length."""
        rng = self._rng("quasi\x00" + value)
        form = _FORM_AT_END.search(value)
        name, tail = (value[:form.start()], value[form.start():]) if form else (value, "")

        def draw() -> str:
            words, replaced = name.split(" "), False
            out = []
            for w in words:
                core = w.strip(",.")
                if not core or _generic_word(core) or not core[:2].strip("'-&").isalnum():
                    out.append(w)
                elif re.fullmatch(r"[A-Z0-9]{2,6}", core):  # an acronym: another one
                    out.append(w.replace(core, "".join(rng.choice("ABCDEFGHJKLMNPRSTVW")
                                                       for _ in core)))
                    replaced = True
                else:
                    out.append(w.replace(core, with_faker(rng, lambda f: f.last_name())))
                    replaced = True
            if not replaced:  # every word generic ("Global Trust"): the first one goes
                out[0] = with_faker(rng, lambda f: f.last_name())
            return " ".join(out) + tail
        return self._fresh(draw)
