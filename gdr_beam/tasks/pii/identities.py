"""One document's identity map: every detected value -> its fake, coherent across the document.

The rules a reader would check:
  - one fake per real entity: the same value always gets the same fake, and no two different
    values share one (nor does a fake equal a real value of the document);
  - a person is faked word by word, so "Laura Chen", "Ms. Chen" and "Laura" stay one person:
    a word that is ever a surname in the document becomes a fake surname, a first name a fake
    first name of the same gender ("Laura" -> a woman's name, so "she" and "Ms." still fit;
    the gender from a title, the name lists, the name's ending or a pronoun after it, and a
    name given to both genders when nothing tells), an initial another initial;
  - identifiers built from a name follow the fake name: "laura.chen@acme.com" ->
    "maya.torres@acme.com" (the domain stays unless it holds the name), "@laurachen" ->
    "@mayatorres";
  - quasi-identifiers (dates, places, organisations, ages under a --pii_policy) come from
    quasi.QuasiFakes: one date offset and one age jitter per document;
  - everything else comes from `fake_value` (same kind and format; an address in the style of
    its country, valid checksums); an address keeps the fake street its street already got,
    so the street taken with its town line in one place ("13 Castor Place\nSelwyn Heights
    3015") and alone in another, or fixed by another segment's rewrite, is one fake street.
Seeded by (run seed, example id, value), so reruns give the same fakes.
"""

from __future__ import annotations

import bisect
import random
import re
import unicodedata
from typing import Callable, Mapping, Optional, Sequence

from gdr_beam.tasks.base import Span, name_word_pairs, seeded_rng
from gdr_beam.tasks.pii.fakes import fake_value, with_faker
from gdr_beam.tasks.pii.gazetteers import (first_name_genders, guess_gender,
                                            neutral_first_names)
from gdr_beam.tasks.pii.names import TITLE_BEFORE
from gdr_beam.tasks.pii.quasi import POLICIES, QUASI_CATEGORIES, Policy, QuasiFakes

_INITIAL = re.compile(r"[A-Z]\.")
_STREET_LINE = re.compile(r"[^\n,]*")
_POSSESSIVE = re.compile(r"(.+?)(['\u2019]s?)")


def _street_line(address: str) -> str:
    """An address's first line up to a comma, without a closing period: its street."""
    return _STREET_LINE.match(address).group().rstrip(". ")


def plain(word: str) -> str:
    """Lower-case ASCII letters only: "Hamanová" -> "hamanova" (how names enter e-mails)."""
    text = unicodedata.normalize("NFKD", word)
    return "".join(c for c in text if c.isascii() and c.isalpha()).lower()


