"""A generator of long, multi-session embodied dialogues with known-evidence probes.

Several people talk to the robot over simulated days, in different rooms, show it
objects (image turns with captions) and tell it things. Some statements are facts;
probes ask about them later, at chosen distances (in turns), so evidence recall can be
measured exactly. Deterministic for a given seed.

What makes it hard (v2):
- Paraphrase: facts and questions come from separate template pools and objects have
  aliases ("keys" / "key ring"; "glasses" / "specs"), so a question often shares only
  one content word with its evidence, sometimes none.
- Distractors: the same person mentions the same object, relative or item without the
  fact ("my keys keep going missing"); other people state the same kind of fact about
  the same things (isolation must hide them); chit-chat reuses the vocabulary.
- Updates: a person moves an object, changes a favourite, moves a stored item. The
  expected evidence of a probe is the newest statement of that fact before the probe,
  and its distance is counted from that statement.
- Images: the object is named only in the keyframe caption, never in the spoken text.
- Places: "which room is the X in" is answered only by the turn's place (the text says
  "here"); "what did I last show you in the garage" needs the place of image turns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from memory.types import MemoryTurn, Pose

ProbeKind = Literal["text", "image", "person", "place"]
KINDS: tuple[ProbeKind, ...] = ("text", "image", "person", "place")

PEOPLE = ["alice", "bob", "chen", "dara", "emil"]
PLACES = {
    "kitchen": (1.0, 2.0),
    "living room": (4.0, 1.0),
    "garage": (9.0, -3.0),
    "garden": (12.0, 6.0),
    "office": (3.0, 8.0),
    "hallway": (5.0, 4.0),
    "bedroom": (7.0, 9.0),
    "workshop": (10.0, 1.0),
}
# Each object with the names people use for it: a fact uses one, a question another.
OBJECTS: dict[str, list[str]] = {
    "keys": ["keys", "car keys", "key ring"],
    "passport": ["passport", "travel documents"],
    "glasses": ["glasses", "reading glasses", "specs"],
    "wallet": ["wallet", "purse"],
    "phone charger": ["phone charger", "charging cable", "charger"],
    "umbrella": ["umbrella", "brolly"],
    "headphones": ["headphones", "earphones", "headset"],
    "notebook": ["notebook", "notepad"],
    "scarf": ["scarf", "woolly scarf"],
    "watch": ["watch", "wristwatch"],
    "camera": ["camera", "old camera"],
    "library book": ["library book", "book from the library"],
    "spare battery": ["spare battery", "extra battery"],
    "tape measure": ["tape measure", "measuring tape"],
    "screwdriver set": ["screwdriver set", "screwdrivers"],
    "sunscreen": ["sunscreen", "sun cream"],
    "thermos": ["thermos", "flask"],
    "tennis racket": ["tennis racket", "racket"],
    "medicine box": ["medicine box", "pills", "tablets"],
    "bike pump": ["bike pump", "tyre pump"],
    "laptop": ["laptop", "computer"],
    "gloves": ["gloves", "winter gloves"],
}
SPOTS = [
    "in the blue bowl on the hallway shelf",
    "in the top drawer of the desk",
    "on the windowsill behind the curtain",
    "under the sofa cushions",
    "in the shoebox at the back of the closet",
    "behind the coffee machine",
    "on the hook next to the front door",
    "in the inside pocket of the grey coat",
    "inside the red toolbox",
    "on top of the fridge",
    "in the wicker basket under the stairs",
    "next to the big plant pot",
    "in the second cupboard from the left",
    "on the bedside table",
    "in the glovebox of the car",
    "in the bottom drawer of the dresser",
]
PUT = [
    "I put my {obj} {spot}.",
    "I left my {obj} {spot}.",
    "My {obj} are {spot} now, just so you know.",
    "I've stashed the {obj} {spot} so I don't lose them.",
    "Note for later: {obj} {spot}.",
    "The {obj}? I dropped them {spot} on my way in.",
]
PUT_REPLY = [
    "Got it.",
    "Okay, I'll remember that.",
    "Noted.",
    "Understood, {spot}.",
]
ASK_WHERE = [
    "Where did I leave my {obj}?",
    "Have you seen my {obj} anywhere?",
    "I can't find my {obj}, any idea?",
    "Do you know where my {obj} ended up?",
    "Where are my {obj} at the moment?",
]
MENTION_OBJ = [
    "My {obj} keep going missing, it drives me mad.",
    "I should buy new {obj} one of these days.",
    "Do you think the {obj} need cleaning?",
    "I almost forgot my {obj} again this morning.",
    "Remind me to take the {obj} tomorrow.",
]
COLORS = ["red", "green", "blue", "yellow", "black", "white", "orange", "purple", "grey"]
MATERIALS = ["ceramic", "wooden", "metal", "plastic", "glass", "woollen", "leather"]
PATTERNS = [
    "white polka dots",
    "a cat drawing",
    "gold stripes",
    "a chipped handle",
    "a small crack",
    "a sticker of a rocket",
    "initials engraved",
    "a floral print",
    "a zigzag pattern",
]
SHOWABLE = [
    "mug",
    "vase",
    "bowl",
    "toy car",
    "hat",
    "jacket",
    "lamp",
    "clock",
    "teapot",
    "backpack",
    "picture frame",
    "candle holder",
    "water bottle",
    "kite",
]
GIVERS = ["my sister", "my grandmother", "a colleague", "my best friend", "my uncle", "my son"]
SHOW = [
    "Look at this, {giver} gave it to me.",
    "What do you think of this? It's from {giver}.",
    "Here, take a look. A present from {giver}.",
    "{Giver} brought me this yesterday, isn't it nice?",
]
SHOW_REPLY = ["That's lovely.", "Very nice, thank you for showing me.", "What a nice present."]
ASK_SHOWN = [
    "What did the {obj} from {giver} look like?",
    "Can you describe the {obj} {giver} gave me?",
    "What colour was the {obj} I got from {giver}?",
]
ASK_SHOWN_AT = [
    "What was the last thing I showed you in the {place}?",
    "Remind me what I showed you when we were in the {place}.",
]
RELATIONS = ["sister", "brother", "dentist", "neighbour", "manager", "cousin", "piano teacher"]
NAMES = [
    "Ana",
    "Boris",
    "Carmen",
    "Dmitri",
    "Elena",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemal",
    "Lucia",
    "Mateo",
    "Nora",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tala",
]
RELATION_FACT = [
    "My {rel}'s name is {name}.",
    "{name} is my {rel}, by the way.",
    "Oh, my {rel} {name} is visiting next week.",
    "I had lunch with {name} today, my {rel}.",
]
ASK_RELATION = [
    "What's my {rel} called?",
    "Who is my {rel} again?",
    "I forgot the name of my {rel}, do you remember it?",
]
MENTION_RELATION = [
    "My {rel} called me this morning.",
    "I need to buy a gift for my {rel}.",
    "My {rel} is always late.",
]
FAVOURITES = {
    "food": ["lasagne", "sushi", "lentil soup", "pancakes", "paella", "dumplings", "tacos"],
    "colour": ["teal", "crimson", "mustard yellow", "navy", "olive green", "lilac"],
    "band": ["the Beatles", "Radiohead", "ABBA", "Daft Punk", "Queen", "Bjork"],
    "sport": ["badminton", "rowing", "climbing", "table tennis", "cycling", "fencing"],
}
FAV_FACT = [
    "My favourite {cat} is {x}.",
    "Honestly, nothing beats {x} for me.",
    "These days I'm really into {x}, it's my favourite {cat} now.",
    "If I had to pick one {cat}, it would be {x}.",
]
ASK_FAV = [
    "What's my favourite {cat}?",
    "Which {cat} do I like best?",
    "Do you remember what {cat} I love most these days?",
]
STORED = [
    "spare fuse",
    "first aid kit",
    "fire blanket",
    "guest towels",
    "spare light bulbs",
    "extension cord",
    "printer paper",
    "picnic blanket",
    "dog leash",
    "sewing kit",
    "candles",
    "watering can",
    "jump leads",
    "board games",
    "paint brushes",
    "ladder",
]
KEEP = [
    "Please remember that the {item} is kept here.",
    "We keep the {item} in this room from now on.",
    "This is where the {item} lives.",
    "I moved the {item} over here today.",
]
ASK_KEPT = [
    "Which room is the {item} in?",
    "Where do we keep the {item}?",
    "In what room did I say the {item} is stored?",
]
MENTION_STORED = [
    "We're running low on {item}, I think.",
    "Did anyone use the {item} recently?",
    "I need the {item} this weekend.",
]
TASKS = [
    "call the plumber",
    "water the plants",
    "buy milk",
    "send the invoice",
    "book a haircut",
    "pick up the parcel",
    "pay the electricity bill",
    "check the oven",
    "feed the cat",
]
CHAT_USER = [
    "Good morning, how are you today?",
    "What's the weather going to be like this afternoon?",
    "Can you remind me to {task} later?",
    "I'm feeling a bit tired today.",
    "Could you turn on the lights here?",
    "Tell me a short joke, please.",
    "What time is it now?",
    "I think I'll make some tea.",
    "Did you charge your battery?",
    "Let's tidy up the {place} together.",
    "I'm going out for a walk in a minute.",
    "Can you play some quiet music?",
    "How many steps did you drive today?",
    "The {object} is somewhere around here, I think.",
    "Thanks, that was helpful.",
    "Is it going to rain tomorrow?",
    "I need to {task} before dinner.",
    "Do you know a good recipe with {food}?",
    "I watched a film about {sport} last night.",
]
CHAT_ROBOT = [
    "I'm doing well, thank you for asking.",
    "It should stay dry with a few clouds.",
    "Sure, I'll remind you to {task}.",
    "Maybe a short rest would help.",
    "The lights are on now.",
    "Why did the robot cross the road? It was programmed to.",
    "It's a little after the hour.",
    "Tea sounds lovely.",
    "My battery is at eighty percent.",
    "Happy to help with the {place}.",
    "Enjoy your walk.",
    "Playing something calm now.",
    "Noted.",
    "You're welcome.",
    "I'll keep that in mind.",
    "Okay, I'm listening.",
]


# Robots talk more than people: most replies carry a second, longer sentence, so a
# context of N tokens holds about as many turns as a real one would.
ROBOT_TAIL = [
    "Let me know if there is anything else I can do for you while I am here in the {place}.",
    "By the way, my battery is fine and I can keep going for a few more hours today.",
    "I also noticed the {place} is a bit dark right now, should I switch on another lamp?",
    "If you want, I can set a reminder so that you do not have to think about it later.",
    "It has been a busy day so far, and I have been keeping track of everything you said.",
    "Just say my name whenever you need me, I will be around the {place} for a while.",
    "I can also read you the weather forecast or your calendar for tomorrow if you like.",
    "",
]


@dataclass(frozen=True)
class Probe:
    question: str
    person: str
    evidence_id: str  # the newest statement of the fact before the probe
    kind: ProbeKind
    ask_index: int  # asked when turns[:ask_index] are stored
    distance: int  # ask_index - index of the evidence turn
    updated: bool = False  # an older statement of the same fact exists (superseded)


@dataclass(frozen=True)
class Dialogue:
    turns: list[MemoryTurn]
    probes: list[Probe]


DISTANCES = (1, 2, 5, 10, 25, 50, 100, 200, 350, 500, 750, 1000, 1500)


@dataclass(frozen=True)
class _Fact:
    index: int  # of the user turn stating it
    person: str
    slot: str  # what it is about; a newer fact in the same slot supersedes it
    kind: ProbeKind
    question: str


def generate(
    n_turns: int = 2000, seed: int = 7, fact_every: int = 14, start_time: float = 1_767_225_600.0
) -> Dialogue:
    """`n_turns` turns (user/robot pairs) over simulated days, plus probes.

    Roughly one user turn in `fact_every / 2` is a probed fact; every other fact-like
    turn (other people's, repeated slots, updates) is a distractor or an update.
    """
    rng = random.Random(seed)
    turns: list[MemoryTurn] = []
    facts: list[_Fact] = []
    slots: dict[tuple[str, str], list[int]] = {}  # (person, slot) -> statement indices
    t = start_time + 8 * 3600
    day = 0
    session_no = 0

    def fill(template: str, place: str) -> str:
        return template.format(
            task=rng.choice(TASKS),
            place=place,
            object=rng.choice(rng.choice(list(OBJECTS.values()))),
            food=rng.choice(FAVOURITES["food"]),
            sport=rng.choice(FAVOURITES["sport"]),
        )

    def alias(obj: str, avoid: str | None = None) -> str:
        names = OBJECTS[obj]
        others = [n for n in names if n != avoid]
        return rng.choice(others if others and rng.random() < 0.7 else names)

    while len(turns) < n_turns:
        # A session: one person, one place, a handful of exchanges.
        session_no += 1
        person = rng.choice(PEOPLE)
        place = rng.choice(sorted(PLACES))
        px, py = PLACES[place]
        session = f"day{day:02d}-s{session_no:04d}"
        for _ in range(rng.randint(3, 8)):
            if len(turns) >= n_turns:
                break
            pose = Pose(
                x=px + rng.uniform(-0.5, 0.5),
                y=py + rng.uniform(-0.5, 0.5),
                yaw=rng.uniform(-3.14, 3.14),
            )
            user_text, caption, reply = fill(rng.choice(CHAT_USER), place), None, None
            planted: list[tuple[str, ProbeKind, str]] = []  # (slot, kind, question)
            roll = rng.random()
            plant = len(turns) % fact_every < 2  # roughly one probed fact per `fact_every`
            if roll < 0.2:
                # Show an object to the camera: named only in the caption.
                obj = rng.choice(SHOWABLE)
                caption = (
                    f"a {rng.choice(COLORS)} {rng.choice(MATERIALS)} {obj} with "
                    f"{rng.choice(PATTERNS)}"
                )
                giver = rng.choice(GIVERS)
                user_text = rng.choice(SHOW).format(giver=giver, Giver=giver.capitalize())
                reply = rng.choice(SHOW_REPLY)
                q = rng.choice(ASK_SHOWN).format(obj=obj, giver=giver)
                planted.append((f"show:{obj}:{giver}", "image", q))
                # Every image turn updates "the last thing shown here"; half are probed.
                q = rng.choice(ASK_SHOWN_AT).format(place=place) if rng.random() < 0.5 else ""
                planted.append((f"shown-at:{place}", "place", q))
            elif roll < 0.38:
                obj = rng.choice(sorted(OBJECTS))
                spot = rng.choice(SPOTS)
                said = alias(obj)
                user_text = rng.choice(PUT).format(obj=said, spot=spot)
                reply = rng.choice(PUT_REPLY).format(spot=spot)
                q = rng.choice(ASK_WHERE).format(obj=alias(obj, avoid=said))
                planted.append((f"obj:{obj}", "text", q))
            elif roll < 0.46:
                user_text = rng.choice(MENTION_OBJ).format(obj=alias(rng.choice(sorted(OBJECTS))))
            elif roll < 0.58:
                if rng.random() < 0.5:
                    rel = rng.choice(RELATIONS)
                    name = rng.choice(NAMES)
                    user_text = rng.choice(RELATION_FACT).format(rel=rel, name=name)
                    reply = "Nice, I'll remember that."
                    q = rng.choice(ASK_RELATION).format(rel=rel)
                    planted.append((f"rel:{rel}", "person", q))
                else:
                    cat = rng.choice(sorted(FAVOURITES))
                    x = rng.choice(FAVOURITES[cat])
                    user_text = rng.choice(FAV_FACT).format(cat=cat, x=x)
                    reply = f"Good to know, {x}."
                    q = rng.choice(ASK_FAV).format(cat=cat)
                    planted.append((f"fav:{cat}", "person", q))
            elif roll < 0.63:
                user_text = rng.choice(MENTION_RELATION).format(rel=rng.choice(RELATIONS))
            elif roll < 0.73:
                item = rng.choice(STORED)
                user_text = rng.choice(KEEP).format(item=item)
                reply = "Okay, I'll remember where it is kept."
                q = rng.choice(ASK_KEPT).format(item=item)
                planted.append((f"stored:{item}", "place", q))
            elif roll < 0.78:
                user_text = rng.choice(MENTION_STORED).format(item=rng.choice(STORED))
            tid = f"t{len(turns):06d}"
            turns.append(
                MemoryTurn(
                    id=tid,
                    session=session,
                    speaker="user",
                    person=person,
                    time=t,
                    place=place,
                    pose=pose,
                    text=user_text,
                    image_caption=caption,
                    image_path=f"frames/{tid}.jpg" if caption else None,
                )
            )
            index = len(turns) - 1
            for slot, kind, question in planted:
                slots.setdefault((person, slot), []).append(index)
                if plant and question:
                    facts.append(_Fact(index, person, slot, kind, question))
            t += rng.uniform(5, 25)
            if len(turns) >= n_turns:
                break
            turns.append(
                MemoryTurn(
                    id=f"t{len(turns):06d}",
                    session=session,
                    speaker="robot",
                    person=person,
                    time=t,
                    place=place,
                    pose=pose,
                    text=(
                        (reply or fill(rng.choice(CHAT_ROBOT), place))
                        + " "
                        + rng.choice(ROBOT_TAIL).format(place=place)
                    ).strip(),
                )
            )
            t += rng.uniform(10, 40)
        # Sessions are spread over the day; after ~10 sessions the next day starts.
        t += rng.uniform(600, 5400)
        if session_no % 10 == 0:
            day += 1
            t = start_time + day * 86400 + 8 * 3600

    probes: dict[tuple[str, str, int], Probe] = {}
    for f in facts:
        history = slots[(f.person, f.slot)]
        for d in DISTANCES:
            ask = f.index + d
            if ask > len(turns):
                continue
            # The expected evidence is the newest statement of this fact before the probe.
            newest = max(i for i in history if i < ask)
            key = (f.person, f.slot, ask)
            if key in probes:
                continue
            probes[key] = Probe(
                question=f.question,
                person=f.person,
                evidence_id=turns[newest].id,
                kind=f.kind,
                ask_index=ask,
                distance=ask - newest,
                updated=history.index(newest) > 0,
            )
    ordered = sorted(probes.values(), key=lambda pr: (pr.ask_index, pr.evidence_id, pr.question))
    return Dialogue(turns=turns, probes=ordered)


BUCKETS = ((1, 1), (2, 10), (11, 50), (51, 200), (201, 500), (501, 10**9))


def bucket(distance: int) -> str:
    for lo, hi in BUCKETS:
        if lo <= distance <= hi:
            return str(lo) if lo == hi else (f"{lo}-{hi}" if hi < 10**9 else f"{lo}+")
    raise ValueError(distance)
