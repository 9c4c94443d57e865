"""Street addresses, in the shapes people write them in many countries.

An address is found by its street-type word, a closed vocabulary per language, which is what
makes an address pattern workable: USPS suffixes after the name ("42 Baker Street"), type words
before it ("Rue de Penthièvre 96", "Via dalla Staziun 87", "ul. Polna 5", "Trg revolucije 91"),
type words written into the name ("Favoritenstrasse 36", "Harevænget 23", "Koskikatu 83",
"Östbygatan 36"), or standing after it ("Nánási út 79", "Karu põik 61"). The vocabulary is
Faker's per-locale street lists (drawn from each country's conventions) plus the forms Faker
lacks, listed in `_EXTRA_*`.

A street line without a type word ("Democracia 4098", "Aia 16") is an address only in an
address context: a postcode-and-city line right below it (an address block), or a cue before
it ("Address:", "lives at"). Post-office boxes and US military addresses (PSC/Unit ... Box,
APO/FPO/DPO) have shapes of their own.

Each finder returns (start, end) of the street line (with its unit, and for US/UK shapes the
"City, ST 12345" tail); cities and postcodes alone are quasi-identifiers and stay.
"""

from __future__ import annotations

import functools
import importlib
import re

# Type words Faker's locale lists lack. Lower-case forms match any case of their first letter.
_EXTRA_PREFIXES = {
    "sl": ["Trg", "Cesta", "Ulica"], "hr": ["Trg", "Ulica"], "pl": ["ul.", "al.", "os.", "pl."],
    "el": ["Οδός", "Οδ.", "Αγ.", "Λεωφ."], "it": ["Corso", "Largo", "Vicolo", "Viale"],
    "es": ["C/", "Avda.", "Paseo", "Camino", "Carrer", "Passeig", "Ronda", "Travesía"],
    "pt": ["Rua", "Av.", "Travessa", "Estrada", "Praça"], "fr": ["Place", "Impasse", "Allée",
                                                                 "Quai", "Cours", "Route"],
    "de": ["Am", "An der", "Im"], "uy": ["Avenida", "Camino", "Bulevar"],
    "kl": [], "en": [],
}
_EXTRA_SUFFIXES = {
    "de": ["strasse", "straße", "str.", "gasse", "weg", "allee", "platz", "ring", "damm", "ufer",
           "chaussee", "steig", "pfad", "markt"],
    "da": ["vej", "gade", "stræde", "vænget", "vangen", "parken", "bakken", "høj", "toften",
           "haven", "lunden", "alle", "allé"],
    "nl": ["straat", "laan", "weg", "gracht", "plein", "kade", "dreef", "singel", "haven",
           "dijk", "pad", "steeg", "hof"],
    "sv": ["gatan", "vägen", "gränd", "stigen", "backen", "torget", "allén", "leden"],
    "no": ["veien", "vegen", "gata", "gate", "stien", "bakken", "haugen", "høyden", "lia",
           "nipen", "svingen", "åsen"],
    "is": ["gata", "vegur", "stræti", "braut", "stígur", "tún", "hólar"],
    "fi": ["katu", "tie", "kuja", "polku", "raitti", "bulevardi"],
    "et": ["tänav", "põik", "maantee", "puiestee", "tee"],
    "hu": ["utca", "út", "tér", "köz", "körút", "sétány"],
    "cs": ["ulice", "třída", "nábřeží", "náměstí"],
    "sl": ["ulica", "cesta", "trg"], "pl": ["ulica", "aleja"],
    "kl": ["aqq.", "aqqutaa", "aqqusinersuaq"],
}
# Locales a type word points to, for a fake in the same country's style (see fakes.py).
_SUFFIX_LOCALE = {"de": "de_DE", "da": "da_DK", "nl": "nl_NL", "sv": "sv_SE", "no": "no_NO",
                  "is": "is_IS", "fi": "fi_FI", "et": "et_EE", "hu": "hu_HU", "cs": "cs_CZ",
                  "sl": "sl_SI", "pl": "pl_PL", "kl": "da_DK", "fr": "fr_FR", "it": "it_IT",
                  "es": "es_ES", "pt": "pt_PT", "el": "el_GR", "hr": "hr_HR", "uy": "es_ES",
                  "ro": "ro_RO"}
_FAKER_PREFIX_LOCALES = {"fr": "fr_FR", "it": "it_IT", "es": "es_ES", "pt": "pt_PT",
                         "ro": "ro_RO", "pl": "pl_PL", "el": "el_GR"}


