"""`omni-agent bench speaker`: who-is-speaking accuracy on the sim's voices, and what it
adds to a turn.

Accuracy: Alice, Bob and Carol are enrolled from three lines each; every other line of
theirs must be named right, and the lines of two people never enrolled (Dora, Eve) must
come out unknown. The equal error rate is over all (print, utterance) scores.

Enrolment: a false-accept / false-reject table after a short enrolment (one "I'm Alice.")
and a long one (the claim and four more lines): how often strangers near Alice's voice
(pitch shifts 0.1 from hers) and far from it (0.4 and more) are taken for Alice, all heard
through `SpeakerId.hear` as on a robot (so a print that drifts towards a stranger shows in
the figures), and how often Bob, enrolled the same way, saying "I'm Alice" is taken for
Alice.

Latency: utterances go through the real listener (VAD, whisper ASR) with identification
beside ASR. Side by side per utterance: ASR (the baseline stage it runs beside), the
embedding itself, and what identification adds after ASR is done (what the turn waits).
Each voice introduces itself, then they take turns: a turn is named right when it is
unknown while its voice enrols (ENROL_UTTERANCES) and its person after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ENROLLED = ("Alice", "Bob", "Carol")
STRANGERS = ("Dora", "Eve")
LINES = [
    "Hello robot how are you today?",
    "Please bring me the red cup from the kitchen.",
    "I left my keys somewhere in the living room.",
    "What did I tell you yesterday about the plants?",
    "Can you go to the charging dock now?",
    "My favourite colour is green so remember that.",
    "Turn around and look at the sofa please.",
    "Is the front door locked tonight?",
]


ENROL_LINES = 3
"""Lines each person is enrolled from for the accuracy figures (a print names its person
from ENROL_UTTERANCES utterances)."""
TRIAL_LINES = [
    "Could you water the plants in the hallway?",
    "Where did I leave my reading glasses?",
    "Tell me what is on the shopping list.",
    "Remind me to call my sister tomorrow morning.",
    "Is it going to rain this afternoon?",
    "Please tidy the toys in the playroom.",
    "What time is the dentist appointment?",
    "Bring the blue blanket to the sofa.",
]
ALICE_PITCH = 1.2
STRANGER_PITCHES = {"near": (1.1, 1.3), "far": (0.8, 1.6)}
CLAIMS = ["I'm Alice.", "My name is Alice.", "This is Alice speaking."]


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median": round(statistics.median(ordered), 1), "p90": round(p90, 1)}


def accuracy(workdir: Path, lines: list[str]) -> dict[str, Any]:
    from memory.voiceprints import VoiceprintStore
    from omni_agent.speech.speaker import (
        DEFAULT_THRESHOLD,
        SpeakerId,
        VoiceEncoder,
        equal_error_rate,
    )
    from omni_agent.speech.voices import PersonVoice
    from sim.voice import user_voice

    encoder = VoiceEncoder()
    speaker = SpeakerId(VoiceprintStore(workdir / "bench.voiceprints.db"), encoder)
    audio = {
        p: [PersonVoice(user_voice(p), deterministic=True).say(t) for t in lines]
        for p in (*ENROLLED, *STRANGERS)
    }
    for person in ENROLLED:
        for pcm in audio[person][:ENROL_LINES]:
            speaker.enroll(person, pcm)
    prints = speaker.store.all()
    genuine: list[float] = []
    impostor: list[float] = []
    right = wrong = 0
    confusions: dict[str, int] = {}
    embed_ms = []
    for person, clips in audio.items():
        for pcm in clips[ENROL_LINES:] if person in ENROLLED else clips:
            heard = speaker.identify(pcm)
            embed_ms.append(heard.ms)
            assert heard.embedding is not None
            for name, print_ in prints.items():
                score = float(print_.embedding @ heard.embedding)
                (genuine if name == person else impostor).append(score)
            expected = person if person in ENROLLED else None
            right, wrong = (right + 1, wrong) if heard.person == expected else (right, wrong + 1)
            key = f"{person} -> {heard.person or 'unknown'}"
            confusions[key] = confusions.get(key, 0) + 1
    eer, at = equal_error_rate(genuine, impostor)
    return {
        "enrolled": list(ENROLLED),
        "strangers": list(STRANGERS),
        "utterances": right + wrong,
        "identification_accuracy": round(right / (right + wrong), 3),
        "threshold": DEFAULT_THRESHOLD,
        "eer": round(eer, 4),
        "eer_threshold": round(at, 3),
        "genuine_min": round(min(genuine), 3),
        "impostor_max": round(max(impostor), 3),
        "embed_ms": _stats(embed_ms),
        "named_as": dict(sorted(confusions.items())),
    }


def enrolment(workdir: Path, lines: list[str]) -> dict[str, Any]:
    """False accepts and rejects of Alice's print after a short and a long enrolment."""
    from memory.voiceprints import VoiceprintStore
    from omni_agent.speech.speaker import SpeakerId, VoiceEncoder
    from omni_agent.speech.voices import PersonVoice, UserVoice
    from sim.voice import user_voice

    encoder = VoiceEncoder()
    alice = PersonVoice(UserVoice(pitch=ALICE_PITCH), deterministic=True)
    bob = PersonVoice(user_voice("Bob"), deterministic=True)
    strangers = {
        f"{kind} {pitch}": PersonVoice(UserVoice(pitch=pitch), deterministic=True)
        for kind, pitches in STRANGER_PITCHES.items()
        for pitch in pitches
    }
    said: dict[tuple[str, str], bytes] = {}

    def say(who: str, voice: PersonVoice, line: str) -> bytes:
        if (who, line) not in said:
            said[who, line] = voice.say(line)
        return said[who, line]

    table: dict[str, Any] = {}
    for kind, extra in (("short", 0), ("long", 4)):
        speaker = SpeakerId(VoiceprintStore(workdir / f"enrol-{kind}.voiceprints.db"), encoder)
        for line in ["I'm Bob.", *lines[:extra]]:  # Bob too enrols short, or at length
            speaker.hear(say("Bob", bob, line), line)
        for line in ["I'm Alice.", *lines[:extra]]:
            speaker.hear(say("Alice", alice, line), line)
        rejects = accepts_near = accepts_far = 0
        for line in TRIAL_LINES:  # strangers speak between Alice's lines, as in a house
            for name, voice in strangers.items():
                heard = speaker.hear(say(name, voice, line), line)
                if heard.person == "Alice":
                    if name.startswith("near"):
                        accepts_near += 1
                    else:
                        accepts_far += 1
            heard = speaker.hear(say("Alice", alice, line), line)
            rejects += heard.person != "Alice"
        claimed = sum(
            speaker.hear(say("Bob", bob, line), line).person == "Alice" for line in CLAIMS
        )
        n = len(TRIAL_LINES)
        per_kind = n * len(STRANGER_PITCHES["near"])
        table[kind] = {
            "enrolment_utterances": 1 + extra,
            "false_reject": f"{rejects}/{n}",
            "false_accept_near": f"{accepts_near}/{per_kind}",
            "false_accept_far": f"{accepts_far}/{n * len(STRANGER_PITCHES['far'])}",
            "bob_claiming_alice_accepted": f"{claimed}/{len(CLAIMS)}",
        }
        speaker.store.close()
    return {
        "alice_pitch": ALICE_PITCH,
        "stranger_pitches": STRANGER_PITCHES,
        "table": table,
    }


