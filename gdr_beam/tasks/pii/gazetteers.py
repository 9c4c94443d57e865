"""Word lists the pii detectors and fakes consult: first names (with gender) and surnames of
every Latin-script Faker locale and the romanised Japanese and Chinese ones, English words
(Webster's 2nd), countries, US states and towns."""

from __future__ import annotations

import functools
import re
from typing import Optional

# Capitalised words that follow a first name without being a surname ("April Fools", "Will
# Review"): never taken into a name span, and never a first name themselves.
NOT_SURNAME = frozenset({"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                         "Sunday", "The", "And", "Or", "Team", "Here", "Please", "Thanks",
                         "Regards", "Mr", "Mrs", "Ms", "Miss", "Dr", "Prof",
                         # an address's unit right after a name ("Ms. Berločnik Suite 308")
                         "Suite", "Apt", "Apartment", "Unit", "Flat", "Floor", "Room"})


LATIN_NAME = re.compile(r"^[A-Za-zÀ-ÖØ-öø-ɏ][A-Za-zÀ-ÖØ-öø-ɏ'’-]+$")


def _faker_lists(kind: str, attrs: tuple):
    """(attr, words) for every Faker locale's `kind` provider ("person", "address") list
    named in attrs: Faker keeps per-country name and place lists drawn from census and
    registry data, our gazetteers' source."""
    for _, attr, words in _faker_lists_by_locale(kind, attrs):
        yield attr, words


def _faker_lists_by_locale(kind: str, attrs: tuple):
    """(locale, attr, words): `_faker_lists` with the locale of each list."""
    import importlib  # pylint: disable=import-outside-toplevel
    from faker.config import AVAILABLE_LOCALES  # pylint: disable=import-outside-toplevel
    for locale in AVAILABLE_LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.{kind}.{locale}").Provider
        except ImportError:
            continue
        for attr in attrs:
            found = provider.__dict__.get(attr)  # a class attribute (a few are properties)
            if isinstance(found, (list, tuple, dict, set, frozenset)):
                yield locale, attr, [w for w in found if isinstance(w, str)]


# Person lists: each locale's own, and where its names are written in another script
# (ja_JP, zh_CN, zh_TW), their romanised forms ("Satomi", "Hiroshi", "Shu-Fen").
_FIRST = ("first_names", "first_names_male", "first_names_female", "first_romanized_names",
          "first_romanized_names_male", "first_romanized_names_female")
_LAST = ("last_names", "last_names_male", "last_names_female", "last_romanized_names")


def _person_lists(attrs: tuple):
    """(attr, Latin-script names) of every locale's person lists in attrs; names written in
    capitals (zh_TW's "SHU-FEN") in their usual case."""
    for attr, found in _faker_lists("person", attrs):
        yield attr, [n.title() if n.isupper() and len(n) > 1 else n for n in found
                     if LATIN_NAME.match(n)]


@functools.lru_cache(maxsize=None)
def first_names() -> frozenset:
    from spacy.lang.en.stop_words import STOP_WORDS  # pylint: disable=import-outside-toplevel
    names = {n for _, found in _person_lists(_FIRST) for n in found}
    # English function words that are also someone's first name ("May", "Will", "An").
    return frozenset(n for n in names if n.lower() not in STOP_WORDS and n not in NOT_SURNAME)


@functools.lru_cache(maxsize=None)
def english_words() -> frozenset:
    """Lower-case entries of Webster's 2nd (the english-words package): a first name that is
    also one of these ("hope", "will", "mark") is a word until the NER model says otherwise."""
    from english_words import get_english_words_set  # pylint: disable=import-outside-toplevel
    return frozenset(w for w in get_english_words_set(["web2"], lower=False, alpha=True)
                     if w.islower())


@functools.lru_cache(maxsize=None)
def countries_and_states() -> frozenset:
    from faker.providers.address.en import Provider as En  # pylint: disable=import-outside-toplevel
    from faker.providers.address.en_US import Provider as EnUS  # pylint: disable=import-outside-toplevel
    return frozenset(En.countries) | frozenset(EnUS.states)


@functools.lru_cache(maxsize=None)
def place_words() -> frozenset:
    """Countries, US states, continents, and the distinctive words of multi-word country names
    ("Zealand", "Africa"), which a capitalised-word rule would otherwise read as names."""
    words = set(countries_and_states()) | {"Africa", "Europe", "Asia", "America", "Oceania",
                                           "Antarctica", "Scandinavia", "Caribbean"}
    for country in countries_and_states():
        words.update(w for w in country.replace(",", " ").split()
                     if len(w) > 3 and w[0].isupper() and w not in
                     {"Republic", "Islands", "Island", "United", "Democratic", "Federal",
                      "People's", "State", "States", "Kingdom", "Saint", "South", "North",
                      "East", "West", "Central", "New"})
    return frozenset(words)