def _street_suffixes() -> str:
    # USPS street suffixes as Faker lists them (Avenue, Street, Lane, ...), plus the usual
    # abbreviations: a closed vocabulary, which is what makes an address regex workable.
    from faker.providers.address.en_US import Provider  # pylint: disable=import-outside-toplevel
    # Australian, British and New Zealand types USPS lacks ("43 Farrar Parade"); not "Rise" or
    # "Chase", which end headlines ("Top 10 Stocks Rise").
    words_ = set(Provider.street_suffixes) | {"St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct", "Pl",
                                             "Sq", "Pkwy", "Hwy", "Ter", "Cir", "Str", "Parade",
                                             "Esplanade", "Promenade", "Circuit", "Quay", "Wynd",
                                             "Close", "Arcade", "Concourse", "Boardwalk"}
    return "|".join(sorted((re.escape(w) for w in words_), key=len, reverse=True))


@functools.lru_cache(maxsize=None)
def _prefix_words() -> dict:
    """type word (as written) -> language, from Faker's street_prefixes and `_EXTRA_PREFIXES`."""
    out = {}
    for lang, locale in _FAKER_PREFIX_LOCALES.items():
        try:
            provider = importlib.import_module(f"faker.providers.address.{locale}").Provider
        except ImportError:
            continue
        for attr in ("street_prefixes", "street_prefixes_long", "street_prefixes_short"):
            for w in provider.__dict__.get(attr, ()) or ():
                if isinstance(w, str) and w.strip() and len(w.strip()) > 2:
                    out.setdefault(w.strip(), lang)
    for lang, ws in _EXTRA_PREFIXES.items():
        for w in ws:
            out.setdefault(w, lang)
    return out


@functools.lru_cache(maxsize=None)
def _suffix_words() -> dict:
    """lower-case street-type ending -> language."""
    out = {}
    for lang, ws in _EXTRA_SUFFIXES.items():
        for w in ws:
            out.setdefault(w.lower(), lang)
    return out


_HOUSE = r"\d{1,5}[A-Za-z]?(?:\s?[-/]\s?\d{1,4}[A-Za-z]?)?"
# The unit word ends at a word boundary: "Fl" must not open "Floresside".
UNIT_WORD = r"(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|Rm)"
_UNIT = (r"(?:,?\s+(?:" + UNIT_WORD + r"\b|#)\.?\s*#?"
         r"\w{1,6})")
# A unit on a line of its own ("  Unit 82", "??? Suite 166"), without its line break.
UNIT_LINE = r"[ \t>?*•-]*" + UNIT_WORD + r"\b\.?[ \t]*#?\w{1,6}[ \t.,]*"
# "City, ST 12345" (US) or "City NW1 6XE" (UK postcode).
_CITY_STATE_ZIP = (r"(?:,?\s*\n?\s*[A-Z][A-Za-z .'-]{1,40}?(?:,\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?"
                   r"|,?\s+[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2})\b)")
_US_HOUSE = r"\b\d{1,6}[A-Za-z]?"  # "221B Baker Street"
# A house number and capitalised words, then a known street suffix (unit and city optional),
# or any last word when a unit or a city-and-code tail follows ("12 Gomez Wild, Lake Ryan,
# MS 67983", "9 John Towers Suite 428"): such a tail makes it an address whatever the suffix.
# A street name's word is capitalised (Latin, Greek or Cyrillic letters: "27 Löberöd St.",
# "26 Βρασίδα St.") or a numbered street's ordinal ("1783 49th Avenue").
_US_STREET_WORD = (r"(?:[A-Z\u00C0-\u00D6\u00D8-\u00DE\u0391-\u03A9\u0410-\u042F](?:[^\W\d_]|['-])*"
                   r"|\d{1,3}(?:st|nd|rd|th)\b)")
US_ADDRESS = re.compile(
    _US_HOUSE + r"(?:\s+" + _US_STREET_WORD + r"){1,4}\s+(?:" + _street_suffixes() + r")\b\.?"
    + _UNIT + "?" + _CITY_STATE_ZIP + "?"
    r"|" + _US_HOUSE + r"(?:\s+" + _US_STREET_WORD + r"){1,4}(?:" + _UNIT + _CITY_STATE_ZIP
    + "?|" + _CITY_STATE_ZIP + ")")

