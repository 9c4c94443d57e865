"""All pii detectors together: non-overlapping spans in text order."""

from __future__ import annotations

import re

from gdr_beam.tasks.base import Span
from gdr_beam.tasks.pii.addresses import UNIT_LINE, street_type_prefix, street_word
from gdr_beam.tasks.pii.gazetteers import city_names, countries_and_states, english_words, \
    first_names, last_names
from gdr_beam.tasks.pii.names import FIELD_LABELS, NER, announced, english_word, \
    gazetteer_persons, in_place_slot, merge_persons, org_word, outside, with_given_name_before
from gdr_beam.tasks.pii.national_ids import ID_WORDS
from gdr_beam.tasks.pii.recurrences import recurrences
from gdr_beam.tasks.pii.structured import DETECTORS


def detect(text: str, names: bool = True) -> list[Span]:
    """Non-overlapping spans in text order. Structured detectors first: a phone number the NER
    model calls a person is still a phone number. A value found once is taken wherever else
    it recurs in the text (`recurrences`)."""
    spans: list[Span] = []

    def add(span: Span):
        if not any(span.overlaps(s.start, s.end) for s in spans):
            spans.append(span)

    for category, find in DETECTORS:
        for start, end in find(text):
            if category == "phone" and _postcode(text, start, end):
                continue
            span = Span(start, end, category, text[start:end])
            inside = [s for s in spans if s.overlaps(start, end)]
            if category == "phone" and inside and all(
                    s.category == "phone" and start <= s.start and s.end <= end for s in inside):
                # libphonenumber (read as US) took the local part of a foreign national number;
                # the digit-shape pattern takes it whole with its area code: "01512 3456789",
                # "8 (301) 123-45-67"
                spans[:] = [s for s in spans if s not in inside]
            add(span)
    spans += recurrences(text, spans)
    if names:
        candidates = [c for s in NER.persons(text) + gazetteer_persons(text)
                      for c in outside(text, s, spans)]
        addresses = [s for s in spans if s.category == "street_address"]
        for span in merge_persons(text, candidates):
            if not _in_org_name(text, span) and not _town_line(text, span, addresses) \
                    and not _street_or_word(text, span) and not _id_word(span) \
                    and not _town_in_place_slot(text, span):
                span = _with_first_name_before(text, span)
                whole = with_given_name_before(text, span)
                add(span if any(whole.overlaps(s.start, s.end) for s in spans) else whole)
        for span in _mates(text, spans):
            add(span)
        spans += recurrences(text, spans, categories=("person",))
    return sorted(spans, key=lambda s: s.start)


_TOWN_AFTER = re.compile(r"[ \t]+[^\W\d_][^\W\d_]+")
_LINE_START = re.compile(r"(?:^|\n|,)[ \t]*$")


_POSTCODE_LABEL = re.compile(r"(?i)\b(?:zip(?: code)?|post ?code|postal code|plz|code postal|"
                             r"c\.?p\.?|cap)[ \t]*[:#]?[ \t]*$")


def _postcode(text: str, start: int, end: int) -> bool:
    """A short number that opens a line or follows a comma and precedes a town is a postcode
    ("75802-262 Rio Verde", "2520-499 Peniche"), not a phone; so is one a postcode label
    names ("ZIP: 2560-401")."""
    if sum(c.isdigit() for c in text[start:end]) > 8:
        return False
    before_town = bool(_TOWN_AFTER.match(text, end)) and bool(_LINE_START.search(text, 0, start))
    return before_town or bool(_POSTCODE_LABEL.search(text, max(0, start - 20), start))


def _in_org_name(text: str, span: Span) -> bool:
    """A name candidate inside an organisation's name: a capitalised neighbour on its line is
    an organisation word ("Vallourec SA", "Malu Paper Mills Ltd")."""
    return any(org_word(w) for w in _run_beside(text, span) + span.value.split()[1:])


_WORD_AFTER = re.compile(r"[ \t]+([A-Z][\w&'-]*\.?)")
_WORD_BEFORE = re.compile(r"([A-Z][\w&'-]*\.?)[ \t]+$")


def _run_beside(text: str, span: Span) -> list:
    """The capitalised words directly before and after the span on its line."""
    out, pos = [], span.end
    while m := _WORD_AFTER.match(text, pos):
        out.append(m.group(1).rstrip("."))
        pos = m.end()
    # A match holds no line break, so the search need not look before the span's line. A word
    # with a period ends the sentence before ("... India Ltd. Mimir Andreasen's killers").
    line_start, pos = text.rfind("\n", 0, span.start) + 1, span.start
    while (m := _WORD_BEFORE.search(text, line_start, pos)) and not m.group(1).endswith("."):
        out.append(m.group(1))
        pos = m.start()
    return out