class IdentityMap:
    """The fakes of one document (see the module docstring)."""

    def __init__(self, seed: int, example_id: str, text: str, spans: Sequence[Span],
                 fixed: Optional[Mapping[str, str]] = None, policy: Policy = POLICIES["direct"]):
        """fixed: value -> the replacement another segment of the document already chose
        (see Task.fallback); a person's fixed name pins its words (`name_word_pairs`), so
        "Ms. Chen" later follows "Laura Chen" -> "Maya Torres", and "Yoshka Roefs" follows
        "Yoshka J. Roefs" -> "Alexis Smith".
        policy: the --pii_policy whose quasi-identifier spans (quasi.py) are among `spans`."""
        self._seed, self._id = seed, example_id
        people = [s for s in spans if s.category == "person"]
        # A word is a surname when another word precedes it in a name, or when it stands alone
        # after a title ("Ms. Chen"); "Dr. Laura Wilkinson" keeps "Laura" a first name.
        self._surnames = {tok for s in people for i, tok in enumerate(s.value.split())
                          if i > 0 or (len(s.value.split()) == 1
                                       and TITLE_BEFORE.search(text[:s.start]))}
        self._real = {s.value.lower() for s in spans} | {
            tok.lower() for s in people for tok in s.value.split()}
        self._tokens: dict = {}
        self._values: dict = {}
        self._used: set = set()
        self._streets: dict = {}  # a real street line -> its fake street line
        self._fixed_people: dict = {}
        for s in spans:
            new = (fixed or {}).get(s.value)
            if new is None:
                continue
            self._used.add(new.lower())
            if s.category != "person":
                self._values[(s.category, s.value)] = new
                if s.category == "street_address":  # the street's other forms follow it
                    self._streets.setdefault(_street_line(s.value), _street_line(new))
                continue
            for old_word, new_word in name_word_pairs(s.value, new):
                self._tokens.setdefault(old_word, new_word)
                self._used.add(new_word.lower())
            if len(s.value.split()) != len(new.split()):
                self._fixed_people[s.value] = new
        self._genders = gender_cues(text, people, endings=False)
        # Dates, places, organisations, ages: one document offset, jitter and swap list.
        self._quasi = QuasiFakes(policy, self._rng, self._fresh, spans, fixed) \
            if policy.quasi else None
        # Name words as they appear inside identifiers, for derived e-mails and handles.
        for s in people:
            for tok in s.value.split():
                self.person_token(tok)
        # (first, last) of every full name, for an initial before a surname ("kmorris").
        self._first_last = [(s.value.split()[0], s.value.split()[-1]) for s in people
                            if len(s.value.split()) >= 2]

    def _rng(self, key: str) -> random.Random:
        return seeded_rng(self._seed, self._id, key)

    def _fresh(self, draw: Callable[[], str], tries: int = 12) -> str:
        """draw() again while it repeats a real value or another entity's fake."""
        value = draw()
        for _ in range(tries - 1):
            if value.lower() not in self._real and value.lower() not in self._used:
                break
            value = draw()
        self._used.add(value.lower())
        return value

    def _name_word(self, token: str) -> str:
        """A name word's fake, a possessive kept outside it: "Chen's" -> "Torres's", the
        same person as "Chen"."""
        m = _POSSESSIVE.fullmatch(token)
        if m and m.group(1) in self._tokens:
            return self.person_token(m.group(1)) + m.group(2)
        return self.person_token(token)

    def person_token(self, token: str) -> str:
        if token not in self._tokens:
            rng = self._rng("person\x00" + token)
            if _INITIAL.fullmatch(token):  # an initial stays an initial
                letters = [c for c in "ABCDEFGHIJKLMNOPRSTW" if c != token[0]]
                self._tokens[token] = self._fresh(lambda: rng.choice(letters) + ".")
            elif token in self._surnames:
                self._tokens[token] = self._fresh(lambda: with_faker(rng, lambda f: f.last_name()))
            else:
                self._tokens[token] = self._fresh(self._first_name_draw(token, rng))
        return self._tokens[token]

    def _first_name_draw(self, token: str, rng: random.Random) -> Callable[[], str]:
        """How a fake first name for `token` is drawn: of its gender where the text tells it,
        else a name given to both genders not yet used (any first name once those run out)."""
        gender = self._genders.get(token)
        if gender is not None:
            make = {"male": lambda f: f.first_name_male(),
                    "female": lambda f: f.first_name_female()}[gender]

            def draw():
                # Faker's en_US women's names include "Robin", which most locales (and so
                # the verifier's gender check) give to men: draw again past such a name.
                name = with_faker(rng, make)
                for _ in range(8):
                    if first_name_genders().get(name, gender) == gender:
                        break
                    name = with_faker(rng, make)
                return name
            return draw
        neutral = [n for n in neutral_first_names() if n.lower() not in self._used
                   and n.lower() not in self._real]
        if neutral:
            return lambda: rng.choice(neutral)
        return lambda: with_faker(rng, lambda f: f.first_name())

    def replace(self, span: Span) -> str:
        """The fake for a detected span."""
        if span.category == "person":
            if span.value in self._fixed_people:
                return self._fixed_people[span.value]
            return " ".join(self._name_word(t) for t in span.value.split())
        key = (span.category, span.value)
        if key not in self._values and span.category in QUASI_CATEGORIES:
            self._values[key] = self._quasi.replace(span)
        if key not in self._values:
            derived = self._derived(span)
            if derived is not None:
                self._used.add(derived.lower())
                self._values[key] = derived
            elif span.category == "street_address":
                self._values[key] = self._address(span.value)
            else:
                rng = self._rng(span.value)
                self._values[key] = self._fresh(
                    lambda: fake_value(span.category, span.value, rng))
        return self._values[key]

    def _address(self, value: str) -> str:
        """An address's fake, its street line the one its street already got (from another
        form of the address, or fixed by another segment): "13 Castor Place" and "13 Castor
        Place\nSelwyn Heights 3015" keep one fake street."""
        street = _street_line(value)
        rng = self._rng("street\x00" + street)
        fake = self._fresh(lambda: fake_value("street_address", value, rng))
        known = self._streets.get(street)
        if known is None:
            self._streets[street] = _street_line(fake)
            return fake
        head = _STREET_LINE.match(fake).group()
        fake = known + ("." if head.endswith(".") else "") + fake[len(head):]
        self._used.add(fake.lower())
        return fake

    def _derived(self, span: Span):
        """An e-mail or handle built from a name of the document, rebuilt from its fake."""
        if span.category not in ("email", "handle"):
            return None
        local, at, domain = span.value.partition("@") if span.category == "email" else \
            (span.value.lstrip("@"), "", "")
        words = {plain(tok): tok for tok in self._tokens if not _INITIAL.fullmatch(tok)}
        words = {k: v for k, v in words.items() if len(k) >= 3}
        if not words:
            return None
        # Find the name words inside the local part, longest first ("mariehamanova").
        pattern = re.compile("|".join(re.escape(k) for k in sorted(words, key=len,
                                                                    reverse=True)), re.I)
        if not pattern.search(_plain_keep_separators(local)):
            return None

        def swap(m):
            fake = plain(self._tokens[words[m.group().lower()]])
            return fake.capitalize() if m.group()[:1].isupper() else fake
        new_local = pattern.sub(swap, self._initial_before_surname(_plain_keep_separators(local)))
        new_local = re.sub(r"\d+", lambda m: str(self._rng(span.value).randrange(
            10 ** (len(m.group()) - 1), 10 ** len(m.group()))), new_local)
        if span.category == "handle":
            return "@" + new_local
        if pattern.search(plain(domain.split(".")[0])):  # a personal domain: "laurachen.com"
            domain = pattern.sub(swap, domain.lower())
        return new_local + at + domain


    def _initial_before_surname(self, local: str) -> str:
        """A local part opening with a person's first initial and surname ("kmorris",
        "k.morris" for Kayla Morris) gets the fake first name's initial; the surname is
        swapped with the other name words."""
        for first, last in self._first_last:
            initial, surname = plain(first)[:1], plain(last)
            if initial and len(surname) >= 3 and re.match(
                    rf"{initial}[._-]?{re.escape(surname)}", local, re.I):
                fake = plain(self._tokens[first])[:1] or local[0]
                return (fake.upper() if local[0].isupper() else fake) + local[1:]
        return local


