"""Street addresses: a closed vocabulary of street suffixes and the shapes around it."""

from __future__ import annotations

import re


def _street_suffixes() -> str:
    # USPS street suffixes as Faker lists them (Avenue, Street, Lane, ...), plus the usual
    # abbreviations: a closed vocabulary, which is what makes an address regex workable.
    from faker.providers.address.en_US import Provider  # pylint: disable=import-outside-toplevel
    words_ = set(Provider.street_suffixes) | {"St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct", "Pl",
                                             "Sq", "Pkwy", "Hwy", "Ter", "Cir"}
    return "|".join(sorted((re.escape(w) for w in words_), key=len, reverse=True))


_UNIT = r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit)\.?\s*#?\w+)"
# "City, ST 12345" (US) or "City NW1 6XE" (UK postcode).
_CITY_STATE_ZIP = (r"(?:,?\s*\n?\s*[A-Z][A-Za-z .'-]{1,40}?(?:,\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?"
                   r"|,?\s+[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2})\b)")
_HOUSE = r"\b\d{1,6}[A-Za-z]?"  # "221B Baker Street"
# A house number and capitalised words, then a known street suffix (unit and city optional),
# or any last word when a unit or a city-and-code tail follows ("12 Gomez Wild, Lake Ryan,
# MS 67983", "9 John Towers Suite 428"): such a tail makes it an address whatever the suffix.
ADDRESS = re.compile(
    _HOUSE + r"(?:\s+[A-Z][A-Za-z'-]*){1,4}\s+(?:" + _street_suffixes() + r")\b\.?"
    + _UNIT + "?" + _CITY_STATE_ZIP + "?"
    r"|" + _HOUSE + r"(?:\s+[A-Z][A-Za-z'-]*){1,4}(?:" + _UNIT + _CITY_STATE_ZIP + "?|"
    + _CITY_STATE_ZIP + ")")

