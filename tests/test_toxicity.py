"""toxicity: detection that reads context, a fallback that rephrases, clean texts untouched."""

from gdr_beam.tasks import get_task
from gdr_beam.tasks.toxicity import detect

# Texts an annotator would call clean, with words a bare list flags.
CLEAN = [
    "It's a slippery slope, so take the trash out before you leave.",
    "Damn, that game was wild lmao. What the hell happened in the 4th?",
    "The raccoon hunters call their dogs coon hounds.",
    "Pour the vodka, light the grill, and don't be a stranger.",
    "The new release is garbage collected, so memory stays flat.",
    "I hoe to see you guys soon!",
    "Next time you leave magic trash in my jacket, sign it.",
    # mild words in a clean text, things called trash, negations, numbers, names
    "Damn, what the hell, shut up! The Lakers are a purple and yellow garbage can.",
    "You're not stupid, and if they trash the place we pay. 15 slopes, 4 honky tonks.",
    "Dick Whitman and the Negro Leagues, Uncle Tom's Cabin.",
    # a player or a band rated, not someone abused
    "Pierce would've drained those shots. He's so trash now smh, they all trash this year",
]


def test_clean_texts_pass_through_byte_identical():
    task = get_task("toxicity")
    for text in CLEAN:
        assert detect(text) == [], text
        assert task.fallback("c", text, 0).text == text


def test_context_decides_targeted_words():
    assert [s.value for s in detect("you are trash and everyone knows it")] == ["trash"]
    assert detect("the trash is full") == []
    assert [s.category for s in detect("those dirty coons again")] == ["insult"]
    assert [s.value for s in detect("can't keep up with me &#128540; loser !")] == ["loser"]
    assert [s.value for s in detect("@Chink_19 you ok?")] == []  # a handle is a name
    assert [s.value for s in detect("niggas/bitches")] == ["niggas", "bitches"]  # no URL
    # a rewrite may keep a mild word ("damn"); "tf" is no leak inside "outfit"
    task = get_task("toxicity")
    assert task.review("those damn idiots broke it again", "those damn people broke it again").accepted
    assert task.review("that bitch broke my outfit tf", "that person broke my outfit").accepted
    assert {s.value.lower() for s in detect("F*CK this, you st00pid b1tch, fuuuck")} >= \
        {"f*ck", "b1tch", "fuuuck"}
    assert [s.category for s in detect("I'm gonna kill you when I see you")] == ["threat"]
    # hatred aimed at people softens; hating a thing or a situation is no abuse
    assert task.fallback("h", "we hate yall lol, see you at the game", 0).text == \
        "we dislike yall lol, see you at the game"
    assert task.fallback("h", "she hated that guy since school", 0).text == \
        "she disliked that guy since school"
    for text in ("I hate Mondays", "I hate that I wake up early after a party"):
        assert detect(text) == [], text


def test_fallback_rephrases_and_repairs_grammar():
    task = get_task("toxicity")
    cases = {
        "This update is fucking garbage, you idiots broke the export again.":
            "This update is bad, you broke the export again.",
        "That bitch lied to me about the rent": "That person lied to me about the rent",
        "what the fuck is this shit, the app crashed": "what on earth is this stuff, the app crashed",
        "that was fucking good, the band played all night": "that was really good, the band played all night",
        "Fuck you, you stupid bitch. The meeting is at noon.": "Forget you. The meeting is at noon.",
        "He's an idiot but he fixed the build today.": "He's unkind but he fixed the build today.",
        "get your ass over here, the food is ready": "get yourself over here, the food is ready",
        # a capital comes back only where a dropped word began the sentence
        "Fuck, the build broke... so it goes. the end": "The build broke... so it goes. the end",
        # mild words go too once the text is toxic; phrase slurs; idioms; threats
        "those god damn chinks ruined it, wtf": "those people ruined it, what",
        "Shut up bitch, Uncle Tom Hypocrite! The vote is on Monday.": "Be quiet! The vote is on Monday.",
        "karma's a bitch and so is he, I told you": "karma's harsh and so is he, I told you",
        "\"Let's kill cracker babies!\" WTF did I just hear": "\"I'm very angry with you!\" WHAT did I just hear",
        "Caleb's a dick and you stupid white bitch lied": "Caleb's unkind and you white person lied",
    }
    for text, want in cases.items():
        out = task.fallback("t", text, 0)
        assert (out.verdict, out.text) == ("fallback", want), text
        assert not detect(out.text)
        assert task.review(text, out.text).accepted is not None  # the verifier agrees


def test_put_downs_read_in_context():
    """Rules found on the public tweet corpus's dev half: hatred aimed at a slur's target, "gay"
    and "queer" as put-downs (not as identities), "is a pig", liars, throat-slitting; a garden
    hoe and Dutch "hoe" (how) are no slur."""
    task = get_task("toxicity")
    cases = {
        "I hate that faggot next door, he parks on my lawn":
            "I dislike that person next door, he parks on my lawn",
        "hate those lazy bitches at work": "dislike those people at work",
        "lol you gay, pass the ball already": "lol you silly, pass the ball already",
        "that game is for queers, I am done with it": "that game is for people, I am done with it",
        "he said his uncle is a pig. wild story": "he said his uncle is unkind. wild story",
        "you liar, you said the bus was at noon": "you said the bus was at noon",
    }
    for text, want in cases.items():
        assert task.fallback("t", text, 0).text == want, text
    assert [s.category for s in detect("I wanna slit his throat")] == ["threat"]
    assert [s.category for s in detect("lol. go get left in a hot car and die")] == ["threat"]
    for text in ("I hate when people park on my lawn", "are you gay? my cousin is too",
                 "we read queer theory in class today", "my fellow queer folk, happy pride",
                 "Peppa is a pig farm owner", "Dad ran the rotary hoe over the corn",
                 "willen meer mensen mij vertellen hoe ik moet denken",
                 "Tilt my chin back, slit my throat, take a bath",
                 "I will go to the shop and die of boredom lol"):
        assert detect(text) == [], text
        assert task.fallback("c", text, 0).text == text