_PO_BOX = re.compile(
    r"\b(?:P\.?\s?O\.?\s?Box|Post(?:al)? Office Box|PO Box|Postfach|Boîte postale|BP|Apartado"
    r"(?: de correos)?|Skrytka pocztowa|Postboks|Box)\s+\d{1,6}\b"
    r"|\b(?:PSC|CMR|Unit)\s+\d{3,5},?\s+Box\s+\d{1,5}(?:\s*\n?\s*(?:APO|FPO|DPO)\s+A[AEP]\s+\d{5})?"
    r"|\bUS(?:NS|NV|S|CGC)\s+[A-Z][A-Za-z]+(?:\s*\n?\s*(?:FPO|APO|DPO)\s+A[AEP]\s+\d{5})?"
    r"|\b(?:APO|FPO|DPO)\s+A[AEP]\s+\d{5}\b")

_WORD = r"[^\W\d_][\w'’.-]*"
# A street name's words: capitalised words, lower-case particles between them.
_PARTICLE = (r"(?:de|del|della|delle|dei|degli|dalla|dal|di|da|do|dos|das|des|du|la|le|les|"
             r"el|los|las|van|von|der|den|het|y|e|i|na|u|pod|nad|ke|al|à|sur|sous)")
_NAME_WORDS = r"(?:" + _WORD + r"(?:[ \t]+(?:" + _PARTICLE + r"[ \t]+)?" + _WORD + r"){0,4})"


def _cap(word: str) -> bool:
    return word[:1].isupper()


@functools.lru_cache(maxsize=None)
def _prefixed() -> re.Pattern:
    words = sorted(_prefix_words(), key=len, reverse=True)
    alt = "|".join(re.escape(w) if not w[0].isalpha() else
                   "[" + w[0].upper() + w[0].lower() + "]" + re.escape(w[1:]) for w in words)
    # "Rue de Penthièvre 96", "96 rue de Penthièvre", "Via dalla Staziun, 87"
    # The type word ends at a period ("ul.Polna") or a space: "Am" (German) is no prefix of
    # "Amelia".
    return re.compile(r"(?:(?<![\w.])(" + _HOUSE + r"),?\s+)?(?<![\w])(?:" + alt + r")"
                      r"(?:(?<=\.)\s*|\s+)" + _NAME_WORDS + r"(?:,?\s+(" + _HOUSE + r")\b)?"
                      + _UNIT + "?")


@functools.lru_cache(maxsize=None)
def _suffixed() -> re.Pattern:
    ends = sorted(_suffix_words(), key=len, reverse=True)
    alt = "|".join(re.escape(e) for e in ends)
    # one or two name words, the last ending in a type word or followed by one as a word
    return re.compile(
        r"(?:(?<![\w.])(" + _HOUSE + r"),?\s+)?"
        r"((?:" + _WORD + r"[ \t]+){0,2}" + r"[^\W\d_]*?(?:" + alt + r")(?![\w]))"
        r"(?:,?\s+(" + _HOUSE + r")\b)?" + _UNIT + "?", re.I)


# A street line anywhere: "<words> <number>" or "<number> <words>" filling a line.
_STREET_LINE = re.compile(r"(?m)^[ \t>?*•-]*((?:" + _HOUSE + r",?\s+" + _NAME_WORDS + r")|(?:"
                          + _NAME_WORDS + r",?\s+" + _HOUSE + r"))" + _UNIT + r"?[ \t.,]*$")
# The line below a street line in an address block: "2726 TD Zoetermeer", "60010 Piñera",
# "Vila Real 5000-047", "Limassol 3041", "London NW1 6XE", "Brakpan, GA 1553".
_POSTCODE_LINE = re.compile(
    r"^[ \t>?*•-]*(?:(?:[A-Z]{1,2}-)?\d{3,5}(?:[- ]\d{2,4}| [A-Z]{2})?,?\s+" + _NAME_WORDS +
    r"|" + _NAME_WORDS + r",?\s+(?:[A-Z]{2}\s+)?(?:[A-Z]{1,2}-)?\d{3,5}(?:[- ]\d{2,4})?"
    r"|" + _NAME_WORDS + r",?\s+[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2})[ \t.,]*$")
# "<street> <number>, 3952 Ilulissat" / "... at Löberöd 27\n520 43 ÅSARP" / "Csabai kapu 39.\n1045
# Budapest" (a house number written with a period): a postcode and a city right after a
# street-shaped run, on the same line or the next.
_STREET_THEN_POSTCODE = re.compile(
    r"(?<![\w])((?:" + _HOUSE + r",?\s+" + _NAME_WORDS + r")|(?:" + _NAME_WORDS + r",?\s+"
    + _HOUSE + r"\.?))(?:,\s*|[ \t]*\n[ \t>]*)(?:[A-Z]{1,2}-)?\d{3,5}(?:[- ]\d{2,4}| [A-Z]{2})?"
    r"\s+[^\W\d_]")
