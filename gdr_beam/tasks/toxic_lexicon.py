"""The toxicity lexicon and its context rules: what is toxic, what only looks it.

Word source: `better-profanity`'s bundled list (~900 words with leetspeak forms). Not every
word on it is toxic in context: it also lists anatomy, drugs, drinks and mild interjections
("vodka", "hell", "damn", "lmao"), and words that are slurs only when aimed at people
("slope", "coon", "trash"). So each token is normalised (case, leetspeak, stretched letters:
"fuuuck", "sh1t") and sorted into one of:

  strong      profanity, slurs and insult nouns toxic wherever they stand (word families
              below, so "bitchass", "hoes", "niggaz" are found whatever list spells them);
  targeted    words toxic only when aimed at a person: after "you"/"ur"/"those"/"he's"...,
              after an insulting or slur word ("dirty ...", "white trash"), or before a strong
              person noun ("stupid ass ...");
  threat      threats of violence and "kill yourself" (phrases);
  everything else on the list (and any other word): left alone.
"""

from __future__ import annotations

import functools
import re

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                       "$": "s", "!": "i"})

# Families of strong words over the normalised token ('*' may stand for one letter).
_U, _I = "[u*]", "[i*]"
PROFANITY = re.compile(
    rf"(?:mother|mutha|motha|muther)?f+{_U}+c*k+(?:ing?|in|en|ed|er|ers|s|a|as|az|ass|boy|"
    rf"face|head|tard|wit|up|off|ery)?|fk|fkn|fking|fkin|fucc|fuk|fukin|fukkin|fuking|phuck|"
    rf"fvck|fxck|effing|stfu|gtfo|"
    rf"(?:bull|dip|horse|chicken)?sh{_I}t+(?:s|ty|tty|ted|ting|head|heads|hole|face|bag|z)?|"
    rf"sh{_I}tty|(?:dumb|jack|smart|punk|bitch|kiss|lame)?ass(?:hole|holes|es|wipe|hat|clown)?|"
    rf"arse(?:hole)?|pissed|butthurt|cunts?|twats?|wank(?:er|ers)?|tossers?|cocksuck(?:er|ers|ing)?|"
    rf"dickheads?|douche(?:bag|bags|s)?|bastards?|scumbags?|pricks?")
PERSON_SLUR = re.compile(
    rf"b{_I}a?tch(?:es|ez|s|in|ing|y|ass|made)?|biatch|bish|puss(?:y|ies|ys|i)|whores?|"
    rf"sluts?|skanks?|hoes?|hoez|thots?|hoochie|nigg(?:a|er|ah|az|as|ers|uh|ahs|rs|a's)|"
    rf"nigs?|nicc?as?|niccaz|niqq?as?|nigguh|hos|nig\*+(?:a|as|s|er|ers|ga|gas)?|"
    rf"n\*+(?:gg?a|gg?as|gger|ggers)|mfs|mfers?|"
    rf"niglets?|f+a+g+(?:s|got|gots|git|gits|gy|ot)?|dykes?|trann(?:y|ies)|kikes?|spi(?:c|ck)s?|"
    rf"wetbacks?|chinks?|pakis?|beaners?|ragheads?|towelheads?|re?tards?|retarded|"
    rf"idiots?|morons?|imbeciles?|dumbass(?:es)?|jackass(?:es)?|motherf\w*ers?|dipshits?|"
    rf"homos?|dickheads?|japs|japped")
# Of the person words, those that insult anyone rather than a group (category "insult").
INSULT_NOUN = re.compile(r"idiots?|morons?|imbeciles?|dumbass(?:es)?|jackass(?:es)?|dipshits?|"
                         r"re?tards?|retarded|motherf\w*ers?")
