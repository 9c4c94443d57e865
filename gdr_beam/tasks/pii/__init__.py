"""`pii`: replace personal information with realistic fake values of the same kind.

The package, by job:
  structured.py  validated patterns: emails, card numbers (Luhn), IBANs (mod-97), SSNs, IPv4
                 addresses, dates of birth (a cue such as "born" or "DOB" before a date), phones
                 (Google's `phonenumbers` plus a digit-shape regex for short local forms);
  national_ids.py  national ids (22 formats, 18 countries) by their checksums (python-stdnum),
                 with a cue word where the check is weak, and valid fakes of the same kind;
  addresses.py   street addresses: "<number> <words> <street suffix>" with unit, city, state,
                 zip, and the international shapes;
  names.py       person names: Presidio's analyzer over a spaCy NER model (loaded lazily once per
                 process), a first-name gazetteer for what the small model misses, lone first
                 names unless they are English words or places, and the trimming/merging rules;
  gazetteers.py  the word lists those rules consult;
  detect.py      every detector together -> non-overlapping spans;
  fakes.py       a fake of the same kind and format for each detected value;
  task.py        the registered `pii` Task: prompt, detector, fallback.

The fallback replaces each span with a Faker value of the same kind and format, seeded by
(run seed, example id, value): the same value gets the same fake within an example, and a
person's name tokens map consistently ("Laura Chen" -> "Maya Torres", then "Laura" -> "Maya").
"""

from gdr_beam.tasks.pii.checks import iban_ok, luhn_ok
from gdr_beam.tasks.pii.detect import detect
from gdr_beam.tasks.pii.fakes import fake_value
from gdr_beam.tasks.pii.names import NER
from gdr_beam.tasks.pii.task import PiiTask

__all__ = ["NER", "PiiTask", "detect", "fake_value", "iban_ok", "luhn_ok"]