# "is at 80 Aqqusinersuaq": a house number and a capitalised word after "at" (not a time).
_AT_NUMBER_STREET = re.compile(r"\b(?:is|are|lives?|living|located|stays?|staying|meet|office"
                               r"|store|shop) (?:at|on) ((" + _HOUSE + r")\s+(?-i:[A-Z])[^\W\d_]+"
                               r"(?:\s+(?-i:[A-Z])[^\W\d_]+){0,3})", re.I)
_NOT_STREET_WORDS = frozenset(
    "AM PM A.M. P.M. O'CLOCK AND OR THE UTC GMT CET EST PST HRS HOURS MINUTES PERCENT KM MILES "
    "JANUARY FEBRUARY MARCH APRIL MAY JUNE JULY AUGUST SEPTEMBER OCTOBER NOVEMBER DECEMBER "
    "JAN FEB MAR APR JUN JUL AUG SEP SEPT OCT NOV DEC".split())
_CUE = re.compile(r"(?i)(?:\baddress(?:es)?\b[^\n:]{0,20}:?|\blives? (?:at|on)|\blocated at|"
                  r"\bship(?:ped)? to|\bsend (?:it |them )?to|\bdeliver(?:ed)? to|"
                  r"\bmove[ds]? to|\bstaying at)\s*\n?[ \t>]*$")


def _is_street(words: str) -> bool:
    """A street name starts with a capitalised word, is not a run of small words and is not a
    country ("2423, Australia")."""
    from gdr_beam.tasks.pii.gazetteers import place_words  # pylint: disable=import-outside-toplevel
    names = [w for w in words.split() if not re.fullmatch(r"[A-Z]\.", w)]  # "N. Nikodimou St"
    first = names[0] if names else ""
    return _cap(first) and len(first.rstrip(".")) >= 2 and words.strip(" ,.") not in place_words()


