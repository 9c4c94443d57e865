"""Synthetic PII examples with planted values, for adaptation data and its evaluation.

Template sentences (tickets, chats, e-mails, forms, notes) filled with Faker values: names,
e-mails, phone numbers in several formats, street addresses with or without city/state/zip.
Every example records the values planted in it, so a benchmark can count leaks without trusting
the detector.

Train/eval disjointness is by template *and* seed: `split="eval"` uses only the held-out
templates (every fifth), `split="train"` only the others, and callers use different seeds for
the two (pipelines/make_adapt_data.py and benchmarks/adapt_quality.py do). An eval text
therefore never shares its sentence frame with a training text.
"""

from __future__ import annotations

import hashlib
import random
from typing import Iterator

TEMPLATES = (
    "Hi, I'm {name}. You can reach me at {phone} or {email}.",
    "Please ship the order to {name}, {address}. Contact number: {phone}.",
    "Customer {name} ({email}) called from {phone} about a late refund.",
    "Meeting notes: {name} will send the draft to {name2} by Friday. Questions to {email}.",
    "Dear {name},\nthank you for your application. We will write to you at {address}.\nBest regards,\n{name2}",
    "New tenant: {name}, moving into {address} next month. Emergency contact {name2}, {phone}.",
    "Can someone call {first} back? The number is {phone} and it is urgent.",
    "From: {email}\nTo: support@example.org\nSubject: password reset\n\nHello, this is {name}, I cannot log in since yesterday.",
    "Delivery failed at {address}. The driver tried {phone} twice; please ask {name} to reschedule.",
    "{name} joined the team today. Say hi at {email} or stop by desk 4B.",
    "Invoice 8841 for {name}, {address}. Questions: {email}.",
    "Patient {name} missed the appointment; reminder sent to {phone}.",
    "Thanks {first}! I forwarded your note to {name2} ({email2}).",
    "lost wallet found near the station, belongs to {name}, call {phone}",
    "Registration form - Name: {name}; E-mail: {email}; Phone: {phone}; Address: {address}",
    "Hey {first}, it's {name2}. Text me at {phone} when you land.",
    "Our landlord {name} still has not fixed the heating at {address}.",
    "Update your records: {name}'s new e-mail is {email} and the new phone is {phone}.",
    "The package for {name} was left with a neighbour at {address}.",
    "{name} <{email}> wrote: could we move the call to Thursday? My cell is {phone}.",
    "Witness statement taken from {name}, who lives at {address}, phone {phone}.",
    "Ask {first} about the budget; {name2} is on leave until May. Her email: {email2}",
    "Booking confirmed for {name}. A receipt was sent to {email}.",
    "Complaint received from {name} regarding noise at {address}. Reply via {email}.",
    "I spoke with {name} ({phone}); she will forward the contract to {email2}.",
    "Volunteer list: {name} - {phone}; {name2} - {email2}.",
    "Good morning, {first}. Your technician {name2} will arrive at {address} between 9 and 11.",
    "Reminder: {name} owes the club the membership fee. Contact: {email}, {phone}.",
    "Ticket #5512 opened by {name}: the app crashes on start. Reply to {email}.",
    "Please add {name} to the mailing list ({email}) and remove {name2}.",
    "Our new office manager is {name}; direct line {phone}.",
    "Note to self: return {name}'s drill, she lives at {address}.",
    "Reference for {name}: reliable and kind. Call me on {phone} if you need more, {name2}.",
    "Subscription cancelled for {email}; the account holder {name} asked for a refund.",
    "{first} said the keys are with {name2} at {address}.",
)
# Training-only frames, never evaluated: more sentence shapes (a name or a lone first name
# opening the text, signatures, bare contact lines, quoted replies, possessives), because the
# first adapter, trained on 28 frames where no text began with a name, copied such names
# through. Kept apart from TEMPLATES so the eval split (every fifth of TEMPLATES) is unchanged.
TRAIN_ONLY_TEMPLATES = (
    "{name} called at 3pm and asked for a callback on {phone}.",
    "{name} has been promoted to team lead; congratulations can go to {email}.",
    "{first} will bring the projector tomorrow, and {name2} handles the snacks.",
    "{first} is out sick today. Please route urgent issues to {email2}.",
    "{name}: I can't access my account. My email is {email}.",
    "{name} wants to know if the parcel to {address} has shipped.",
    "{first} and {name2} signed the lease for {address}.",
    "{email} reported a bug in the checkout page; {name} is following up.",
    "{phone} is the new number for {name}, effective Monday.",
    "{name}\n{address}\n{phone}",
    "{name}, {email}, {phone}",
    "{first}, can you review the slides before noon? Thanks, {name2}",
    "{first} here - my flight lands at 6, can you pick me up? Call {phone}.",
    "{name} - Marketing - {email}",
    "> {name} wrote:\n> Please confirm the booking.\nConfirmed. Send the invoice to {email}.",
    "{name} won the raffle! We will mail the prize to {address}.",
    "{first}'s laptop is ready for pickup at the front desk; {name2} signed for it.",
    "{name} left a voicemail from {phone} asking about the deposit.",
    "Best, {name} | {phone} | {email}",
    "{first} asked whether {name2} could cover the Saturday shift.",
    # Non-personal identifiers (rooms, orders, gates, versions) that must stay as they are:
    # the second adapter replaced such words with invented e-mails, having only seen frames
    # where every value after "at" or "or" was personal. Added after that failure analysis.
    "Please drop the signed forms at window 3 or mail them to {email}.",
    "{name} moved to room 214B; the extension is still {phone}.",
    "Order #A-7731 for {name} is delayed; we will text {phone} when it ships.",
    "Gate B12 changed to C4. {first}, please tell {name2} before boarding.",
    "Questions about version 2.4.1? Ask {name} or open a ticket in queue OPS-17.",
    "Parking spot 57 is reserved for {name} until March; call {phone} or ask at reception.",
    "Hello {name},\nyour parcel is waiting at {address}.\nKind regards,\n{name2}",
    "Name: {name}\nEmail: {email}\nRoom: 3C\nNotes: prefers the morning slot",
    "Contact {email} or see locker 118 in the basement.",
    "{name} booked table 12 for 7pm. The confirmation goes to {email}.",
    "Shift swap: {first} takes bay 4 on Tuesday, {name2} takes bay 6. Questions to {phone}.",
    "Form 27-B was filed by {name} ({email}) at counter 9.",
)
# A second held-out set (split "eval_fresh"), written before the third adapter was trained and
# not looked at until its evaluation: the first eval set's failures shaped the training frames
# above, so this one checks that the gains are not fitted to that set.
FRESH_EVAL_TEMPLATES = (
    "Hi team, {name} is our new contact for billing; reach her at {email}.",
    "Lost and found: a blue umbrella. Owner {name} can call {phone}.",
    "{first}, the plumber is coming to {address} at noon. - {name2}",
    "Emergency contacts: {name} ({phone}), {name2} ({email2}).",
    "We refunded {name} and emailed the receipt to {email}; case 3391 is closed.",
    "Guest list for Saturday: {name}, {name2}. RSVP to {email} by Thursday.",
    "Driver {name} picked up the load at dock 7 and will deliver to {address}.",
    "Please update the shipping label: {name}, {address}, tel. {phone}.",
    "Sorry {first}, I missed your call. Try me at {phone} after 5.",
    "The lease for {address} lists {name} as the tenant and {name2} as guarantor.",
)
# Training-only frames for the kinds and shapes the first three adapters never saw (added for
# the fourth): card numbers, IBANs, SSNs, IP addresses, birth dates, non-US postal addresses and
# phones, surnames after a title, and a person's pronouns, so the fallback's targets teach the
# model to keep a fake's gender. Written for this purpose, not taken from any evaluation set;
# kept last so the indexes of the frames above (and every eval split) are unchanged.
WIDER_TRAIN_TEMPLATES = (
    "Card on file for {name}: {card}, expires next spring.",
    "Refund to card {card}; the holder {name} asked us to e-mail {email}.",
    "Please wire the deposit to IBAN {iban} (account holder: {name}).",
    "{name_f} changed her bank details; the new IBAN is {iban}.",
    "Employee {name}, SSN {ssn}, starts on the first of the month.",
    "The form lists SSN {ssn} for {name_m}; he signed it on Tuesday.",
    "Login alert: {email} signed in from {ip} at 02:14.",
    "Blocked {ip} after five failed attempts on {name}'s account.",
    "{name_f} was born on {dob}; she asked to update her file.",
    "Date of birth: {dob}\nName: {name}\nPhone: {phone}",
    "{name_m} (born {dob}) says he moved last year.",
    "Send the parcel to {name}, {intl_address}.",
    "{name}\n{intl_address}\n{intl_phone}",
    "Our Berlin office contact is {name_f}; she answers on {intl_phone}.",
    "Mr. {last_m} called from {intl_phone} about the invoice; he wants a copy by post.",
    "Ms. {last_f} confirmed the booking and will pay by card {card}.",
    "Dr. {last_f} is on call tonight; page her at {phone}.",
    "{name_m} said he would review the draft, and his manager {name_f} agreed.",
    "Thanks to {name_f} for her help with the move to {intl_address}.",
    "Interview: {first_m}: I grew up near the harbour.\n{first_f}: When did you leave?",
    "Signed,\n{name_f}\n{intl_address}",
    "The applicant, {name_m}, gave {intl_address} as his home and {intl_phone} as his number.",
    "Customer {name_f} disputes a charge on {card}; her phone is {phone}.",
    "Payroll update for {name_m}: IBAN {iban}, SSN {ssn}.",
)
HELD_OUT_EVERY = 5  # template i is an eval template when i % 5 == 4