async def listener_latency(workdir: Path, lines: list[str]) -> dict[str, Any]:
    from memory.voiceprints import ENROL_UTTERANCES, VoiceprintStore
    from omni_agent.speech.asr import WhisperAsr
    from omni_agent.speech.listener import Listener, ListenerConfig
    from omni_agent.speech.speaker import SpeakerId
    from omni_agent.speech.vad import VadConfig
    from omni_agent.speech.voices import PersonVoice, feed_mic, silence
    from omni_agent.transport import USER_TEXT, Bus
    from sim.voice import user_voice

    bus = Bus()
    out = bus.subscribe(USER_TEXT)
    speaker = SpeakerId(VoiceprintStore(workdir / "listen.voiceprints.db"))
    voices = {p: PersonVoice(user_voice(p), deterministic=True) for p in ENROLLED}
    script = [(p, f"Hello robot I'm {p}.") for p in ENROLLED] + [
        (ENROLLED[i % len(ENROLLED)], line) for i, line in enumerate(lines)
    ]
    listener = Listener(
        bus, VadConfig(), WhisperAsr(), ListenerConfig(person=None), speaker=speaker
    )
    named = []
    spoken = dict.fromkeys(ENROLLED, 0)
    async with listener:
        t = 1000.0
        for who, line in script:
            t = await feed_mic(bus, voices[who].say(line), speed=None, t0=t)
            t = await feed_mic(bus, silence(0.8), speed=None, t0=t)
            utt = await asyncio.wait_for(out.get(), 120)
            # right: unknown while the voice enrols, its person once enrolled
            expected = who if spoken[who] >= ENROL_UTTERANCES else None
            named.append(utt.person == expected)
            spoken[who] += 1
    timings = [x for x in listener.latency if "speaker_done" in x]
    asr = [1000 * (x["asr_done"] - x["endpoint"]) for x in timings]
    added = [1000 * (x["speaker_done"] - x["asr_done"]) for x in timings]
    embed = [i.ms for i in listener.identified]
    return {
        "turns": len(timings),
        "named_right": round(sum(named) / len(named), 3),
        "asr_ms_baseline": _stats(asr),
        "embed_ms": _stats(embed),
        "added_after_asr_ms": _stats(added),
        "ratio_embed_vs_asr": round(statistics.median(embed) / statistics.median(asr), 2),
    }