_STREET_WORD_AFTER = re.compile(r"[ \t]+([A-Z][A-Za-z]*\.?)")
_ARTICLE_BEFORE = re.compile(r"(?i)\b(?:the|a|an)\s+$")
_THE_BEFORE = re.compile(r"\b[Tt]he\s+$")
_DEMONYM_ENDINGS = ("ish", "ian", "ese", "ean")
# Type words no one mistakes for a surname when they end a capitalised run ("Luís Camões
# Street"), though some are surnames alone ("Street").
_STREET_TYPES = frozenset("Street Avenue Road Boulevard Strasse Straße Highway".split())
# A lower-case word after a capitalised one that makes it a place: "Erlen bridge".
_PLACE_AFTER = re.compile(r"[ \t]+(?:street|road|avenue|bridge|river|lake|park|square|station|"
                          r"airport|mountain|valley|county|district|province|region|island|"
                          r"bay|harbour|harbor|beach|village|town|city)\b")


def _street_or_word(text: str, span: Span) -> bool:
    """Not a person: a street's name ("Luís Camões Street", "Zistelweg", "Rue du Chapy"), a
    place named by the word after it ("Erlen bridge"), a run of English words or demonyms
    after "the" ("the Princess Royal", "the Danish government"), or a lone English word or town
    the NER model tagged ("Discipline", "Lisboa") that no name list knows."""
    if announced(text, span):
        return False  # "Mrs. Pottinger" (also a town), "said Saber" (also a word)
    words = span.value.split()
    after = _STREET_WORD_AFTER.match(text, span.end)
    if (street_word(words[-1], name_candidate=True) and (words[-1] not in last_names()
                                    or (len(words) > 1 and words[-1] in _STREET_TYPES))) \
            or (after and street_word(after.group(1)) and len(after.group(1).rstrip(".")) >= 2):
        return True
    if _PLACE_AFTER.match(text, span.end) or (_street_prefix_before(text, span.start)
                                              and not _name_after_first_name(text, span)) \
            or (len(words) > 1 and street_type_prefix(words[0])
                and words[0] not in first_names()):  # "Via Roma"
        return True
    if _THE_BEFORE.search(text, 0, span.start) and all(
            w.lower() in english_words() or w.endswith(_DEMONYM_ENDINGS) for w in words):
        return True  # not "the Engel novel", "the Ida Korovina version"
    return len(words) == 1 and (words[0].lower() in english_words() or words[0] in city_names()
                                or _ARTICLE_BEFORE.search(text, 0, span.start)) \
        and words[0] not in first_names() and words[0] not in last_names()


_PREFIX_BEFORE = re.compile(r"(\S+)(?:[ \t]+(?:du|de|des|del|della|di|da|do|la|le|von|van))?"
                            r"[ \t]+$")


def _street_prefix_before(text: str, start: int):
    """The match of a street-type word right before start, a particle allowed between ("Rue
    du Chapy"; group 1 is the type word), or None."""
    m = _PREFIX_BEFORE.search(text, max(0, start - 40), start)
    return m if m and street_type_prefix(m.group(1)) else None


_PLACE_CUE_BEFORE = re.compile(r"\b(?:in|on|at|of|to|from|via|along|near|into|onto|down|up|"
                               r"off|past|across|around|toward|towards)[ \t]+\S+[ \t]+$", re.I)


def _name_after_first_name(text: str, span: Span) -> bool:
    """A street-type word that is also a Nordic first name ("Calle", Carl) before a known
    surname, with no house number after and no place word before ("add Calle Norberg as
    guardian"), is a person's name; "in Calle Mayor 5" or "Via Roma" (a town) stay streets."""
    words = span.value.split()
    return len(words) == 1 and words[0] in last_names() and words[0] not in city_names() \
        and not re.match(r"[ \t]*,?[ \t]*\d", text[span.end:]) \
        and not _PLACE_CUE_BEFORE.search(text, max(0, span.start - 40), span.start)


def _with_first_name_before(text: str, span: Span) -> Span:
    """The name with the street-type word that is its first name ("Calle Norberg")."""
    m = _street_prefix_before(text, span.start)
    if m and m.group(1)[:1].isupper() and m.end() == span.start \
            and _name_after_first_name(text, span):
        return Span(m.start(1), span.end, "person", text[m.start(1):span.end])
    return span