SPLITS = ("train", "eval", "eval_fresh")
_FRAMES = TEMPLATES + TRAIN_ONLY_TEMPLATES + FRESH_EVAL_TEMPLATES + WIDER_TRAIN_TEMPLATES


def template_ids(split: str) -> list[int]:
    """Ids of the frames a split draws from, indexes into TEMPLATES + TRAIN_ONLY_TEMPLATES +
    FRESH_EVAL_TEMPLATES + WIDER_TRAIN_TEMPLATES: "eval" every fifth of TEMPLATES, "train" the
    rest of TEMPLATES, TRAIN_ONLY_TEMPLATES and WIDER_TRAIN_TEMPLATES, "eval_fresh"
    FRESH_EVAL_TEMPLATES."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    held = [i for i in range(len(TEMPLATES)) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    if split == "eval":
        return held
    fresh_start = len(TEMPLATES) + len(TRAIN_ONLY_TEMPLATES)
    wider_start = fresh_start + len(FRESH_EVAL_TEMPLATES)
    if split == "eval_fresh":
        return list(range(fresh_start, wider_start))
    return [i for i in range(len(TEMPLATES)) if i not in held] + \
        list(range(len(TEMPLATES), fresh_start)) + list(range(wider_start, len(_FRAMES)))


def template(t: int) -> str:
    return _FRAMES[t]


def _phone(fake, rng: random.Random) -> str:
    area, mid, last = rng.randrange(201, 990), rng.randrange(200, 999), rng.randrange(0, 10000)
    return rng.choice([f"({area}) {mid}-{last:04d}", f"{area}-{mid}-{last:04d}",
                       f"{area}.{mid}.{last:04d}", f"+1 {area} {mid} {last:04d}",
                       f"+1-{area}-{mid}-{last:04d}"])


def _email(fake, rng: random.Random, first: str, last: str) -> str:
    user = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randrange(10, 99)}",
                       fake.user_name()]).lower()
    return f"{user}@{rng.choice([fake.free_email_domain(), fake.domain_name()])}"


def _address(fake, rng: random.Random) -> str:
    street = fake.street_address()
    if rng.random() < 0.5:
        return f"{street}, {fake.city()}, {fake.state_abbr()} {fake.postcode()}"
    return street


# Locales of the non-US addresses and phones of WIDER_TRAIN_TEMPLATES.
_INTL_LOCALES = ("en_GB", "de_DE", "fr_FR", "pl_PL", "nl_NL", "it_IT", "es_ES")


def _wider_values(fake, intl, rng: random.Random) -> dict:
    """The slots only WIDER_TRAIN_TEMPLATES use. Drawn only for those frames, after the others,
    so the examples of every other frame (and every eval split) stay what they were."""
    first_f, last_f = fake.first_name_female(), fake.last_name()
    first_m, last_m = fake.first_name_male(), fake.last_name()
    local = intl[rng.randrange(len(intl))]
    address = local.address()
    if rng.random() < 0.5:  # on one line, as in running text
        address = ", ".join(address.splitlines())
    return {"card": fake.credit_card_number(), "iban": fake.iban(), "ssn": fake.ssn(),
            "ip": fake.ipv4_public(),
            "dob": fake.date_of_birth(minimum_age=18, maximum_age=90).strftime(
                rng.choice(["%Y-%m-%d", "%d/%m/%Y", "%B %d, %Y", "%d %B %Y"])),
            "name_f": f"{first_f} {last_f}", "first_f": first_f, "last_f": last_f,
            "name_m": f"{first_m} {last_m}", "first_m": first_m, "last_m": last_m,
            "intl_address": address, "intl_phone": local.phone_number()}


def pii_examples(n: int, seed: int, split: str = "train") -> Iterator[dict]:
    """n examples {id, text, planted, template, split}, a function of (n, seed, split)."""
    from faker import Faker  # pylint: disable=import-outside-toplevel
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(f"{seed}:{split}")
    ids = template_ids(split)
    intl = []
    for k in range(n):
        t = ids[rng.randrange(len(ids))]
        first, last = fake.first_name(), fake.last_name()
        first2, last2 = fake.first_name(), fake.last_name()
        values = {
            "name": f"{first} {last}", "first": first, "name2": f"{first2} {last2}",
            "email": _email(fake, rng, first, last), "email2": _email(fake, rng, first2, last2),
            "phone": _phone(fake, rng), "address": _address(fake, rng),
        }
        frame = template(t)
        if frame in WIDER_TRAIN_TEMPLATES:
            if not intl:
                intl.extend(Faker(loc) for loc in _INTL_LOCALES)
                for j, local in enumerate(intl):
                    local.seed_instance(seed * 100 + j)
            values.update(_wider_values(fake, intl, rng))
        text = frame.format(**values)
        planted = [values[key] for key in values if "{" + key + "}" in frame]
        digest = hashlib.sha256(f"{split}:{seed}:{k}:{text}".encode()).hexdigest()[:12]
        yield {"id": f"pii-{split}-{seed}-{k}-{digest}", "text": text, "planted": planted,
               "template": t, "split": split}
