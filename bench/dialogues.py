"""A generator of long, multi-session, multi-party dialogues with known-evidence probes.

Built to be about as hard as real long-term conversations between people (the kind of
corpus where questions are annotated with the turns that answer them), not to flatter a
retriever. Deterministic for a given seed. v4 is calibrated on such a corpus (10 very
long two-person conversations, 1,536 questions): the builder before tuning (the bench's
"before" row), plain BM25 over turns and the sliding window score here about what they
score there (docs/memory.md, Benchmark). What makes it hard:

- Asked late, about everything: probes come in the last tenth of the dialogue and ask
  about any earlier point, so most evidence is hundreds of turns back and a sliding
  window of 2k tokens holds about one probe in ten (0.08 on the real corpus).
- Wording: most questions reuse a word of their evidence (a name, an object, a place:
  "Where did I book flights to?"), the rest are paraphrased and share no content word
  with it ("We adopted a rescue puppy, a little beagle" is asked as "What sort of animal
  did I bring home?"); the mix puts BM25 near its real-corpus recall.
- Multi-hop: evidence in 2-4 turns of different sessions. A chain ("My cousin Nadia came
  for dinner" ... later "Nadia moved to Porto": "Where is my cousin living now?"), or an
  aggregate whose mentions are about different things in different words ("I've been
  looking into psychology programmes", "Friends always come to me with their problems",
  "I volunteered at the crisis helpline": "What field would she likely study?").
- Temporal: the answer is a session's date ("When did I get my licence?") or needs two
  dated turns ("What did I do the weekend after the Lisbon trip?").
- Inference: two hints imply the answer, never state it, and the question is in other
  words ("I haven't touched meat in six years" + "Lentils and chickpeas are basically my
  whole diet": "Would a steakhouse be a good choice to take me to?").
- Multi-party: some sessions are two people talking with each other and the robot; their
  turns are `shared` and each owned by its speaker, and the other person may ask about
  them later in the third person ("Who does Bob report to these days?").
- Density: most turns are chit-chat on the same topics (pets, trips, work, music), and
  other people state the same kinds of fact; people update a fact at most once (a new
  book, a new boss) and a probe expects the newest statement.
- Embodied kinds kept from v2: an object shown to the camera is named only in the
  caption (image); "which room is the ladder in" is answered by the turn's place (place).

A probe has one or more evidence turns; the bench counts all-evidence recall (every
evidence turn inside the context) and any-evidence recall (at least one). Its distance is
counted from its oldest evidence turn.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Literal

from memory.sql_store import STOPWORDS
from memory.types import MemoryTurn, Pose

ProbeKind = Literal["single", "temporal", "multi-hop", "inference", "image", "place"]
KINDS: tuple[ProbeKind, ...] = ("single", "temporal", "multi-hop", "inference", "image", "place")

PEOPLE = ["alice", "bob", "chen", "dara"]
PLACES = {
    "kitchen": (1.0, 2.0),
    "living room": (4.0, 1.0),
    "garage": (9.0, -3.0),
    "garden": (12.0, 6.0),
    "office": (3.0, 8.0),
    "hallway": (5.0, 4.0),
}

# Words that carry no evidence when checking that a question paraphrases its evidence:
# memory's own stopwords, plus contraction pieces and vague time and place words.
_STOP = STOPWORDS | frozenset(
    [
        "d",
        "s",
        "t",
        "m",
        "ll",
        "re",
        "ve",
        "o",
        "days",
        "lately",
        "new",
        "now",
        "into",
        "out",
        "over",
        "up",
    ]
)
_WORD = re.compile(r"[a-z']+")


def content_stems(text: str) -> set[str]:
    """4-letter stems of the content words: a conservative test for shared vocabulary."""
    words = (w.strip("'") for w in _WORD.findall(text.lower()))
    return {w[:4] for w in words if len(w) > 2 and w not in _STOP}


# ---------------------------------------------------------------------------------------
# Single facts: (slot, statements, questions, values). `{v}` is the value, `{n}` a name.
# Questions use {I} {my} {me} so that another person can ask in the third person.

NAMES = [
    "Nadia",
    "Tomas",
    "Lena",
    "Rafael",
    "Ingrid",
    "Kwame",
    "Sofia",
    "Matteo",
    "Yara",
    "Oren",
    "Hanna",
    "Diego",
    "Maren",
    "Felix",
    "Amara",
    "Jonas",
]
CITIES = [
    "Lisbon",
    "Porto",
    "Krakow",
    "Seville",
    "Ghent",
    "Bergen",
    "Trieste",
    "Tallinn",
    "Valencia",
    "Lyon",
    "Bruges",
    "Split",
]
RELATIVES = ["cousin", "aunt", "nephew", "brother-in-law", "niece", "godmother"]
MONTHS = ["March", "April", "May", "June", "September", "October"]


@dataclass(frozen=True)
class SlotFact:
    slot: str
    statements: tuple[str, ...]
    questions: tuple[str, ...]  # paraphrased and literal: the probe picks which it needs
    values: tuple[str, ...]
    mentions: tuple[str, ...]  # the topic without the fact: distractors


SINGLE = [
    SlotFact(
        "pet",
        (
            "We finally adopted a rescue puppy, a little {v} we named {n}.",
            "Guess what, a {v} puppy called {n} is living with us, chewing everything.",
        ),
        (
            "What sort of animal did {I} bring home?",
            "Which companion joined {my} household?",
            "What breed is {my} puppy?",
            "What breed is {n}, {my} puppy?",
        ),
        ("beagle", "spaniel", "greyhound", "corgi", "terrier"),
        (
            "The dogs in the park were wild this morning, one {v} chased every ball.",
            "My friend's {v} is so sweet, she wants me to look after it sometime.",
            "I watched a video about training a {v} puppy, looks like hard work.",
            "A stray {v} followed me home from the bakery today.",
        ),
    ),
    SlotFact(
        "boss",
        (
            "They moved me to the {v} department, and {n} is my manager from Monday.",
            "Big change at work: {n} runs the {v} team and I answer to her now.",
        ),
        (
            "Who is {my} supervisor?",
            "Who do {I} report to at the office?",
            "Who is {my} manager now?",
            "Which team do {I} work in?",
        ),
        ("logistics", "design", "research", "accounts", "customer care"),
        (
            "Work was exhausting again, {n} from {v} kept us in meetings all day.",
            "The {v} department had a leaving party for {n} this afternoon.",
            "I might apply for a role in {v}, {n} says they're hiring.",
            "My old manager {n} sent me a kind note today.",
        ),
    ),
    SlotFact(
        "holiday",
        (
            "We booked flights to {v} for the autumn break, can't wait.",
            "Tickets are sorted, we're flying to {v} in {m}.",
        ),
        (
            "Where is {my} next vacation going to be?",
            "Which destination did {I} pick to get away?",
            "Where are {I} flying to?",
            "Where did {I} book flights to?",
        ),
        tuple(CITIES),
        (
            "My friend just came back from {v} and loved every minute.",
            "Flights to {v} are so expensive these days, maybe one day.",
            "I watched a documentary about {v}, the old streets looked magical.",
            "My colleague keeps telling me to visit {v} in the spring.",
        ),
    ),
    SlotFact(
        "allergy",
        (
            "The doctor says I react badly to {v}, so no more of that for me.",
            "Turns out those rashes were from {v}, the clinic confirmed it.",
        ),
        (
            "What food must {I} avoid for health reasons?",
            "Which ingredient makes {me} ill?",
            "What does the doctor say {I} react to?",
            "What gave {me} those rashes?",
        ),
        ("peanuts", "shellfish", "strawberries", "sesame", "kiwi"),
        (
            "I made a salad with {v} for lunch, really good.",
            "My nephew can't eat {v}, we have to check every label for him.",
            "I had a check-up at the clinic today, all routine, nothing to worry about.",
            "Bought a big bag of {v} at the market this morning.",
        ),
    ),
    SlotFact(
        "book",
        (
            "I've been reading {v} before bed every night.",
            "Started {v} on the train, couldn't put it down.",
        ),
        (
            "What title keeps {me} company in the evenings?",
            "Which novel is {my} current one?",
            "What book have {I} been reading?",
            "What did {I} start reading on the train?",
        ),
        (
            "The Glass Harbour",
            "Salt and Thunder",
            "The Quiet Orchard",
            "Ninety Winters",
            "A Map of Embers",
            "The Lantern Keeper",
        ),
        (
            "A friend recommended {v} to me, maybe after the holidays.",
            "I saw {v} in the shop window, the cover looked nice.",
            "I gave up on {v} halfway through, too slow for me.",
            "The book club is discussing {v} next month, I probably won't go.",
        ),
    ),
    SlotFact(
        "home",
        (
            "I moved into a flat on {v}, close to the river.",
            "Finally signed the lease, my place is on {v} now.",
        ),
        (
            "Where is {my} apartment?",
            "What address do {I} live at?",
            "Which street is {my} flat on?",
            "Where is the place {I} signed the lease for?",
        ),
        ("Elm Road", "Baker Lane", "Mill Street", "Harbour Walk", "Orchard Close"),
        (
            "My friend lives on {v}, it's a lovely area with a good bakery.",
            "They're digging up {v} again, the traffic is awful.",
            "I looked at a flat on {v} once but it was far too small.",
            "The rent keeps going up around here, it's getting ridiculous.",
        ),
    ),
    SlotFact(
        "instrument",
        (
            "I picked up a second-hand {v} and I'm practising scales every morning.",
            "My neighbours now hear me playing the {v} at seven.",
        ),
        (
            "What music gear did {I} buy?",
            "Which thing am {I} learning to perform on?",
            "What instrument do {I} practise every morning?",
            "What do the neighbours hear {me} playing?",
        ),
        ("cello", "trumpet", "ukulele", "saxophone", "banjo"),
        (
            "There was a street musician playing the {v} outside the bakery.",
            "My cousin wants to learn the {v}, I told her it takes years.",
            "I heard an amazing {v} solo on the radio this morning.",
            "I once tried the {v} at school, I was hopeless.",
        ),
    ),
    SlotFact(
        "car",
        (
            "My car broke down again, the mechanic says the {v} is shot.",
            "The garage called: the {v} needs replacing, the car is off the road.",
        ),
        (
            "What is wrong with {my} vehicle?",
            "Which part failed on {my} motor?",
            "What is broken on {my} car?",
            "What did the mechanic say about {my} car?",
        ),
        ("gearbox", "clutch", "alternator", "radiator", "starter"),
        (
            "My colleague's car needed a new {v}, cost her a fortune.",
            "Traffic on the ring road was terrible, an hour to get in.",
            "The mechanic checked the {v} last year and said it was fine.",
            "I need to wash the car this week, it's covered in dust.",
        ),
    ),
]

# Temporal, one turn: the rendered date of the session answers "when".
WHEN: list[tuple[str, tuple[str, ...]]] = [
    (
        "Yesterday I finally passed my driving test, first try!",
        ("On which day did {I} get {my} licence?", "When did {I} pass {my} driving test?"),
    ),
    (
        "Last night we celebrated our tenth anniversary at a tiny Italian place.",
        ("When was {my} wedding milestone dinner?", "When did {I} celebrate the anniversary?"),
    ),
    (
        "This morning I ran ten kilometres without stopping once.",
        ("When did {I} manage that long jog?", "When did {I} run ten kilometres?"),
    ),
    (
        "I handed in my notice at the bank today.",
        ("When did {I} quit {my} job?", "When did {I} hand in {my} notice?"),
    ),
    (
        "We watched the fireworks down by the harbour yesterday evening.",
        ("When did {I} see the pyrotechnics show?", "When did {I} watch the fireworks?"),
    ),
    (
        "Today I got the key to the allotment, finally.",
        ("When did {I} receive {my} vegetable plot?", "When did {I} get the allotment?"),
    ),
    (
        "My sister had her baby this morning, a little girl!",
        ("When did {I} become an aunt or uncle?", "When was {my} sister's baby born?"),
    ),
    (
        "We signed the papers for the new car today, it's electric.",
        ("When did {I} buy a new vehicle?", "When did {I} sign for the new car?"),
    ),
]
TRIP = [
    "Just got back from {c}, the old town and the food were unforgettable.",
    "Home again after a few days in {c}, I'm still dreaming of that coast.",
]
AFTER_TRIP = [
    "On Saturday I repainted the garden fence a dark green.",
    "I spent Saturday helping a friend carry boxes into her house.",
    "Saturday was all about baking sourdough, three loaves.",
    "We went kayaking on the lake on Saturday, so peaceful.",
    "I cleared out the whole attic on Saturday, so much junk.",
]
ASK_AFTER_TRIP = [
    "What did {I} do the weekend after the {c} trip?",
    "What was {my} weekend activity right after coming home from {c}?",
]

# Multi-hop chains: an introduction, then (another session) a change about that person.
CHAIN_INTRO = [
    "My {r} {n} came round for dinner, she's the funniest person I know.",
    "I spent the afternoon with my {r} {n}, we talked for hours.",
]
CHAIN_STEP = {
    "city": (
        (
            "{n} moved to {c} last week, the flat has a balcony.",
            "{n} called, she's settled in {c} now.",
        ),
        (
            "Where is {my} {r} living now?",
            "Which town did {my} {r} relocate to?",
        ),
    ),
    "job": (
        (
            "{n} started working as a {j} at the hospital.",
            "{n} is training to be a {j}, long shifts.",
        ),
        (
            "What does {my} {r} do for a living?",
            "What is {my} {r}'s occupation?",
        ),
    ),
}
JOBS = ["nurse", "paramedic", "pharmacist", "radiographer", "midwife"]

# Multi-hop aggregates: 2-4 mentions in different sessions, asked together. The mentions
# of one group are about different things in different words (what they share is only
# the question's abstraction: "staying fit" over salsa, a road bike and an allotment).
AGGREGATES: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "fitness": (
        [
            "Signed up for salsa lessons on Tuesday evenings, my feet are killing me.",
            "Bought a second-hand road bike and did forty kilometres on Sunday.",
            "I dug over three beds on the allotment this morning, my back knows it.",
            "I take the stairs to the sixth floor every day now, no more lift.",
            "Joined a five-a-side football team with people from the office.",
        ],
        (
            "What do {I} do to stay in shape?",
            "How have {I} been getting exercise?",
            "Which sports have {I} taken up?",
        ),
    ),
    "career": (
        [
            "I've been looking into psychology programmes at the university.",
            "Friends always come to me with their problems, I'm a good listener.",
            "I volunteered on the night shift at the crisis helpline last month.",
            "Counselling is what I want to do with my life, I'm sure of it now.",
        ],
        (
            "What field would {I} likely study?",
            "What career might {I} pursue?",
            "What kind of programmes have {I} been looking into?",
        ),
    ),
    "family": (
        [
            "Took the kids to the science museum, the dinosaur hall was a hit.",
            "We camped by the lake at the weekend, the little one caught a fish.",
            "Spent the afternoon painting pebbles with my daughter on the balcony.",
            "Movie night at home with popcorn and blankets, the boys chose a cartoon.",
        ],
        (
            "What have {I} done together with {my} children?",
            "Which outings did {I} plan for the family?",
            "What did {I} do with the kids?",
        ),
    ),
    "giving": (
        [
            "Spent Saturday sorting tins at the food bank.",
            "I gave a talk at the primary school about recycling.",
            "Ran the fun run for the hospice, raised three hundred pounds.",
            "Helped my elderly neighbour with her shopping again, she's lovely.",
        ],
        (
            "How have {I} been helping others?",
            "What good causes did {I} support?",
            "What volunteering have {I} done?",
        ),
    ),
    "creative": (
        [
            "I finished my first watercolour of the harbour, not bad at all.",
            "Wrote three pages of my short story on the bus.",
            "Knitted a scarf for my nephew, it's lumpy but warm.",
            "Recorded a song on my phone with the old guitar.",
        ],
        (
            "What artistic things have {I} made?",
            "Which creative projects did {I} work on?",
            "What have {I} been writing or painting?",
        ),
    ),
    "visits": (
        [
            "Spent a week in Kyoto, the temples were stunning.",
            "Flew to Nairobi for a friend's wedding, amazing party.",
            "We had four days in Montreal, so cold but lovely.",
            "A work trip took me to Santiago, great wine there.",
        ],
        (
            "Which countries have {I} been to this year?",
            "Name the foreign places {I} visited.",
            "Which cities did {I} spend time in?",
        ),
    ),
    "health": (
        [
            "I've cut out sugar completely since March.",
            "Started swimming lengths before breakfast three times a week.",
            "In bed by ten every night this month, feeling great.",
            "I do ten minutes of meditation each morning now.",
        ],
        (
            "What changes did {I} make to stay fit and well?",
            "How is {my} lifestyle different lately?",
            "What do {I} do differently now?",
        ),
    ),
}

CHAIN_MENTIONS = [
    "My colleague {n} moved to {c} in the summer, we still chat online.",
    "{n} from the gym is retraining as a {j}, good for her.",
    "An old school friend, {n}, lives in {c} now, we lost touch.",
    "Did I mention {n}? She wants to become a {j}, such long shifts.",
    "I bumped into {n} at the market, she's just back from {c}.",
]
AGG_MENTIONS = [
    "My sister keeps asking me to try her salsa class, maybe one day.",
    "The bike shop near the office always looks packed after work.",
    "My colleague's allotment is overrun with courgettes again.",
    "Our neighbour sings in a choir, I can hear them rehearse on Fridays.",
    "A friend of mine moved to Kyoto for work last year.",
    "There's a Kenyan restaurant opening near the station, Nairobi style street food.",
    "Montreal is on my list, but it's so far and so cold.",
    "My colleague spent a semester in Santiago, she still talks about it.",
    "I spent the whole Sunday on the sofa watching a cooking show.",
    "The science museum has a new exhibition, everyone is talking about it.",
    "My cousin studied psychology, she says the exams were brutal.",
    "The food bank by the church is asking for tins again.",
    "I bought a watercolour set years ago and never opened it.",
    "The kids next door were camping in their garden, so cute.",
    "I used to knit with my grandmother, I've forgotten how.",
    "I should really meditate more, my head is always busy.",
]

# Inference: traits implied (never stated) by two statements, asked as hypotheticals
# in other words (people rarely ask these with the words of the hints).
TRAITS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "outdoors": (
        [
            "Nothing beats watching the sunrise from a ridge after a long climb.",
            "I walked the coastal path on Sunday, twenty kilometres, bliss.",
        ],
        ("Would {I} enjoy a trekking vacation in the Alps?",),
    ),
    "quiet": (
        [
            "Big parties drain me, I'd rather stay in with tea.",
            "Crowds make me anxious, I left that concert early.",
        ],
        ("Would {I} like a loud celebration with lots of guests?",),
    ),
    "vegetarian": (
        [
            "I haven't touched meat in six years.",
            "Lentils and chickpeas are basically my whole diet.",
        ],
        ("Would a steakhouse be a good choice to take {me} to?",),
    ),
    "early": (
        [
            "I'm up at five most days, before the birds.",
            "By seven I've already done yoga and had breakfast.",
        ],
        ("Is a midnight movie screening a good plan for {me}?",),
    ),
    "furry": (
        [
            "My eyes stream whenever a furry animal is nearby.",
            "I sneezed all evening at Tom's, he has a rabbit.",
        ],
        ("Could {I} comfortably stay with a friend who owns three cats?",),
    ),
    "water": (
        [
            "I never learned to swim, deep water terrifies me.",
            "Even the ferry makes me nervous, I stay inside.",
        ],
        ("Should {I} sign up for a sailing course?",),
    ),
    "thrifty": (
        [
            "I patched my old coat again instead of buying a new one.",
            "Every receipt goes into a spreadsheet, I know where each penny went.",
        ],
        ("Would {I} splash out on a designer handbag?",),
    ),
    "heat": (
        [
            "Anything above twenty-five degrees and I'm hiding indoors.",
            "I got badly sunburnt again, my skin just can't take it.",
        ],
        ("Is a beach holiday in August a good idea for {me}?",),
    ),
}

# Embodied kinds (v2): objects shown to the camera, things kept in rooms.
SHOWABLE = ["mug", "vase", "teapot", "lamp", "clock", "kite", "backpack", "picture frame"]
COLORS = ["red", "green", "blue", "yellow", "black", "white", "orange", "purple"]
PATTERNS = ["white polka dots", "a cat drawing", "gold stripes", "a small crack", "a floral print"]
GIVERS = ["sister", "grandmother", "colleague", "best friend", "uncle"]
SHOW = ["Look at this, my {g} gave it to me.", "Here, a present from my {g}. What do you think?"]
ASK_SHOWN = ["What did the {o} from {my} {g} look like?", "Describe the {o} {my} {g} gave {me}."]
# The question names the object as people do, not as the caption does.
OBJECT_ALIAS = {
    "mug": "cup",
    "vase": "flower holder",
    "teapot": "tea kettle",
    "lamp": "light",
    "clock": "timepiece",
    "kite": "kite",
    "backpack": "rucksack",
    "picture frame": "photo frame",
}
STORED = [
    "first aid kit",
    "fire blanket",
    "spare light bulbs",
    "extension cord",
    "picnic blanket",
    "sewing kit",
    "jump leads",
    "board games",
    "ladder",
    "watering can",
]
KEEP = ["Please remember that the {i} is kept here.", "This is where the {i} lives from now on."]
ASK_KEPT = ["Which room is the {i} in?", "Where do we keep the {i}?"]

# Chit-chat: most turns. It reuses the facts' topics so that it competes with them.
CHAT_USER = [
    "Good morning! I slept badly, the neighbours had a party until two.",
    "What's the weather going to be like this afternoon? I might go for a walk.",
    "Work has been hectic lately, I barely have time to eat lunch.",
    "I made a big pot of soup yesterday, there's enough for the whole week.",
    "Can you remind me to call the plumber later today?",
    "I watched a documentary about whales last night, fascinating stuff.",
    "My back hurts a bit, I think I sat too long at the desk.",
    "The traffic this morning was unbelievable, it took an hour to get in.",
    "I'm thinking about repainting the hallway, maybe a lighter colour.",
    "Do you know any good recipes with mushrooms? I bought far too many.",
    "It's been raining for three days straight, I'm so tired of it.",
    "My friend sent me photos from her holiday, the beaches looked amazing.",
    "I have a dentist appointment on Friday, not looking forward to it.",
    "The garden needs a lot of work before spring, the weeds are everywhere.",
    "I tried a new coffee place near the station, it was pretty good.",
    "Honestly I just want a quiet evening with some music and a blanket.",
    "We should plan something fun for the long weekend, any ideas?",
    "I keep forgetting to water the plants on the windowsill.",
    "There's a street market on Sunday, they sell cheese and old records.",
    "My phone battery dies by noon now, I need a new one soon.",
    "I'm trying to drink more water and less coffee, it's hard.",
    "That film everyone talks about was fine, a bit too long for me.",
    "The kids next door are learning drums, it is very loud.",
    "I found an old photo album in a drawer, such memories.",
]
CHAT_ROBOT = [
    "That sounds like a lot. Is there anything I can do to make today a little easier?",
    "It should stay mostly dry this afternoon, with some clouds later in the evening.",
    "Of course, I'll remind you later. Just tell me if the time changes.",
    "I'm glad you told me. How are you feeling about it now?",
    "That sounds lovely. Tell me more about it when you have a moment.",
    "I can help with that. Would you like me to make a note for later?",
    "Oh, interesting! What did you like most about it?",
    "I understand. Taking a short break might help, if you can.",
    "Noted. I'll keep that in mind for the next few days.",
    "That sounds like a good plan to me. Let me know how it goes.",
    "Wow, that's quite something. I hope the rest of the week is calmer.",
    "Thanks for sharing that with me, it's nice to hear how your day went.",
]
CHAT_PAIR = [
    "Did you see the message from the landlord about the heating?",
    "I'm starving, shall we order something later?",
    "Remember that café we went to last spring? It closed down.",
    "You look tired, long day?",
    "Yes, exhausting. Meetings from nine to five.",
    "Ha, same here. I need a holiday.",
    "Have you finished that series yet? No spoilers please.",
    "We should invite the neighbours over some time.",
    "Honestly, I just want to sit in the sun for a week.",
    "Did you water the plants or shall I?",
]
FACT_REPLY = [
    "Oh, that's big news! How do you feel about it?",
    "Really? Tell me more, I'd love to hear the details.",
    "That sounds wonderful. I'm happy for you.",
    "Thanks for telling me, I'll remember that.",
    "Interesting! I didn't know that about you.",
]


@dataclass(frozen=True)
class Probe:
    question: str
    person: str  # who asks
    evidence_ids: tuple[str, ...]  # every turn needed to answer (newest statement of a fact)
    kind: ProbeKind
    ask_index: int  # asked when turns[:ask_index] are stored
    distance: int  # ask_index - index of the oldest evidence turn
    updated: bool = False  # an older, contradicting statement of the same fact exists
    literal: bool = False  # the question shares a content word with its evidence

    @property
    def evidence_id(self) -> str:  # the newest evidence turn (v2 compatibility)
        return self.evidence_ids[-1]


@dataclass(frozen=True)
class Dialogue:
    turns: list[MemoryTurn]
    probes: list[Probe]


ASKS_PER_FACT = 4  # probes per fact, each at a random later turn
ASKED_FROM = 0.9  # probes are asked in the last part of the dialogue, about all of it
LITERAL_SHARE = 0.9  # questions that reuse a word of their evidence (calibrated: BM25)
BUCKETS = ((1, 10), (11, 50), (51, 200), (201, 500), (501, 10**9))


def bucket(distance: int) -> str:
    for lo, hi in BUCKETS:
        if lo <= distance <= hi:
            return f"{lo}-{hi}" if hi < 10**9 else f"{lo}+"
    raise ValueError(distance)


def bucket_names() -> list[str]:
    return [bucket(lo) for lo, _ in BUCKETS]


@dataclass
class _Plan:
    """A fact that needs one or more statements, each in a different session."""

    kind: ProbeKind
    owner: str
    steps: list[str]  # statement texts still to say, in order
    questions: list[str]  # with {I} {my} {me}
    slot: str | None = None  # single facts: a newer statement of the slot supersedes
    said: list[int] = field(default_factory=list)  # turn indices of statements made
    sessions: set[int] = field(default_factory=set)
    caption: str | None = None
    shared_only: bool = True  # every statement was made in a shared session
    anchored: bool = False  # the first statement names what the question names (a chain)
    kw: dict[str, str] = field(default_factory=dict)  # names the questions may use

    @property
    def done(self) -> bool:
        return not self.steps


def _pronouns(person: str, asker: str) -> dict[str, str]:
    if person == asker:
        return {"I": "I", "my": "my", "me": "me"}
    name = person.capitalize()
    return {"I": name, "my": f"{name}'s", "me": name}


def _fill_question(template: str, person: str, asker: str, **kw: str) -> str:
    q = template.format(**_pronouns(person, asker), **kw)
    if person != asker:
        for name in PEOPLE:
            n = name.capitalize()
            q = q.replace(f"do {n} ", f"does {n} ").replace(f"am {n} ", f"is {n} ")
            q = q.replace(f"have {n} ", f"has {n} ")
    return q


class _Builder:
    def __init__(self, n_turns: int, seed: int, start_time: float) -> None:
        self.rng = random.Random(seed)
        self.n_turns = n_turns
        self.turns: list[MemoryTurn] = []
        self.plans: list[_Plan] = []
        self.active: dict[str, list[_Plan]] = {p: [] for p in PEOPLE}
        self.slot_history: dict[tuple[str, str], list[int]] = {}
        self.start_time = start_time
        self.day = 0.0
        self.session_no = 0
        self.used: dict[str, set[str]] = {p: set() for p in PEOPLE}  # one-off keys per person
        self.after_trip: dict[str, tuple[_Plan, str]] = {}

    # -- turns ---------------------------------------------------------------------------

    def add(
        self,
        speaker: str,
        person: str | None,
        text: str,
        ctx: dict[str, object],
        caption: str | None = None,
    ) -> int:
        tid = f"t{len(self.turns):06d}"
        place = str(ctx["place"])
        px, py = PLACES[place]
        rng = self.rng
        self.turns.append(
            MemoryTurn(
                id=tid,
                session=str(ctx["session"]),
                speaker="robot" if speaker == "robot" else "user",
                person=person,
                time=float(ctx["t"]),  # type: ignore[arg-type]
                place=place,
                pose=Pose(x=px + rng.uniform(-0.5, 0.5), y=py + rng.uniform(-0.5, 0.5)),
                text=text,
                image_caption=caption,
                image_path=f"frames/{tid}.jpg" if caption else None,
                shared=bool(ctx["shared"]),
            )
        )
        ctx["t"] = float(ctx["t"]) + rng.uniform(8, 40)  # type: ignore[arg-type]
        return len(self.turns) - 1

    @property
    def full(self) -> bool:
        return len(self.turns) >= self.n_turns

    # -- facts ---------------------------------------------------------------------------

    def said_twice(self, person: str, slot: str) -> bool:
        """A fact is updated at most once: real people restate few facts, and a fact
        restated often is always recent (a sliding window would find it)."""
        return len(self.slot_history.get((person, slot), ())) >= 2

    def new_plan(self, person: str, shared: bool) -> _Plan | None:
        rng = self.rng
        roll = rng.random()
        used = self.used[person]
        if roll < 0.42:
            fact = rng.choice(SINGLE)
            if self.said_twice(person, fact.slot):
                return None
            v, n = rng.choice(fact.values), rng.choice(NAMES)
            text = rng.choice(fact.statements).format(v=v, n=n, m=rng.choice(MONTHS))
            return _Plan(
                "single", person, [text], list(fact.questions), slot=fact.slot, kw={"n": n}
            )
        if roll < 0.54:
            free = [w for w in WHEN if w[0] not in used]
            if not free:
                return None
            stmt, qs = rng.choice(free)
            used.add(stmt)
            return _Plan("temporal", person, [stmt], list(qs))
        if roll < 0.56:
            if person in self.after_trip:
                return None
            c = rng.choice(CITIES)
            plan = _Plan(
                "temporal",
                person,
                [rng.choice(TRIP).format(c=c)],
                [q.replace("{c}", c) for q in ASK_AFTER_TRIP],
                anchored=True,
            )
            self.after_trip[person] = (plan, rng.choice(AFTER_TRIP))
            return plan
        if roll < 0.64:
            r, n = rng.choice(RELATIVES), rng.choice(NAMES)
            if f"rel:{r}" in used or f"name:{n}" in used:
                return None
            used.update({f"rel:{r}", f"name:{n}"})
            step_kind = rng.choice(sorted(CHAIN_STEP))
            steps, qs = CHAIN_STEP[step_kind]
            kw = {"r": r, "n": n, "c": rng.choice(CITIES), "j": rng.choice(JOBS)}
            return _Plan(
                "multi-hop",
                person,
                [rng.choice(CHAIN_INTRO).format(**kw), rng.choice(steps).format(**kw)],
                list(qs),
                anchored=True,
                kw={"r": r, "n": n},
            )
        if roll < 0.82:
            key = rng.choice(sorted(AGGREGATES))
            if f"agg:{key}" in used:
                return None
            used.add(f"agg:{key}")
            mentions, qs = AGGREGATES[key]
            k = min(len(mentions), rng.choice((2, 3, 3, 4)))
            return _Plan("multi-hop", person, rng.sample(mentions, k), list(qs))
        if roll < 0.92:
            key = rng.choice(sorted(TRAITS))
            if f"trait:{key}" in used:
                return None
            used.add(f"trait:{key}")
            stmts, qs = TRAITS[key]
            k = 2  # implied, never stated: both hints are needed
            return _Plan("inference", person, rng.sample(stmts, k), list(qs))
        if roll < 0.96:
            o, g = rng.choice(SHOWABLE), rng.choice(GIVERS)
            if self.said_twice(person, f"show:{o}:{g}"):
                return None
            caption = f"a {rng.choice(COLORS)} {o} with {rng.choice(PATTERNS)}"
            plan = _Plan(
                "image",
                person,
                [rng.choice(SHOW).format(g=g)],
                [q.replace("{o}", OBJECT_ALIAS[o]).replace("{g}", g) for q in ASK_SHOWN],
                slot=f"show:{o}:{g}",
                caption=caption,
            )
            return plan
        item = rng.choice(STORED)
        if self.said_twice(person, f"kept:{item}"):
            return None
        return _Plan(
            "place",
            person,
            [rng.choice(KEEP).format(i=item)],
            [q.format(i=item) for q in ASK_KEPT],
            slot=f"kept:{item}",
        )

    def say_fact(self, person: str, ctx: dict[str, object]) -> bool:
        """One statement of `person`: the next step of an open plan, or a new plan."""
        rng = self.rng
        session = int(ctx["no"])  # type: ignore[call-overload]
        pending = self.after_trip.get(person)
        if pending and pending[0].done and session not in pending[0].sessions:
            trip, activity = pending
            del self.after_trip[person]
            trip.steps.append(activity)
            self.active[person].append(trip)
        ready = [p for p in self.active[person] if session not in p.sessions]
        if ready and rng.random() < 0.75:
            plan = ready[0]
        else:
            made = self.new_plan(person, bool(ctx["shared"]))
            if made is None:
                return False
            plan = made
            self.plans.append(plan)
            self.active[person].append(plan)
        text = plan.steps.pop(0)
        index = self.add("user", person, text, ctx, caption=plan.caption if not plan.said else None)
        plan.said.append(index)
        plan.sessions.add(session)
        plan.shared_only &= bool(ctx["shared"])
        if plan.slot is not None:
            self.slot_history.setdefault((person, plan.slot), []).append(index)
        if plan.done:
            self.active[person].remove(plan)
        return True

    def mention(self, person: str) -> str:
        """The same topics as the facts, with other values: the hardest distractors."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.2:
            return rng.choice(AGG_MENTIONS)
        if roll < 0.35:
            kw = {"n": rng.choice(NAMES), "c": rng.choice(CITIES), "j": rng.choice(JOBS)}
            return rng.choice(CHAIN_MENTIONS).format(**kw)
        fact = rng.choice(SINGLE)
        return rng.choice(fact.mentions).format(v=rng.choice(fact.values), n=rng.choice(NAMES))

    # -- sessions ------------------------------------------------------------------------

    def session(self) -> None:
        rng = self.rng
        self.session_no += 1
        self.day += rng.choice((1, 1, 2, 2, 3, 4))
        t = self.start_time + self.day * 86400 + rng.uniform(8, 20) * 3600
        pair = rng.random() < 0.3
        people = rng.sample(PEOPLE, 2) if pair else [rng.choice(PEOPLE)]
        ctx: dict[str, object] = {
            "session": f"s{self.session_no:04d}",
            "no": self.session_no,
            "place": rng.choice(sorted(PLACES)),
            "t": t,
            "shared": pair,
        }
        exchanges = rng.randint(8, 16)
        facts_left = rng.choice((1, 2, 2, 3, 3))
        for _ in range(exchanges):
            if self.full:
                return
            who = rng.choice(people)
            roll = rng.random()
            if facts_left and roll < 0.3 and self.say_fact(who, ctx):
                facts_left -= 1
                if self.full:
                    return
                self.add("robot", who, rng.choice(FACT_REPLY), ctx)
                continue
            text = self.mention(who) if roll > 0.55 else rng.choice(CHAT_USER)
            if rng.random() < 0.5:  # people say more than one thing at a time
                text += " " + rng.choice(CHAT_USER)
            self.add("user", who, text, ctx)
            if self.full:
                return
            if pair and rng.random() < 0.6:
                other = next(p for p in people if p != who)
                self.add("user", other, rng.choice(CHAT_PAIR), ctx)
            elif not self.full:
                reply = rng.choice(CHAT_ROBOT)
                if rng.random() < 0.4:
                    reply += " " + rng.choice(CHAT_ROBOT)
                self.add("robot", who, reply, ctx)


