"""`omni-agent bench turns`: does the robot wait while a person pauses, and answer soon
once they are done?

Turns where people pause: hesitations, lists and numbers, "and then ...", a word
sought, self-corrections, and, with no pause, rising questions and short complete
answers. Each part is synthesized on its own in one of the sim's voices (piper, pitch and
rate shifted as sim/voice.py does), and real silences of 0.3-1.2 s go between the parts,
so the true end of every turn is known; room noise goes over the whole clip.

One pass of the real endpointer per clip records, at every pause the VAD finds, how long
the silence lasted, Smart Turn's probability at every 100 ms of it, and the speculative
transcript (whisper-base) with the time it took. Every policy is then replayed on the same
pauses, side by side: silence 300 ms (the old default), 600, 900 ms, the model, and the
model + the partial transcript. Metrics as in LiveKit's eot-bench: the false cut-off rate
(the robot ends the turn in a pause inside it) at 300 and 600 ms median-delay budgets,
the endpoint delay (median, p90, after the true end) at a 5% cut-off budget, and the
curve of cut-off rate against median delay over each policy's parameter sweep.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TURNS: list[tuple[str, list[str]]] = [
    ("hesitation", ["I want to go to the, um,", "kitchen, please."]),
    ("hesitation", ["So, uh,", "can you bring me my glasses?"]),
    ("hesitation", ["Could you, um,", "turn on the lights in here?"]),
    ("hesitation", ["I think we should, uh,", "wait for my daughter."]),
    ("list", ["My phone number is five five five,", "two one four nine."]),
    ("list", ["I need milk, eggs,", "and some bread."]),
    ("list", ["The code for the door is four seven,", "nine one."]),
    ("list", ["Put the cups, the plates,", "and the forks on the table."]),
    ("and then", ["So yesterday I went to the doctor and", "she said my knee is fine."]),
    ("and then", ["First go to the hallway and then", "turn left at the door."]),
    ("and then", ["We had lunch and then", "we watched a movie together."]),
    ("word sought", ["Can you hand me the, the,", "the screwdriver?"]),
    ("word sought", ["Put it on the", "on the shelf by the window."]),
    ("word sought", ["My sister's name is", "Margaret."]),
    ("self-correction", ["Go to the bedroom, no, wait,", "the bathroom."]),
    ("self-correction", ["Bring me the red cup, I mean", "the blue one."]),
    ("self-correction", ["Meet me at six, sorry,", "at seven tonight."]),
    ("question", ["Is the front door locked?"]),
    ("question", ["Did you see my keys anywhere?"]),
    ("question", ["Are you coming with me?"]),
    ("question", ["Can you hear me?"]),
    ("short answer", ["Yes."]),
    ("short answer", ["The kitchen."]),
    ("short answer", ["No, thanks."]),
    ("short answer", ["Okay."]),
    ("short answer", ["Tomorrow morning."]),
]
VOICES = ("Alice", "Bob", "Carol", "Dora", "Eve")
RATES = (1.0, 0.85, 1.2)
"""Speaking rates over each voice's own: slow, normal and quick talkers."""
NOISE_DBFS: tuple[float | None, ...] = (None, -55.0, -45.0)
"""A quiet room, a fan, a busy room (speech is at -20 dBFS)."""
LEAD_S, TAIL_S = 0.5, 2.2
CHECK_MS = 200
"""Smart Turn is asked at every 200 ms of each pause, as the listener does."""
PROBE_MAX_MS = 1600
"""The longest wait any policy in the sweep has: no checks beyond it."""
PAUSE_MS = 100
"""The listener's speculative ASR pass starts at this much silence (Endpointer)."""
FIXED_SILENCE_MS = (300, 600, 900)
THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
CAPS_MS = (800, 1000, 1200, 1600)
ALONE_THRESHOLDS: tuple[float | None, ...] = (None, 0.8, 0.9, 0.95, 0.98, 0.99)
CHECKS_MS = (200,)
BUDGETS_MS = (300, 400, 500, 600)
CUTOFF_BUDGET = 0.05


@dataclass
class Clip:
    kind: str
    text: str
    voice: str
    rate: float
    noise_dbfs: float | None
    pcm: bytes
    pauses: list[tuple[float, float]]
    """(start, end) seconds of each silence put inside the turn."""
    end: float
    """Seconds from the clip's start to the true end of the turn."""