TARGETED = {
    # slurs that are also ordinary words
    "slope", "slopes", "coon", "coons", "wop", "wops", "gook", "gooks", "jap", "japs", "dink",
    "dinks", "queer", "queers", "negro", "negroes", "honky", "honkies", "whitey", "gringo",
    "gringos", "injun", "injuns", "redneck", "rednecks", "hillbilly", "hillbillies", "cracker",
    "crackers", "dike", "dikes", "honkey", "gooks", "wops", "honkeys", "honkys", "hayseed", "hayseeds", "ape", "apes", "monkey", "monkeys", "pig", "pigs", "dick", "dicks", "thug",
    "thugs",
    # insults that are ordinary words about things
    "trash", "garbage", "trashy", "ugly", "stupid", "dumb", "loser", "losers", "pathetic",
    "worthless", "useless", "scum", "clown", "clowns", "jerk", "jerks", "weirdo", "fat",
    "disgusting", "lame", "colored", "ho", "cripple", "cripples", "hick", "hicks", "ugliest",
    "uglier", "dumbest", "stupidest", "weirdos", "coward", "cowards", "punk", "punks",
    "liar", "liars", "hypocrite", "hypocrites"}
# People words: a targeted word right before one is aimed at people ("colored folks").
PERSON_WORDS = {"folk", "folks", "people", "person", "man", "men", "woman", "women", "girl",
                "girls", "boy", "boys", "guy", "guys", "dude", "dudes", "kid", "kids", "chick",
                "chicks", "ref", "teacher", "cop", "cops", "baby", "babies", "children", "lady",
                "ladies", "ppl", "fans", "niggas", "family", "families"}
# Nouns that make a compound with a thing-insult: "garbage can", "trash man" (a job).
COMPOUND_NOUNS = {"can", "cans", "bag", "bags", "bin", "bins", "truck", "trucks", "day", "man",
                  "men", "collector", "collectors", "disposal", "pickup", "collection", "heap",
                  "time", "talk", "panda", "pandas", "compactor"}
# Person insults that insult alone when said to someone: a vocative between commas or a
# one-word exclamation ("Weirdo.", "loser !", "negro, you ...").
VOCATIVE_INSULTS = {"loser", "losers", "weirdo", "weirdos", "clown", "clowns", "jerk", "jerks",
                    "negro", "coon", "cracker", "crackers", "redneck", "hillbilly", "hick",
                    "pig", "scum", "coward", "thug", "dick", "queer", "gook", "jap", "wop", "ho",
                    "hoe", "liar", "hypocrite", "hypocrites"}
# Racial slurs spelled as phrases; a capitalised word after "Negro" is a name ("Negro Leagues").
PHRASE_SLUR = re.compile(r"(?i)\buncle\s+toms?\b(?!'s\s+cabin)|\bcotton[\s-]+pickers?\b|"
                         r"\b(?:white|trailer)[\s-]+trash\b|\bspear[\s-]+chuckers?\b|"
                         r"\bdouche[\s-]+bags?\b|"
                         r"\bnappy[\s-]+head(?:ed)?\b|\bporch\s+monkeys?\b|"
                         r"\bjungle\s+bunn(?:y|ies)\b")
# Mild words (interjections, "shut up") left alone in a clean text, but rephrased in a text
# that is toxic anyway, where they carry its tone ("those god damn [slur]", "wtf [slur]!").
MILD = re.compile(r"(?i)\b(?:god\s*damn(?:ed|it)?|damn(?:ed|it)?|dammit|goddammit|wtf|tf|idgaf|"
                  r"shut\s+(?:the\s+hell\s+)?up|(?:what|who|where|how|why)\s+the\s+(?:hell|heck)|"
                  r"the\s+hell|as\s+hell|(?:rot|burn|go)\s+(?:to|in)\s+hell|hell\s+(?:no|yeah|yes))\b")
ADJECTIVE_INSULTS = {"trashy", "ugly", "stupid", "dumb", "pathetic", "worthless", "useless",
                     "fat", "disgusting", "lame", "retarded", "ghetto"}
# A word before a targeted one that aims it at a person.
POINTERS = {"you", "u", "ya", "yu", "ur", "your", "youre", "you're", "yall", "y'all", "ya'll",
            "he", "she", "they", "hes", "he's", "shes", "she's", "theyre", "they're", "his",
            "her", "him", "them", "those", "these", "dem", "em", "all", "bunch", "yo", "is",
            "are", "r", "ure", "u're"}