def address_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, language) of every street address found; language '' when unknown."""
    spans = [found for find in _FINDERS for found in find(text)]
    # A find cut back to its house number alone ("kapu 39." with an unknown type word) is no
    # street.
    return [s for s in _merge(text, spans) if re.search(r"[^\W\d_]{2}", text[s[0]:s[1]])]


# A unit word the street pattern took for its street-type suffix ("Flat" is both) after the
# real suffix, then the unit's number: "90 Scarcroft Road\n Flat 287" keeps its 287.
_UNIT_WORD_END = re.compile(r"\b(?:" + _street_suffixes() + r")\.?\s+(?:Flat|Unit|Suite|Apt)\.?$")
_NUMBER_AFTER = re.compile(r"[ \t]+#?\d[\w-]{0,5}\b")


def _us_and_uk(text: str) -> list:
    out = []
    for m in US_ADDRESS.finditer(text):
        unit = _UNIT_WORD_END.search(m.group()) and _NUMBER_AFTER.match(text, m.end())
        out.append((m.start(), unit.end() if unit else m.end(), "en"))
    return out


def _po_boxes(text: str) -> list:
    return [(m.start(), m.end(), "en") for m in _PO_BOX.finditer(text)]


def _type_before_name(text: str) -> list:
    """"Rue de Penthièvre 96", "96 rue de Penthièvre", "ul. Polna 5": a house number on one
    side of a type word and the name."""
    out = []
    for m in _prefixed().finditer(text):
        if m.group(1) or m.group(2):
            # with the number in front, a number after the name is the postcode: stop before
            end = m.start(2) if m.group(1) and m.group(2) else m.end()
            out.append((m.start(), end, _prefix_words().get(_type_word_of(m.group(0)), "")))
    return out


def _type_in_or_after_name(text: str) -> list:
    """"Favoritenstrasse 36", "88 Mellemvej" (type word written into the name) and
    "Nánási út 79" (standing after it), with a house number on one side."""
    from gdr_beam.tasks.pii.gazetteers import countries_and_states  # pylint: disable=import-outside-toplevel
    out = []
    for m in _suffixed().finditer(text):
        if not (m.group(1) or m.group(3)):
            continue
        name = m.group(2)
        last = name.split()[-1]
        ending = next((e for e in sorted(_suffix_words(), key=len, reverse=True)
                       if last.lower().endswith(e)), "")
        standalone = len(name.split()) > 1 and last.lower() == ending
        compound = len(last) >= len(ending) + 3 and _cap(last)
        if not (compound or (standalone and _cap(name.split()[-2]))) \
                or last.rstrip(".,") in countries_and_states():
            continue  # "6510, Australia" ends in Norwegian "-lia" but is a postcode and country
        start = m.start()
        if not m.group(1):  # drop leading words that are not part of the name ("lives at")
            words = list(re.finditer(r"\S+", name))
            last_name_word = len(words) - 1 if standalone else len(words)  # "út" is lower-case
            keep = next((i for i in range(last_name_word - 1, -1, -1)
                         if not _cap(words[i].group())), -1) + 1
            if keep >= len(words) or (standalone and keep >= len(words) - 1):
                continue
            start = m.start(2) + words[keep].start()
        out.append((start, m.end(), _suffix_words().get(ending, "")))
    return out


# A unit alone on the line below a street line: "77 Spittelwiese\n Unit 82\n Reykjavík".
_UNIT_ONLY_LINE = re.compile(r"(?i)^" + UNIT_LINE + "$")


def _block_lines(text: str) -> list:
    """A street-shaped line above a postcode-and-city line or a unit line (or with its unit
    on the next line), or after an address cue."""
    out = []
    for m in _STREET_LINE.finditer(text):
        if not _is_street(re.sub(_HOUSE, "", m.group(1)).strip(" ,")):
            continue
        below = text[m.end():].lstrip("\n").split("\n", 1)[0] if m.end() < len(text) else ""
        if _POSTCODE_LINE.match(below) or _UNIT_ONLY_LINE.match(below) \
                or "\n" in text[m.end(1):m.end()] or _CUE.search(text, 0, m.start()):
            out.append((m.start(1), m.end(), ""))
    return out


def _before_postcode(text: str) -> list:
    out = []
    for m in _STREET_THEN_POSTCODE.finditer(text):
        start = _without_lead_words(text, m.start(1), m.end(1))
        if _is_street(re.sub(_HOUSE, "", text[start:m.end(1)]).strip(" ,")):
            out.append((start, m.end(1), ""))
    return out


def _without_lead_words(text: str, start: int, end: int) -> int:
    """Past the words a street-shaped run took before the street ("it is Atamaria 86"): lower-
    case words and cue words, up to the first capitalised word."""
    for w in re.finditer(r"\S+", text[start:end]):
        if _cap(w.group()) and w.group().lower() not in _CUE_WORDS or w.group()[:1].isdigit():
            return start + w.start()
    return start


def _after_at(text: str) -> list:
    out = []
    for m in _AT_NUMBER_STREET.finditer(text):
        if m.group(1)[len(m.group(2)):].split()[0].upper() not in _NOT_STREET_WORDS:
            out.append((m.start(1), m.end(1), ""))
    return out


def _before_town(text: str) -> list:
    """"at Qado Energy Inc., 82 Mariatal, Brakpan": a house number and a street name no word
    list knows, then a comma and a capitalised town. A street name that is an English word or
    a person's name ("5 Apples, Bob ...") is not taken."""
    from gdr_beam.tasks.pii.gazetteers import countries_and_states, english_words, first_names, last_names  # pylint: disable=import-outside-toplevel
    out = []
    for m in _NUMBER_WORDS_TOWN.finditer(text):
        last = m.group(2).split()[-1]
        after = _WORD_AT_TOWN.match(text, m.end()).group()
        # before a country the number and words are a postcode and town: "1124 Cite Des
        # Andalous, Tunisia"
        if last.lower() not in english_words() and last not in first_names() \
                and last not in last_names() and after not in countries_and_states() \
                and _is_street(m.group(2)):
            out.append((m.start(1), m.end(2), ""))
    return out


_NUMBER_WORDS_TOWN = re.compile(
    r"(?:^|(?<=[,:;]\s)|(?<=\bat\s)|(?<=\bto\s)|(?<=\bin\s))(" + _HOUSE + r")[ \t]+"
    r"((?:[A-Z\u00C0-\u00DE][^\W\d_]+[ \t]+){0,2}[A-Z\u00C0-\u00DE][^\W\d_]{3,}),[ \t]+"
    r"(?=[A-Z\u00C0-\u00DE][^\W\d_]+\b)", re.M)
_WORD_AT_TOWN = re.compile(r"[^\W\d_]+")


def _after_cue(text: str) -> list:
    return [(m.start(1), m.end(1), "") for m in _CUED_STREET.finditer(text)
            if _is_street(re.sub(_HOUSE, "", m.group(1)).strip(" ,"))]