@dataclass
class Pause:
    """One silence the VAD found, as the probe pass saw it."""

    start: float
    """Clip seconds where the voice stopped (the endpointer's last voiced frame)."""
    length_ms: int = 0
    probs: dict[int, float] = field(default_factory=dict)
    """Smart Turn's P(complete) at each checked silence (ms)."""
    text: str | None = None
    text_ready_ms: float = 1e9
    """Silence (ms) by which the speculative transcript is back."""


def _cache_dir() -> Path:
    from omni_agent.speech.models import cache_root

    path = cache_root() / "bench-turns"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _voice(name: str, rate: float) -> Any:
    from omni_agent.speech.voices import PersonVoice, UserVoice
    from sim.voice import user_voice

    base = user_voice(name)
    return PersonVoice(UserVoice(pitch=base.pitch, rate=base.rate * rate), deterministic=True)


def synthesize(text: str, name: str, rate: float, voices: dict[tuple[str, float], Any]) -> bytes:
    """A part in a voice, cached on disk by text + voice (piper is deterministic here)."""
    from sim.voice import user_voice

    base = user_voice(name)
    key = hashlib.sha256(f"{text}|{base.pitch}|{base.rate * rate}".encode()).hexdigest()[:24]
    path = _cache_dir() / f"{key}.pcm"
    if path.is_file():
        return path.read_bytes()
    if (name, rate) not in voices:
        voices[(name, rate)] = _voice(name, rate)
    pcm: bytes = voices[(name, rate)].say(text)
    path.write_bytes(pcm)
    return pcm


