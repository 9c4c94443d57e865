"""Word lists the name detector consults: first names of every Latin-script Faker locale,
English words (Webster's 2nd), countries and US states."""

from __future__ import annotations

import functools
import re

# Capitalised words that follow a first name without being a surname ("April Fools", "Will
# Review"): never taken into a name span, and never a first name themselves.
NOT_SURNAME = frozenset({"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                         "Sunday", "The", "And", "Or", "Team", "Here", "Please", "Thanks",
                         "Regards", "Mr", "Mrs", "Ms", "Miss", "Dr", "Prof"})


LATIN_NAME = re.compile(r"^[A-Za-zÀ-ÖØ-öø-ɏ][A-Za-zÀ-ÖØ-öø-ɏ'’-]+$")


@functools.lru_cache(maxsize=None)
def first_names() -> frozenset:
    import importlib  # pylint: disable=import-outside-toplevel
    from faker.config import AVAILABLE_LOCALES  # pylint: disable=import-outside-toplevel
    from spacy.lang.en.stop_words import STOP_WORDS  # pylint: disable=import-outside-toplevel
    names = set()
    for locale in AVAILABLE_LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        except ImportError:
            continue
        for attr in ("first_names", "first_names_male", "first_names_female"):
            found = provider.__dict__.get(attr)  # a class attribute (a few are properties)
            if isinstance(found, (list, tuple, dict, set, frozenset)):
                names.update(n for n in found if isinstance(n, str) and LATIN_NAME.match(n))
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
    """Surnames of every Latin-script Faker locale ("Dale", "Ley" are also English words)."""
    import importlib  # pylint: disable=import-outside-toplevel
    from faker.config import AVAILABLE_LOCALES  # pylint: disable=import-outside-toplevel
    names = set()
    for locale in AVAILABLE_LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        except ImportError:
            continue
        for attr in ("last_names", "last_names_male", "last_names_female"):
            found = provider.__dict__.get(attr)
            if isinstance(found, (list, tuple, dict, set, frozenset)):
                names.update(n for n in found if isinstance(n, str) and LATIN_NAME.match(n))
    return frozenset(names)


@functools.lru_cache(maxsize=None)
def city_names() -> frozenset:
    """Town names of every Faker locale (~30,000): a capitalised word no other list knows is a
    name unless it is one of these ("Ostrava", "Wrocław")."""
    import importlib  # pylint: disable=import-outside-toplevel
    from faker.config import AVAILABLE_LOCALES  # pylint: disable=import-outside-toplevel
    names = set()
    for locale in AVAILABLE_LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.address.{locale}").Provider
        except ImportError:
            continue
        for attr in ("cities", "city_names", "towns", "municipalities"):
            found = provider.__dict__.get(attr)
            if isinstance(found, (list, tuple, dict, set, frozenset)):
                names.update(n for n in found if isinstance(n, str))
    return frozenset(names)


@functools.lru_cache(maxsize=None)
def first_name_genders() -> dict:
    """first name -> "male" / "female" where Faker's per-locale lists agree (a name listed as
    both, such as "Andrea" or "Jean", has no entry), so a fake first name can keep the gender
    that pronouns and titles in the text agree with."""
    import importlib  # pylint: disable=import-outside-toplevel
    from faker.config import AVAILABLE_LOCALES  # pylint: disable=import-outside-toplevel
    seen: dict = {}
    for locale in AVAILABLE_LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        except ImportError:
            continue
        for attr, gender in (("first_names_male", "male"), ("first_names_female", "female")):
            found = provider.__dict__.get(attr)
            if isinstance(found, (list, tuple, dict, set, frozenset)):
                for n in found:
                    if isinstance(n, str) and LATIN_NAME.match(n):
                        seen.setdefault(n, set()).add(gender)
    return {n: g.pop() for n, g in seen.items() if len(g) == 1}