@functools.lru_cache(maxsize=None)
def last_names() -> frozenset:
    """Surnames of every Faker locale, Latin-script or romanised ("Dale", "Ley" are also
    English words)."""
    return frozenset(n for _, found in _person_lists(_LAST) for n in found)


@functools.lru_cache(maxsize=None)
def city_names() -> frozenset:
    """Town names of every Faker locale (~30,000): a capitalised word no other list knows is a
    name unless it is one of these ("Ostrava", "Wrocław")."""
    return frozenset(n for _, found in _faker_lists(
        "address", ("cities", "city_names", "towns", "municipalities")) for n in found)


@functools.lru_cache(maxsize=None)
def cities_by_locale() -> dict:
    """Faker locale -> its real town names (Latin-script lists only), so a town can be swapped
    for another of its own country (the quasi-identifier policy)."""
    out: dict = {}
    for locale, _, found in _faker_lists_by_locale("address", ("cities", "city_names", "towns")):
        towns = [n for n in found if n[:1].isalpha() and n.isascii() or LATIN_NAME.match(
            n.split()[0] if n.split() else "")]
        if len(towns) >= 20:
            out.setdefault(locale, []).extend(towns)
    return {loc: tuple(dict.fromkeys(towns)) for loc, towns in out.items()}


@functools.lru_cache(maxsize=None)
def _gender_counts() -> dict:
    """first name -> (locale lists calling it male, calling it female)."""
    seen: dict = {}
    for attr, found in _person_lists(tuple(a for a in _FIRST if a.endswith(("_male",
                                                                           "_female")))):
        for n in set(found):
            male, female = seen.get(n, (0, 0))
            seen[n] = (male + attr.endswith("_male"), female + attr.endswith("_female"))
    return seen


@functools.lru_cache(maxsize=None)
def neutral_first_names() -> tuple:
    """First names Faker's English list gives to both genders ("Casey", "Jordan", "Taylor"):
    the fake for a first name whose gender nothing tells, so it cannot contradict a "he" or
    "she" nearby."""
    from faker.providers.person.en_US import Provider  # pylint: disable=import-outside-toplevel
    return tuple(sorted(set(Provider.first_names_male) & set(Provider.first_names_female)))


@functools.lru_cache(maxsize=None)
def first_name_genders() -> dict:
    """first name -> "male" / "female" where at least 80% of the Faker locale lists that hold
    it agree ("Lena" is a woman's name in most locales, a man's in one; "Jean" or "Patrice",
    listed both ways as often, have no entry), so a fake first name can keep the gender that
    pronouns and titles in the text agree with."""
    return {n: "male" if m > f else "female" for n, (m, f) in _gender_counts().items()
            if max(m, f) >= 0.8 * (m + f)}


def _folded(name: str) -> str:
    """Lower-case, accents dropped: "Joža" -> "joza" (endings compare across spellings)."""
    import unicodedata  # pylint: disable=import-outside-toplevel
    return "".join(c for c in unicodedata.normalize("NFKD", name) if c.isalpha()
                   and c.isascii()).lower()


@functools.lru_cache(maxsize=None)
def _ending_genders() -> dict:
    """ending (last 1-3 letters, folded) -> (male count, female count) over every first name
    whose gender the lists know."""
    counts: dict = {}
    for name, gender in first_name_genders().items():
        folded = _folded(name)
        for k in (1, 2, 3):
            if len(folded) > k:
                m, f = counts.get(folded[-k:], (0, 0))
                counts[folded[-k:]] = (m + (gender == "male"), f + (gender == "female"))
    return counts


def guess_gender(first_name: str) -> Optional[str]:
    """"male" / "female" for a first name: the lists' answer when they know the name, else
    what the names with the same ending mostly are ("Gregorina", "Nermina" -> female;
    "Zrinko" -> male), read from the longest ending with enough names behind it and a clear
    majority; None when unclear ("Patrice")."""
    known = first_name_genders().get(first_name)
    if known or first_name in first_names():  # a listed name of both genders stays unknown
        return known
    folded, counts = _folded(first_name), _ending_genders()
    for k in (3, 2, 1):
        if len(folded) <= k:
            continue
        m, f = counts.get(folded[-k:], (0, 0))
        # Thresholds from the dev half of the presidio-evaluator names (1,200 examples): at
        # 85% and 50 names an ending guesses 107 of 250 unknown names, 11 wrongly (at 80% and
        # 20: 149, 26 wrongly); an unsure name gets a name given to both genders instead.
        if m + f >= 50:
            if max(m, f) >= 0.85 * (m + f):
                return "male" if m > f else "female"
            return None
    return None