# Words that insult things as often as people: aimed only when nothing but a link stands
# between the pointer and the word.
THING_INSULTS = {"trash", "garbage", "lame", "ugly", "useless", "dumb", "stupid", "pathetic",
                 "worthless", "trashy", "disgusting", "fat"}
LINKS = {"is", "are", "r", "re", "'re", "so", "such", "a", "an", "straight", "just", "complete",
         "total", "pure", "absolute", "really", "fucking", "fuckin", "being", "be", "was",
         "were", "look", "looks", "sound", "sounds", "too", "very", "hella", "mad"}
_YOU = {"you", "u", "ya", "yu", "ur", "your", "youre", "you're", "yall", "y'all", "ya'll", "ure",
        "u're"}
NEXT_ONLY = {"colored"}  # targeted only right before a people word
_POINTER_NEEDS_NEXT = {"is", "are", "r", "yo", "all", "bunch", "his", "her"}  # weaker cues
SLUR_LEADS = {"dirty", "filthy", "fucking", "fuckin", "stupid", "dumb", "fat",
              "lazy", "ugly", "damn", "white", "black", "yellow", "brown", "typical", "sick",
              "nasty", "worthless", "bitch", "ass", "fuckin'"}
THREAT = re.compile(
    r"(?i)\b(?:(?:(?:i|we)(?:'ll| will|'m going to|'m gonna| am going to| am gonna| are going to|"
    r" are gonna|'re going to|'re gonna| gonna| wanna| want to)|im going to|im gonna|ima|imma|"
    r"i'ma)\s+(?:\w+\s+)?"
    r"(?:kill|hurt|beat|murder|shoot|stab|rape|strangle|choke|destroy|end|find|break|slap|"
    r"punch|smack)\s+(?:you|u|ya|your\s+\w+|him|her|them|that\s+\w+)|"
    r"kill\s+(?:yo|ur|your)self|kys|go\s+die|die\s+slow(?:ly)?|"
    r"(?:(?<![\w,']\s)(?<![\w,'])|(?:you|u|ya)\s+(?:should|can|need\s+to)\s+)(?:just\s+)?"
    r"(?:go|get)\s+"
    r"(?:\w+\s+){0,6}?and\s+die|"  # an order to die, not "I'll go out and die laughing"
    r"(?:(?:i|we|ima|imma|i'?ma)\s+(?:\w+\s+){0,3}?)?(?:slit|cut)\s+"
    r"(?:your|ur|yo|his|her|their|(?:this|that)\s+\w+)\s+throats?|"
    r"let'?s\s+(?:go\s+)?(?:kill|shoot|hang|lynch)\s+(?:all\s+)?(?:the\s+|those\s+|these\s+)?"
    r"(?:\w+\s+(?:babies|people|kids|children|folks|men|women)|\w+)|"
    r"(?:hope|wish)\s+(?:you|u|he|she|they|all\s+of\s+(?:you|u)|y'?all)\s+(?:\w+\s+){0,3}?"
    r"(?:die|dies|drop\s+dead|get\s+(?:\w+\s+)?(?:shot|killed|raped|cancer|aids))|"
    r"(?:should|needs? to|ought to)\s+be\s+(?:\w+\s+or\s+)?"
    r"(?:shot|killed|hanged|hung|lynched|gassed|raped)|(?:hang|lynch|gas|shoot)\s+(?:all\s+)?"
    r"(?:them|those|these|every|that)\b(?:\s+\w+)?)\b")
# Hatred said to or about people ("I hate you", "we hate y'all", "hate those [slur]"): the verb
# softens ("dislike"); hating a thing ("I hate Mondays", "hate that I ...") is no abuse.
HATE_AIMED = re.compile(
    r"(?i)\b(hat(?:e|es|ed|ing))\s+(?=(?:you|u|ya|yall|y'all|ya'll|him|her|them|em|"
    r"(?:all\s+(?:of\s+)?)?(?:those|these|dem|all)\s+(?:\w+\s+)?(?:people|folks|niggas?|"
    r"bitch(?:es)?|hoes?|fags?|faggots?|boys|girls|guys|men|women|\w+s)|that\s+(?:person|"
    r"guy|girl|man|woman|bitch|hoe|nigga|dude|boy|kid))\b)")