_CUED_STREET = re.compile(r"(?i)(?:\baddress(?:es)?\b:?|\blives? at|\blocated at)\s+"
                          r"((?:" + _HOUSE + r",?\s+" + _NAME_WORDS + r")|(?:" + _NAME_WORDS
                          + r",?\s+" + _HOUSE + r"))(?=[,.;\n]|\s*$)")
_FINDERS = (_us_and_uk, _po_boxes, _type_before_name, _type_in_or_after_name, _block_lines,
            _before_postcode, _before_town, _after_at, _after_cue)


def _type_word_of(value: str) -> str:
    for w in sorted(_prefix_words(), key=len, reverse=True):
        if re.search(r"(?i)(?<![\w])" + re.escape(w) + r"(?![\w])", value):
            return w
    return ""


_SENTENCE_END = re.compile(r"(?<=[^\W\d_]{5})\.\s")


def _street_start(text: str, start: int, end: int) -> int:
    """Where the street begins in a find that may have taken words before it ("Send it to
    Favoritenstrasse 36"): the capitalised words and particles right before its anchor (the
    first word holding a street-type word or a house number)."""
    words = list(re.finditer(r"\S+", text[start:end]))
    prefixes = {w.lower() for w in _prefix_words()}
    suffixes = tuple(_suffix_words())

    def anchor(w: str) -> bool:
        low = w.lower().strip(",")
        return low[:1].isdigit() or low in prefixes or low.endswith(suffixes)
    first = next((i for i, w in enumerate(words) if anchor(w.group())), None)
    if first is None:
        return start
    i = first
    while i > 0:
        prev = words[i - 1].group().strip(",")
        if not (prev[:1].isupper() or prev.lower() in _PARTICLE_SET) or prev.lower() in _CUE_WORDS:
            break
        i -= 1
    while i < first and words[i].group().lower() in _PARTICLE_SET:
        i += 1
    return start + words[i].start()


_PARTICLE_SET = frozenset(_PARTICLE.strip("(?:)").split("|"))
# Capitalised words that open a sentence or a label, never part of a street name.
_CUE_WORDS = frozenset("send ship deliver mail address address: at to in on the our my your "
                       "is meet office shop store".split())


def _merge(text: str, spans: list) -> list:
    """Overlapping finds -> their union (the widest reading of one address), edges trimmed."""
    out: list = []
    spans = [(_street_start(text, start, end), end, lang) for start, end, lang in spans]
    for start, end, lang in sorted(spans, key=lambda s: (s[0], -s[1])):
        # A sentence ends inside the find ("42 Baker Street. Ms. Chen"): cut after its period.
        stop = _SENTENCE_END.search(text, start, end)
        if stop:
            end = stop.start() + 1
        while end > start and text[end - 1] in " \t\n,;:":
            end -= 1
        if out and start < out[-1][1]:
            s0, e0, l0 = out.pop()
            out.append((s0, max(e0, end), l0 or lang))
        else:
            out.append((start, end, lang))
    return out


def street_type_prefix(word: str) -> bool:
    """A street-type word written before the name ("Rue", "Calle", "ul.", "Via")."""
    return word.lower() in _prefix_words_lower()


@functools.lru_cache(maxsize=None)
def _prefix_words_lower() -> frozenset:
    return frozenset(w.lower() for w in _prefix_words())


# Street-type endings that also end dozens of first names (Norwegian "-lia": Natalia,
# Tuulia; Finnish "-tie": Lottie, Mattie): alone, such a word is no evidence of a street.
_NAME_LIKE_ENDINGS = ("lia", "tie")


def street_word(word: str, name_candidate: bool = False) -> bool:
    """A street's name or type word ("Zistelweg", "Skoanveien", "Street", "St"). For a word
    that may be a person's name (`name_candidate`), an ending that many first names share
    does not count ("Natalia called" is no street; "Mannerheimintie 5" is still found as an
    address by the patterns)."""
    low = word.lower().rstrip(".")
    if re.fullmatch(_street_suffixes(), word.rstrip(".")) and word[:1].isupper():
        return True
    return any(low.endswith(e) and len(low) >= len(e) + 3 for e in _suffix_words()
               if len(e) >= 3 and not (name_candidate and e in _NAME_LIKE_ENDINGS))


def locale_of(language: str) -> str:
    """The Faker locale for a fake address in the style a type word points to ('' = en_US)."""
    return _SUFFIX_LOCALE.get(language, "")