_TITLE_GENDER = re.compile(r"\b(?:(Mr)|(Mrs|Ms|Miss))\.?\s+$")
_PRONOUN = re.compile(r"\b(?:(he|him|his|himself)|(she|her|hers|herself))\b", re.I)


def gender_cues(text: str, people: Sequence[Span], endings: bool = True) -> dict:
    """first-name word -> the gender its fake keeps: a title before it ("Mrs. Joža Novak"),
    else the name lists, else the he/she after the name when no other person is named in
    between ("Kisuke said he ..."; read after the lists: a sentence may name two people) if
    every occurrence of the name that has one agrees, else, with `endings` and no pronoun,
    what the name's ending suggests (`guess_gender`: "Gregorina").

    The fallback draws its fakes without `endings`: an ending is wrong for about one name in
    ten it guesses (most "-a" names are women's; "Kuyra", "Vehbija", "Ichita" are men's), and
    a name given to both genders contradicts nothing, where a wrong guess gives a man a
    woman's name. The verifier reads endings too: a model's fake against the likely gender is
    more often wrong than not."""
    out: dict = {}
    pronouns: dict = {}  # first name -> the genders of the pronouns after its occurrences
    starts = sorted(s.start for s in people)
    for s in people:
        words = s.value.split()
        if not words or (len(words) == 1 and TITLE_BEFORE.search(text, max(0, s.start - 8),
                                                                  s.start)):
            continue  # "Ms. Chen": a surname
        first = words[0]
        title = _TITLE_GENDER.search(text, max(0, s.start - 8), s.start)
        if title:  # a lone word after a title was skipped above: this is a first name
            out[first] = "male" if title.group(1) else "female"
            continue
        if first in out:
            continue
        gender = first_name_genders().get(first)
        if gender is not None:
            out[first] = gender
            continue
        i = bisect.bisect_right(starts, s.start)  # where the next person is named
        stop = starts[i] if i < len(starts) else len(text)
        m = _PRONOUN.search(text, s.end, min(stop, s.end + 150))
        if m is not None:
            pronouns.setdefault(first, set()).add("male" if m.group(1) else "female")
    for first in {s.value.split()[0] for s in people if s.value.split()} - set(out):
        # Every occurrence's pronoun must agree: a long document's "Yoshka ... she" and
        # "Yoshka ... he" (another sentence's subject) tell nothing.
        votes = pronouns.get(first, set())
        gender = next(iter(votes)) if len(votes) == 1 else None
        if gender is None and endings and not votes:
            gender = guess_gender(first)  # None for a name listed for both genders
        if gender is not None:
            out[first] = gender
    return out


def _plain_keep_separators(local: str) -> str:
    text = unicodedata.normalize("NFKD", local)
    return "".join(c for c in text if c.isascii())