# Words between "hate" and the person it is aimed at ("hate that [slur]", "hate these black
# [slurs]").
HATE_OBJECT_LEADS = {"that", "this", "those", "these", "the", "a", "all", "dem", "them", "some",
                     "ur", "your", "yo", "ya", "every", "dat", "dis"}


def hates_person(toks: list, i: int, text: str) -> bool:
    """Whether the "hate" at toks[i] is aimed at a person named by a slur or insult noun
    ("I hate that [slur]", "hate them NY [slurs]", "hate self-righteous Black [slurs]");
    "hate when [slurs] ..." is about a situation, "hate myself" no abuse."""
    for k in range(i + 1, min(i + 5, len(toks))):
        word = toks[k][2]
        if person_noun(word) or PHRASE_SLUR.match(text, toks[k][0]):
            return True  # "hate that [slur]", "hate trailer trash"
        if not (word in HATE_OBJECT_LEADS | QUALIFIERS or word in TARGETED
                or text[toks[k][0]].isupper() or "-" in word):
            return False
    return False


# "queer" is a slur in this register unless it names an identity or a field ("queer theory",
# "queer folk", "Queer Eye", "anarcho-queer").
QUEER_IDENTITY = {"theory", "folk", "folks", "community", "communities", "people", "studies",
                  "youth", "rights", "art", "artists", "pride", "cinema", "film", "films", "lit",
                  "literature", "identity", "identities", "women", "men", "person", "couple",
                  "couples", "kids", "teens", "history", "culture", "liberation", "nation",
                  "eye"}
# "gay" said as a put-down ("you gay", "that was so gay", "that man gay"); "are you gay?" and
# "I'm so gay" are no insult.
GAY_PUT_DOWN_BEFORE = {"you", "u", "ur", "youre", "you're", "ure", "so", "bitch", "nigga",
                       "niggah", "man"}


def gay_put_down(toks: list, i: int) -> bool:
    prev = toks[i - 1][2] if i else ""
    prev2 = toks[i - 2][2] if i > 1 else ""
    if prev not in GAY_PUT_DOWN_BEFORE or prev2 in {"are", "r", "i'm", "im", "am", "i", "not",
                                                        "aint", "ain't", "being", "be"}:
        return False
    return prev != "man" or prev2 in {"that", "dat", "this", "dis"}


# Crude orders: the whole phrase goes ("suck my dick" -> "get lost").
CRUDE = re.compile(r"(?i)\bsuck\s+(?:my|mah|ma|his|your|ur|yo|a)\s+(?:dick|cock|balls|nuts|d)\b|"
                   r"\bshut\s+(?:the|da)\s+f\S*\s+up\b")
_TOKEN = re.compile(r"[A-Za-z0-9@$!*'’]+(?:-[A-Za-z]+)*")
_HANDLE_OR_ENTITY = re.compile(r"@\w+|&#?\w+;")


_IS_CONTRACTIONS = {"he", "she", "it", "that", "what", "who", "there", "here", "where", "how"}


def normalize(token: str) -> str:
    t = token.lower().replace("’", "'").strip("'!*")
    if t.endswith("'s") and len(t) > 3 and t[:-2] not in _IS_CONTRACTIONS:
        t = t[:-2]  # a possessive: "bitch's" is "bitch"
    if re.search(r"[a-z]", t):
        t = t.translate(_LEET)  # "b1tch"; not a number ("15" is no "is")
    return re.sub(r"([a-z])\1{2,}", r"\1", t)  # fuuuck -> fuck, shiiit -> shit