def make_clips(renditions: int, progress: Any, draw: int = 0) -> list[Clip]:
    """Each turn `renditions` times, in a different voice, rate, noise and pause lengths;
    another `draw` gives each turn other voices, rates, noise and pauses."""
    from omni_agent.messages import AUDIO_SAMPLE_RATE
    from omni_agent.speech.pcm import to_int16
    from omni_agent.speech.voices import noise, silence

    rng = np.random.default_rng(7 + draw)
    voices: dict[tuple[str, float], Any] = {}
    clips = []
    for i, (kind, parts) in enumerate(TURNS):
        for r in range(renditions):
            k = i * renditions + r + draw
            name, rate = VOICES[k % len(VOICES)], RATES[(k // len(VOICES)) % len(RATES)]
            level = NOISE_DBFS[k % len(NOISE_DBFS)]
            pcm = silence(LEAD_S)
            pauses = []
            for j, part in enumerate(parts):
                if j:
                    gap = float(rng.uniform(0.3, 1.2))
                    start = len(pcm) / 2 / AUDIO_SAMPLE_RATE
                    pauses.append((start, start + gap))
                    pcm += silence(gap)
                pcm += synthesize(part, name, rate, voices)
            end = len(pcm) / 2 / AUDIO_SAMPLE_RATE
            pcm += silence(TAIL_S)
            if level is not None:
                x = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
                pcm = to_int16(x + noise(len(x), level, seed=k)).tobytes()
            text = " ".join(parts)
            clips.append(Clip(kind, text, name, rate, level, pcm, pauses, end))
            progress(1)
    return clips


def probe(clip: Clip, model: Any, asr: Any) -> list[Pause]:
    """Feed the clip through the real endpointer with a turn that never ends, and note
    every pause: its length, the model at each check, the speculative transcript."""
    from omni_agent.messages import AUDIO_SAMPLE_RATE
    from omni_agent.speech.turn import EndOfTurn, TurnConfig
    from omni_agent.speech.vad import Endpointer, VadConfig

    pauses: dict[int, Pause] = {}
    speech_onset = LEAD_S - 0.05

    class Probe(EndOfTurn):
        def is_done(self, pcm: bytes, voiced_bytes: int, silence_ms: int) -> bool:
            pause = pauses.get(voiced_bytes)
            if pause is None:
                pause = pauses[voiced_bytes] = Pause(endpointer.last_voiced_end)
            pause.length_ms = silence_ms
            if silence_ms == PAUSE_MS and asr is not None and pause.start > speech_onset:
                heard = asr.transcribe(pcm[:voiced_bytes])
                pause.text = heard.text
                pause.text_ready_ms = PAUSE_MS + heard.compute_seconds * 1000
            wanted = pause.start > speech_onset and silence_ms < PROBE_MAX_MS
            if wanted and silence_ms % CHECK_MS == 0:
                pause.probs[silence_ms] = model.probability(pcm)
            return False

    never = TurnConfig(policy="model", check_ms=20, max_wait_ms=10**7)
    endpointer = Endpointer(VadConfig(), turn=Probe(never, model))
    step = AUDIO_SAMPLE_RATE * 20 // 1000 * 2
    for offset in range(0, len(clip.pcm), step):
        piece = clip.pcm[offset : offset + step]
        endpointer.feed(piece, (offset + len(piece)) / 2 / AUDIO_SAMPLE_RATE)
    # a pause before the person said a word is room noise the VAD took for a start: the
    # listener makes a false start of it (too short for speech), not a turn
    return sorted((p for p in pauses.values() if p.start > speech_onset), key=lambda p: p.start)


@dataclass(frozen=True)
class Policy:
    kind: str
    """silence | model | model+text"""
    silence_ms: int = 300
    threshold: float = 0.5
    check_ms: int = 200
    cap_ms: int = 1600
    alone: float | None = None
    """model+text: the model's bar before the pause's words are back (None: wait)."""
    lists: bool = True
    """model+text: an open list ("milk, eggs," "five five five") also keeps listening."""
    early: bool = False
    """model+text: the model is asked before the words are back too, and a check that
    would have ended the turn with them ends it the moment they arrive
    (`TurnConfig.judge_early`)."""

    @property
    def label(self) -> str:
        if self.kind == "silence":
            return f"silence {self.silence_ms} ms"
        label = f"{self.kind} p>={self.threshold}"
        if self.kind == "model+text":
            label += f" alone>={self.alone}" if self.alone is not None else " words first"
            label += "" if self.lists else " (no list rule)"
            label += ", ends on the words" if self.early else ""
        return f"{label}, cap {self.cap_ms} ms"

    def fires(self, pause: Pause) -> int | None:
        """Silence (ms) at which this policy ends the turn in this pause, or None."""
        if self.kind == "silence":
            return self.silence_ms if pause.length_ms >= self.silence_ms else None
        judged: float | None = None  # the latest check's P(done) before the words
        for t in range(self.check_ms, self.cap_ms, self.check_ms):
            if t > pause.length_ms:
                return None
            if self.early and pause.text is not None and judged is not None:
                ready = pause.text_ready_ms
                if t - self.check_ms < ready <= t and ready <= pause.length_ms:
                    finished = not _unfinished(pause.text, self.lists)
                    if finished and judged >= self.threshold:
                        return round(ready)
            bar: float | None = self.threshold
            if self.kind == "model+text":
                # the pause's words, once back, must sound finished; before, the model
                # alone decides at its own bar (or the turn waits for them)
                if pause.text_ready_ms > t or pause.text is None:
                    bar = self.alone
                elif _unfinished(pause.text, self.lists):
                    bar = None
            if bar is not None and pause.probs.get(t, 0.0) >= bar:
                return t
            judged = pause.probs.get(t)
        return self.cap_ms if pause.length_ms >= self.cap_ms else None


def _unfinished(text: str, lists: bool) -> bool:
    from omni_agent.speech.turn import ends_mid_sentence, sounds_unfinished

    return sounds_unfinished(text) if lists else ends_mid_sentence(text)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def score(policy: Policy, probed: list[tuple[Clip, list[Pause]]]) -> dict[str, Any]:
    """Cut-off rate over all turns; endpoint delay over the turns not cut."""
    cut, delays = 0, []
    cut_kinds: dict[str, int] = {}
    for clip, pauses in probed:
        for pause in pauses:
            fire = policy.fires(pause)
            if fire is None:
                continue
            ended_at = pause.start + fire / 1000
            if pause.start < clip.end - 0.1:  # a pause inside the turn: cut in two
                cut += 1
                cut_kinds[clip.kind] = cut_kinds.get(clip.kind, 0) + 1
            else:
                delays.append(1000 * (ended_at - clip.end))
            break
    return {
        "policy": policy.label,
        "cutoff_rate": round(cut / len(probed), 4),
        "delay_ms": {
            "median": round(statistics.median(delays), 0) if delays else None,
            "p90": round(_pct(delays, 0.9), 0) if delays else None,
        },
        "cut_by_kind": dict(sorted(cut_kinds.items())),
    }


def sweep(kind: str) -> list[Policy]:
    if kind == "silence":
        return [Policy("silence", silence_ms=ms) for ms in range(100, 2001, 100)]
    alones = ALONE_THRESHOLDS if kind == "model+text" else (None,)
    return [
        Policy(kind, threshold=th, check_ms=check, cap_ms=cap, alone=alone)
        for th in THRESHOLDS
        for check in CHECKS_MS
        for cap in CAPS_MS
        for alone in alones
    ]


def frontier(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points no other point beats on both cut-off rate and median delay: the curve."""
    ok = [p for p in points if p["delay_ms"]["median"] is not None]
    ok.sort(key=lambda p: (p["delay_ms"]["median"], p["cutoff_rate"]))
    curve: list[dict[str, Any]] = []
    for p in ok:
        if not curve or p["cutoff_rate"] < curve[-1]["cutoff_rate"]:
            curve.append(p)
    return curve


def budgets(curve: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for budget in BUDGETS_MS:
        # one 20 ms VAD frame of slack: "silence 600 ms" ends 600-620 ms after the voice
        within = [p for p in curve if p["delay_ms"]["median"] <= budget + 20]
        out[f"cutoff_at_{budget}ms"] = min((p["cutoff_rate"] for p in within), default=None)
    safe = [p for p in curve if p["cutoff_rate"] <= CUTOFF_BUDGET]
    best = min(safe, key=lambda p: p["delay_ms"]["median"], default=None)
    out["delay_at_5pct_cutoff_ms"] = best["delay_ms"] if best else None
    out["operating_point_5pct"] = best["policy"] if best else None
    # the default's rule: the fewest cut-offs within a median-delay budget
    for budget in BUDGETS_MS[1:]:
        within = [p for p in curve if p["delay_ms"]["median"] <= budget + 20]
        pick = min(within, key=lambda p: (p["cutoff_rate"], p["delay_ms"]["median"]), default=None)
        out[f"operating_point_{budget}ms"] = pick
    return out


def plot(families: dict[str, list[dict[str, Any]]], fixed: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in families.items():
        xs = [p["delay_ms"]["median"] for p in curve]
        ys = [100 * p["cutoff_rate"] for p in curve]
        ax.step(xs, ys, where="post", marker=".", label=name)
    for p in fixed:
        ax.plot(p["delay_ms"]["median"], 100 * p["cutoff_rate"], "kx")
        ax.annotate(p["policy"], (p["delay_ms"]["median"], 100 * p["cutoff_rate"]), fontsize=7)
    ax.axhline(100 * CUTOFF_BUDGET, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("median endpoint delay after the true end of the turn (ms)")
    ax.set_ylabel("false cut-off rate (% of turns)")
    ax.set_title("End of turn: cut-off rate vs delay (omni-agent bench turns)")
    ax.set_xlim(left=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def run_bench(renditions: int, use_asr: bool, show: bool, draw: int = 0) -> dict[str, Any]:
    from tqdm import tqdm

    from omni_agent.speech.turn import SmartTurn

    started = time.perf_counter()
    n = len(TURNS) * renditions
    bar = tqdm(total=2 * n, desc="turns", unit="clip", disable=not show, file=sys.stderr)
    bar.set_postfix_str("synthesizing")
    clips = make_clips(renditions, bar.update, draw)
    model = SmartTurn()
    asr = None
    if use_asr:
        from omni_agent.speech.asr import WhisperAsr

        asr = WhisperAsr()
    bar.set_postfix_str("endpointing")
    probed = []
    for clip in clips:
        probed.append((clip, probe(clip, model, asr)))
        bar.update(1)
    bar.close()
    kinds = ["silence", "model"] + (["model+text"] if use_asr else [])
    families = {k: [score(p, probed) for p in sweep(k)] for k in kinds}
    curves = {k: frontier(points) for k, points in families.items()}
    fixed = [score(Policy("silence", silence_ms=ms), probed) for ms in FIXED_SILENCE_MS]
    default = _default_policies(use_asr)
    fixed += [score(p, probed) for p in default]
    calls = model.call_ms
    asr_ms = [p.text_ready_ms - PAUSE_MS for _, ps in probed for p in ps if p.text is not None]
    return {
        "turns": len(clips),
        "draw": draw,
        "pauses_inside_turns": sum(len(c.pauses) for c in clips),
        "kinds": sorted({c.kind for c in clips}),
        "voices": sorted({c.voice for c in clips}),
        "rates": sorted({c.rate for c in clips}),
        "noise_dbfs": sorted({str(c.noise_dbfs) for c in clips}),
        "side_by_side": fixed,
        "families": {k: {**budgets(curves[k]), "curve": curves[k]} for k in kinds},
        "smart_turn_ms": {
            "median": round(statistics.median(calls), 1),
            "p95": round(_pct(calls, 0.95), 1),
            "calls": len(calls),
        },
        "speculative_asr_ms": (
            {"median": round(statistics.median(asr_ms)), "p90": round(_pct(asr_ms, 0.9))}
            if asr_ms
            else None
        ),
        "wall_s": round(time.perf_counter() - started, 1),
        "clips": [_clip_row(clip, pauses) for clip, pauses in probed],
        "_curves": curves,
    }


def _clip_row(clip: Clip, pauses: list[Pause]) -> dict[str, Any]:
    """What the probe saw in one clip: enough to replay any policy on it later."""
    return {
        "kind": clip.kind,
        "text": clip.text,
        "voice": clip.voice,
        "rate": clip.rate,
        "noise_dbfs": clip.noise_dbfs,
        "end_s": round(clip.end, 3),
        "pauses_put": [[round(a, 3), round(b, 3)] for a, b in clip.pauses],
        "pauses_heard": [
            {
                "start_s": round(p.start, 3),
                "length_ms": p.length_ms,
                "p_done": {str(t): round(v, 3) for t, v in p.probs.items()},
                "text": p.text,
                "text_ready_ms": round(p.text_ready_ms),
            }
            for p in pauses
            if p.length_ms >= CHECK_MS
        ],
    }


def _default_policies(use_asr: bool) -> list[Policy]:
    """The shipped default (omni_agent/speech/turn.py) and the model alone at its settings."""
    from omni_agent.speech.turn import TurnConfig

    cfg = TurnConfig()
    rows = [Policy("model", threshold=cfg.threshold, check_ms=cfg.check_ms, cap_ms=cfg.max_wait_ms)]
    if use_asr:
        rows.append(
            Policy(
                "model+text", threshold=cfg.threshold, check_ms=cfg.check_ms,
                cap_ms=cfg.max_wait_ms, alone=cfg.alone_threshold, early=cfg.judge_early,
            )
        )  # fmt: skip
        # the default without ending on the words (the turn waits for the next check)
        rows.append(
            Policy(
                "model+text", threshold=cfg.threshold, check_ms=cfg.check_ms,
                cap_ms=cfg.max_wait_ms, alone=cfg.alone_threshold,
            )
        )  # fmt: skip
        # the fast setting (docs/speech.md): the model alone may end the turn before the words
        rows.append(Policy("model+text", threshold=0.8, cap_ms=1200, alone=0.98))
    return rows


def cmd_bench_turns(args: argparse.Namespace) -> int:
    from omni_agent.errors import UserError
    from omni_agent.speech.models import ModelMissingError

    if args.renditions < 1:
        raise UserError("--renditions must be at least 1")
    echo = None
    if args.echo is not None:
        from omni_agent.speech.voices import EchoPath

        echo = EchoPath.parse(args.echo)
    if (args.barge_in_only or echo is not None) and not args.barge_in:
        raise UserError("--echo and --barge-in-only go with --barge-in")
    show = not args.json and sys.stderr.isatty()
    try:
        if args.barge_in_only:
            report: dict[str, Any] = {}
        else:
            report = run_bench(args.renditions, not args.no_asr, show, args.draw)
        if args.barge_in:
            report.update(run_barge_ins(show, echo, args.echo_minutes))
    except (ModelMissingError, ImportError) as exc:
        raise UserError(f"bench turns needs the speech models and the bench extra: {exc}") from None
    if args.barge_in_only:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            from bench.barge_in import print_report

            print_report(report)
            print(f"written to {args.out}")
        return 0
    curves = report.pop("_curves")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    png = args.out.with_suffix(".png")
    plot(curves, report["side_by_side"], png)
    report["plot"] = str(png)
    args.out.write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{report['turns']} turns ({report['pauses_inside_turns']} pauses inside them), "
        f"{len(report['voices'])} voices; Smart Turn {report['smart_turn_ms']['median']} ms "
        f"per call (p95 {report['smart_turn_ms']['p95']})"
    )
    print(f"{'policy':58} {'cut-off':>8} {'delay median':>13} {'p90':>6}")
    for row in report["side_by_side"]:
        d = row["delay_ms"]
        print(f"{row['policy']:58} {row['cutoff_rate']:>8.1%} {d['median']:>10} ms {d['p90']:>6}")
    for kind, fam in report["families"].items():
        at5 = fam["delay_at_5pct_cutoff_ms"]
        print(
            f"{kind:11} cut-off at 300 ms: {_rate(fam['cutoff_at_300ms'])}, at 600 ms: "
            f"{_rate(fam['cutoff_at_600ms'])}; delay at 5% cut-off: "
            f"{at5['median'] if at5 else '-'} ms (p90 {at5['p90'] if at5 else '-'}) "
            f"[{fam['operating_point_5pct'] or 'none'}]"
        )
        for budget in BUDGETS_MS[1:]:
            pick = fam[f"operating_point_{budget}ms"]
            if pick:
                print(
                    f"{'':11} fewest cut-offs within {budget} ms: {pick['policy']}: "
                    f"{pick['cutoff_rate']:.1%} at {pick['delay_ms']['median']} ms "
                    f"(p90 {pick['delay_ms']['p90']})"
                )
    if args.barge_in:
        from bench.barge_in import print_report

        print_report(report)
    print(f"written to {args.out} and {png}")
    return 0


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def register_bench(benches: Any) -> None:
    bench = benches.add_parser(
        "turns", help="end of turn: false cut-offs vs endpoint delay, per policy"
    )
    bench.add_argument(
        "--renditions", type=int, default=2,
        help="times each turn is spoken (another voice, rate, noise, pauses)",
    )  # fmt: skip
    bench.add_argument(
        "--no-asr", action="store_true", help="skip the model + transcript policy (no whisper)"
    )
    bench.add_argument(
        "--draw", type=int, default=0,
        help="another draw of voices, rates, noise and pauses per turn (0: the reference)",
    )  # fmt: skip
    bench.add_argument(
        "--barge-in", action="store_true",
        help="also: backchannels and barge-ins spoken over the robot (needs whisper)",
    )  # fmt: skip
    bench.add_argument(
        "--barge-in-only", action="store_true",
        help="with --barge-in: only that part (no end-of-turn clips)",
    )  # fmt: skip
    bench.add_argument(
        "--echo", nargs="?", const="-6,40", metavar="GAIN_DB[,DELAY_MS]",
        help="with --barge-in: also with the robot's voice on the mic (default -6 dB, 40 ms) "
        "and the listener cancelling it, and the robot alone: self-interruptions per hour",
    )  # fmt: skip
    bench.add_argument(
        "--echo-minutes", type=float, default=3.0, metavar="M",
        help="with --echo: minutes of the robot speaking alone (simulated clock)",
    )  # fmt: skip
    bench.add_argument("--out", type=Path, default=Path("runs/bench-turns.json"))
    bench.add_argument("--json", action="store_true", help="print the report as JSON")
    bench.set_defaults(func=cmd_bench_turns)


def _synthesize_line(voices: dict[tuple[str, float], Any]) -> Any:
    return lambda text, name: synthesize(text, name, 1.0, voices)


def run_barge_ins(show: bool, echo: Any = None, echo_minutes: float = 3.0) -> dict[str, Any]:
    """Backchannels and barge-ins over the robot's voice, per listener policy (bench/barge_in.py);
    with `echo` also with the robot's voice on the mic, and the robot alone."""
    from bench.barge_in import run_alone, run_over_robot

    say = _synthesize_line({})
    report: dict[str, Any] = {"over_the_robot": run_over_robot(say, None, show)}
    if echo is not None:
        report["echo"] = {"gain_db": echo.gain_db, "delay_ms": echo.delay_ms}
        report["over_the_robot_with_echo"] = run_over_robot(say, echo, show)
        report["robot_alone_with_echo"] = run_alone(echo, echo_minutes, show)
    return report