def _overlaps(question: str, texts: list[str]) -> bool:
    q = content_stems(question)
    return any(q & content_stems(t) for t in texts)


def generate(n_turns: int = 2000, seed: int = 7, start_time: float = 1_767_225_600.0) -> Dialogue:
    """`n_turns` turns over simulated weeks, plus probes asked about the whole history."""
    b = _Builder(n_turns, seed, start_time)
    while not b.full:
        b.session()
    turns = b.turns
    rng = random.Random(seed + 1)
    probes: dict[tuple[str, tuple[str, ...], str, int], Probe] = {}
    for plan in b.plans:
        if not plan.done:
            continue
        last = plan.said[-1]
        askers = [plan.owner]
        if plan.kind != "place":
            askers += [p for p in PEOPLE if p != plan.owner]
        if last + 1 >= len(turns):
            continue
        # Asked at any later point, as people ask about their whole history: most
        # probes land far from their evidence, few inside a recent window.
        for _ in range(ASKS_PER_FACT):
            ask = rng.randint(max(last + 1, int(ASKED_FROM * len(turns))), len(turns))
            evidence = list(plan.said)
            updated = False
            if plan.slot is not None:
                history = b.slot_history[(plan.owner, plan.slot)]
                newest = max(i for i in history if i < ask)
                updated = history.index(newest) > 0
                evidence = [newest]
            # Shared facts may be asked by another person, in the third person.
            shared = all(turns[i].shared for i in evidence)
            asker = rng.choice(askers if shared else [plan.owner])
            texts = [turns[i].text for i in evidence]
            # Literal questions reuse a word of the evidence (a name, an object, a
            # place: "What kind of dog is Nadia?"); paraphrased ones share no content
            # word with it (the anchor of a chain or a trip, which the question must
            # name, aside). Which one is drawn first; the other when none fits.
            checked = [] if plan.kind in ("image", "place") else texts[plan.anchored :]
            filled = [_fill_question(t, plan.owner, asker, **plan.kw) for t in plan.questions]
            literal = [q for q in filled if _overlaps(q, checked)]
            paraphrased = [q for q in filled if q not in literal]
            first, second = (literal, paraphrased)
            if rng.random() >= LITERAL_SHARE:
                first, second = second, first
            options = first or second
            if not options:
                continue
            question = rng.choice(options)
            ids = tuple(turns[i].id for i in evidence)
            key = (asker, ids, plan.kind, ask)
            probes[key] = Probe(
                question=question,
                person=asker,
                evidence_ids=ids,
                kind=plan.kind,
                ask_index=ask,
                distance=ask - min(evidence),
                updated=updated,
                literal=question in literal,
            )
    ordered = sorted(probes.values(), key=lambda p: (p.ask_index, p.evidence_ids, p.question))
    return Dialogue(turns=turns, probes=ordered)