@functools.lru_cache(maxsize=None)
def listed() -> frozenset:
    """better-profanity's words, normalised (its leetspeak variants included)."""
    from better_profanity import profanity  # pylint: disable=import-outside-toplevel
    profanity.load_censor_words()
    return frozenset(normalize(str(w)) for w in profanity.CENSOR_WORDSET)


# A listed word built on one of these stems is profanity even if no family spells it
# ("cockface", "knobhead", "fuckwit").
_STEMS = re.compile(r"fuck|shit|cunt|cock(?!tail|pit|roach|atoo)|twat|wank|bitch|nigg|knob|jizz|"
                    r"slut|whore|nutsack|numbnut|fag")


# Stems toxic inside any word, listed or not ("pigfucking").
_ANY_STEM = re.compile(r"fuck|cunt|nigg|bitch|whore|slut|faggot|twat|(?<![a-z])shit(?!ake)|"
                       r"shit(?:s|ty|head|heads|hole|holes|face|bag|ter)?$")  # not "Cushite"


def strong(norm: str) -> str:
    """'person' (a slur or insult noun), 'profanity', or '' for a normalised token."""
    if PERSON_SLUR.fullmatch(norm):
        return "person"
    if PROFANITY.fullmatch(norm):
        return "profanity"
    if _ANY_STEM.search(norm) or (norm in listed() and _STEMS.search(norm)):
        return "profanity"
    return ""


_PERSON_PROFANITY = re.compile(r".*(?:holes?|heads?|bags?|faces?|wits?|wads?|ers|er)|cunts?|twats?|"
                               r"bastards?|pricks?|douches?|scums?")


def person_noun(norm: str) -> bool:
    """A slur, an insult noun or a profanity that names a person ("asshole", "bastard")."""
    kind = strong(norm)
    return kind == "person" or (kind == "profanity" and bool(_PERSON_PROFANITY.fullmatch(norm)))