# A capitalised word in any Latin, Greek or Cyrillic letters ("Štavbar").
_LIST_ITEM = (r"[A-Z\u00C0-\u00D6\u00D8-\u00DE\u0100-\u017F\u0391-\u03A9\u0410-\u042F]"
              r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
# Three or more capitalised words in a list: "Tomaszewski, Fiorentini and Weress".
_NAME_LIST = re.compile(rf"(?<![\w'\u2019-]){_LIST_ITEM}(?:,[ \t]+{_LIST_ITEM})+,?[ \t]+"
                        rf"(?:and|or|&)[ \t]+{_LIST_ITEM}(?![\w'\u2019-])")


# A line of dialogue opens with its speaker and what they say ("Rami: What a wife."), not a
# value ("Kundenummer: 20931")
_SPEAKER = re.compile(rf"^[ \t]*({_LIST_ITEM}):[ \t]+(?=[^\W\d_]|[\"'\u201c])", re.M)


def _mates(text: str, spans: list) -> list[Span]:
    """The other members of a group one of whose members is a person found alone: a list ("our
    3 founders: Tomaszewski, Fiorentini and Weress"; not one that names a place, "Paris, London
    and Berlin") or the speakers of a dialogue ("Rami: What a wife.\nSieda: Remember me?";
    not a form's field labels, "Name:", "Email:"). Words only (what holds a digit or a dot is
    no member); an English word ("Novel", "Quarto") only where at least half the group are
    people already."""
    people = {(s.start, s.end) for s in spans if s.category == "person"}
    groups = []
    for m in _NAME_LIST.finditer(text):
        items = [(m.start() + w.start(), m.start() + w.end())
                 for w in re.finditer(_LIST_ITEM, m.group())]  # "and" is lower-case: not one
        words = [text[a:b] for a, b in items]
        if not any(w in city_names() or w in countries_and_states() or org_word(w)
                   for w in words):
            groups.append(items)
    speakers = [m.span(1) for m in _SPEAKER.finditer(text)
                if m.group(1).lower() not in FIELD_LABELS]
    if len(speakers) >= 2 and not any(text[a:b] in countries_and_states() or org_word(text[a:b])
                                      for a, b in speakers):
        groups.append(speakers)
    out = []
    for items in groups:
        found = sum(item in people for item in items)
        if not found:
            continue
        for a, b in items:
            word = text[a:b]
            if (a, b) in people or any(s.overlaps(a, b) for s in spans + out):
                continue
            common = english_word(word) and word not in first_names() \
                and word not in last_names()
            if not common or 2 * found >= len(items):
                out.append(Span(a, b, "person", word))
    return out


def _town_in_place_slot(text: str, span: Span) -> bool:
    """A candidate where a place stands ("based in Salmon Arm", "arrived at Campinas") whose
    first word is no known first name: a town the NER model took for a person."""
    return in_place_slot(text, span.start) and span.value.split()[0] not in first_names() \
        and not announced(text, span)


def _id_word(span: Span) -> bool:
    """Not a person: a candidate holding the name of a national id ("Aadhaar", "Sie Ihren
    Personalausweis", "Codice"), which the NER model and the name lists take for a name."""
    return any(w.strip(".,:;()") in ID_WORDS or w in ID_WORDS for w in span.value.split())


# What may stand between a street address and its town line: a unit number the address
# left out ("90 Scarcroft Road\n Flat" + " 287\n"), a unit line ("77 Spittelwiese\n Unit 82\n").
_ADDRESS_TAIL = re.compile(r"[ \t]*(?:#?\d[\w-]{0,5}[ \t]*)?\n(?:" + UNIT_LINE + r"\n)?[ \t\n>?*•-]*")
# A postcode opening a town line: "16607 Pfaffenhofen", "61-668 Kołobrzeg", "1317 YB ...".
_POSTCODE_OPENING = re.compile(r"[ \t>]*\d{3,5}(?:-\d{2,4})?[ \t]")
_TOWN_AFTER_COMMA = re.compile(r",[ \t]*(?:(?:[A-Z]{1,2}-)?\d{3,5}(?:[- ]\d{2,4})?(?:[ \t][A-Z]{2})?"
                               r"[ \t]+)?")
_SENTENCE_END = re.compile(r"(?<!\bSt)[.!?](?:\s|$)")


def _town_line(text: str, span: Span, addresses: list) -> bool:
    """A name candidate on the line right below a street address, opening it or after its
    postcode, is (part of) its town ("1956 Uitsig St\nGrahamstad 6139", "Hahngasse 74\n16607
    Pfaffenhofen an der Ilm"); so is one right after the address and a comma on its own line
    ("Storgata 12, Oslo", "Wilgenblik 87, 3761 ZG Soest")."""
    if len(span.value.split()) <= 3 and any(
            a.end <= span.start and _TOWN_AFTER_COMMA.fullmatch(text, a.end, span.start)
            for a in addresses):
        return True
    line_start = text.rfind("\n", 0, span.start) + 1
    before = text[line_start:span.start].lstrip(" \t>?*•-")  # a line's bullet is no sentence
    if _SENTENCE_END.search(before) or len(before.split()) > 5:
        return False  # the town line ran on into prose: "3761 ZG Soest. ... said Yoshka to Karen"
    return (before.strip() == "" or bool(_POSTCODE_OPENING.match(before))) and any(
        a.end <= line_start and _ADDRESS_TAIL.fullmatch(text, a.end, line_start)
        for a in addresses)