def run(lines: list[str], listener: bool = True) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        report: dict[str, Any] = {
            "model": "GE2E d-vector (resemblyzer 0.1.4 weights) on onnxruntime"
        }
        report["accuracy"] = accuracy(Path(tmp), lines)
        report["enrolment"] = enrolment(Path(tmp), LINES)
        if listener:
            report["listener"] = asyncio.run(listener_latency(Path(tmp), lines))
        report["wall_s"] = round(time.perf_counter() - started, 1)
    return report


def cmd_bench_speaker(args: argparse.Namespace) -> int:
    from omni_agent.errors import UserError
    from omni_agent.speech.models import ModelMissingError

    try:
        report = run(LINES[: args.lines], listener=not args.no_listener)
    except (ModelMissingError, ImportError) as exc:
        raise UserError(f"bench speaker needs the speech models and weights: {exc}") from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    a = report["accuracy"]
    print(
        f"speaker id on the sim voices: {a['identification_accuracy']:.0%} of "
        f"{a['utterances']} utterances named right ({len(a['enrolled'])} enrolled, "
        f"{len(a['strangers'])} strangers must be unknown), EER {a['eer']:.1%} "
        f"(genuine >= {a['genuine_min']}, impostors <= {a['impostor_max']}, "
        f"threshold {a['threshold']})"
    )
    e = report["enrolment"]
    print(
        f"Alice (pitch {e['alice_pitch']}) enrolled by conversation; strangers near "
        f"{e['stranger_pitches']['near']} and far {e['stranger_pitches']['far']}:"
    )
    print(
        f"  {'enrolment':<22} {'Alice rejected':>14} {'near accepted':>14} "
        f"{'far accepted':>13} {'Bob as Alice':>13}"
    )
    for kind, row in e["table"].items():
        label = f"{kind} ({row['enrolment_utterances']} utterances)"
        print(
            f"  {label:<22} {row['false_reject']:>14} {row['false_accept_near']:>14} "
            f"{row['false_accept_far']:>13} {row['bob_claiming_alice_accepted']:>13}"
        )
    if "listener" in report:
        li = report["listener"]
        print(
            f"per utterance, medians: ASR {li['asr_ms_baseline']['median']:.0f} ms (baseline), "
            f"embedding {li['embed_ms']['median']:.0f} ms beside it "
            f"(x{li['ratio_embed_vs_asr']}), added after ASR "
            f"{li['added_after_asr_ms']['median']:.1f} ms (p90 "
            f"{li['added_after_asr_ms']['p90']:.1f}); {li['named_right']:.0%} of "
            f"{li['turns']} listener turns named right (unknown while enrolling)"
        )
    print(f"written to {args.out}")
    return 0


def register_bench(benches: Any) -> None:
    bench = benches.add_parser("speaker", help="who is speaking: accuracy (EER) and latency")
    bench.add_argument("--lines", type=int, default=len(LINES), help="lines per voice")
    bench.add_argument("--out", type=Path, default=Path("runs/bench-speaker.json"))
    bench.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.add_argument(
        "--no-listener", action="store_true", help="skip the latency run through whisper ASR"
    )
    bench.set_defaults(func=cmd_bench_speaker)