def tokens(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normalised) of each word-like token; '@user' handles and URL paths
    skipped."""
    out = []
    skip = [h.span() for h in _HANDLE_OR_ENTITY.finditer(text)]
    for m in _TOKEN.finditer(text):
        raw = m.group()
        if raw.startswith("@") or any(a <= m.start() < b for a, b in skip):
            continue  # a handle ("@_BitchBUH" is a name), an entity ("&#128514;")
        chunk_start = max(text.rfind(" ", 0, m.start()), text.rfind("\n", 0, m.start())) + 1
        if m.start() > 0 and text[m.start() - 1] == "/" and re.search(
                r"://|www\.|\.(?:com|co|org|net|ly)/", text[chunk_start:m.start()]):
            continue  # a URL's path; "niggas/bitches" is two words
        if re.match(r"&#8230;|…", text[m.end():m.end() + 7]):
            continue  # cut off by a truncation mark: "last nig&#8230;" was "night"
        start = m.start() + (len(raw) - len(raw.lstrip("'!")))
        end = m.end() - (len(raw) - len(raw.rstrip("'!")))
        if end > start:
            out.append((start, end, normalize(text[start:end])))
    return out


# Words that may stand between an insult and the person noun it qualifies ("stupid white
# bitch", "ghetto black man", "dumb monkey ass niggas").
QUALIFIERS = {"white", "black", "brown", "yellow", "asian", "mexican", "thirsty", "creepy",
               "old", "young", "lil", "little", "ass", "as", "headed", "big", "fat", "ugly", "dirty"}


def _vocative(toks: list, i: int, text: str) -> bool:
    """A word said to someone on its own: it opens its sentence or follows a comma, and a
    comma or end punctuation closes it ("Weirdo.", "loser !", "negro, you ...")."""
    start, end = toks[i][0], toks[i][1]
    gap_before = text[toks[i - 1][1]:start] if i else text[:start]
    opens = i == 0 or re.search(r"[.!?,:\n]|&#\d+;", gap_before) is not None \
        or toks[i - 1][2] in {"hey", "yo", "ok", "okay", "lol", "bye"}
    closes = re.match(r"\s*(?:[!?.,]|$)", text[end:]) is not None
    return opens and closes


def aimed(toks: list, i: int, text: str = "") -> bool:
    """Whether the targeted word at toks[i] is aimed at a person (see the module doc)."""
    before = [t[2] for t in toks[max(0, i - 4):i]]
    nxt = toks[i + 1][2] if i + 1 < len(toks) else ""
    if toks[i][2] in THING_INSULTS | {"trash", "garbage"} and nxt in COMPOUND_NOUNS:
        return False  # "garbage can", "trash man"
    if before and before[-1] in {"not", "never", "aint", "ain't", "no", "isnt", "isn't"} \
            and toks[i][2] in THING_INSULTS | {"ghetto", "lame", "loser"}:
        return False  # "you're not ghetto", "he ain't stupid": no insult
    if before and before[-1] in {"they", "we"} and toks[i][2] in {"trash", "garbage"}:
        return False  # "if they trash it": a verb
    if toks[i][2] in {"honky", "honkey"} and nxt in {"tonk", "tonks"}:
        return False  # the music
    if before and before[-1] in SLUR_LEADS:
        return True
    if toks[i][2] in {"ho", "hoe"} and before and nxt not in {"ho", "hoe"} and before[-1] in {
            "that", "this", "dat", "dis", "yo", "ur", "your", "his", "ya"}:
        return True  # "snag that ho", not "ho ho ho"
    for k in range(2, 4):  # a person noun after qualifiers: "stupid white bitch"
        if i + k < len(toks) and all(t[2] in QUALIFIERS | TARGETED
                                     for t in toks[i + 1:i + k]) and (
                person_noun(toks[i + k][2]) or toks[i + k][2] in PERSON_WORDS):
            return True
    if text and toks[i][2] in VOCATIVE_INSULTS and _vocative(toks, i, text):
        return True
    if any(strong(word) == "person" for word in before):  # "an idiot and a loser"
        return True
    if nxt and (person_noun(nxt) or nxt in {"ass", "bitch", "bitches"}
                or nxt in PERSON_WORDS):
        return True
    if toks[i][2] in {"queer", "queers"} and before and before[-1] in {"this", "that", "no",
                                                                    "those", "these"}:
        return True  # "this queer", "no queers"; "queer folks" stays
    if toks[i][2] in NEXT_ONLY:
        return False  # "colored duct tape": only "colored folks" and the like
    if len(before) >= 2 and before[-2] in {"is", "are", "was", "were"} and before[-1] in {
            "a", "an"} and toks[i][2] not in THING_INSULTS and text and re.match(
                r"\s*(?:[!?.,;:]|&#|$|and\b)", text[toks[i][1]:]):
        return True  # "a relative is a pig.", "Obama is a monkey!"; not "is a pig farm"
    for j, word in enumerate(before):
        # "you"/"ur" reach three words ("you stupid little clown"); "they"/"he" one or two
        # ("they were my guinea pigs" is not aimed at them)
        reach = 3 if word in _YOU else 2
        if len(before) - j > reach:
            continue
        if toks[i][2] in THING_INSULTS and not set(before[j + 1:]) <= LINKS:
            continue  # "you're trash", "ur so trash"; not "you leave magic trash in my jacket"
        if toks[i][2] in {"trash", "garbage"} and word not in _YOU:
            continue  # "he's trash", "they trash" rate a player or a band: only said to
            # someone ("you're trash") is it abuse
        if word in POINTERS and (word not in _POINTER_NEEDS_NEXT or j == len(before) - 1):
            # "the game is trash" is about a thing: "is"/"are" count only right before
            # the word and only for a person's insult or slur, not "trash"/"garbage"
            if word in _POINTER_NEEDS_NEXT and toks[i][2] in {"trash", "garbage", "lame",
                                                               "ugly", "useless", "dumb"}:
                # the subject right before "is" must be a person ("he is trash"), not a
                # thing after a possessive ("your grammar is trash")
                subject = toks[i - 2][2] if i >= 2 else ""
                return subject in POINTERS - _POINTER_NEEDS_NEXT - {"your", "ur", "his", "her",
                                                                   "yo"}
            return True
    return False
