"""End of turn: at a pause, has the person finished, or are they only thinking?

Silence alone cannot tell "I want to go to the ... kitchen" from "Go to the kitchen.": a
300 ms silence cuts the first in two, and a silence long enough for it (a second) makes
every finished turn wait that long. So the VAD only finds the pauses, and at each pause a
turn model listens to the speech so far and says "done" or "keep listening":

- Smart Turn v3.2 (BSD-2, pipecat-ai): an 8 MB int8 ONNX classifier on a Whisper-tiny
  encoder that hears intonation and pace (a rising question, a trailing "and ...") from
  the last 8 s of audio. The file ships inside the `pipecat-ai` wheel, installed without
  its dependencies (Makefile); we run it on onnxruntime with faster-whisper's log-mel
  features, so none of pipecat is imported.
- The partial transcript of the pause (its speculative ASR pass): a turn that ends on
  "the", "and", "um", or that whisper writes as trailing off ("..."), is not over,
  whatever the voice did. With this policy the model's "done" waits for those words.
- A hard cap: after `max_wait_ms` of silence the turn ends whatever the model says, so
  a person who stops mid-sentence still gets an answer.

Speculative ASR and recall run during the pause either way, so a right "done" costs no
latency beyond the model's own few tens of milliseconds.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from omni_agent.messages import AUDIO_SAMPLE_RATE
from omni_agent.speech.models import SETUP_HINT, ModelMissingError, sha256_file

SMART_TURN_FILE = "audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
"""Where the model lies inside the installed `pipecat` package (pipecat-ai 1.14.0)."""
SMART_TURN_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
MODEL_SECONDS = 8
"""Smart Turn hears at most the last 8 s; shorter audio is left-padded with zeros."""
N_FFT, HOP = 400, 160
"""Whisper's STFT: 25 ms windows every 10 ms at 16 kHz."""

Policy = Literal["silence", "model", "model+text"]

UNFINISHED_WORDS = frozenset(
    {
        *("a", "an", "the", "my", "your", "our", "their"),
        *("and", "or", "but", "because", "if", "when", "while", "than"),
        *("to", "of", "into", "onto", "with", "um", "uh", "er", "erm", "i'm"),
    }
)
"""Last words after which a turn is not over ("go to the", "and", "um"). Only words no
finished sentence ends on: "thank you", "turn it on", "I think so" end on others."""
NUMBER_WORDS = frozenset(
    {
        *("zero", "two", "three", "four", "five", "six", "seven", "eight"),
        *("nine", "ten", "eleven", "twelve", "twenty", "thirty", "forty", "fifty"),
        *("sixty", "seventy", "eighty", "ninety", "hundred", "thousand"),
    }
)
"""Spoken digits (not "one", "oh": sentences end on them): a turn ending on one may be a
phone number or a code read in groups."""


def sounds_unfinished(text: str) -> bool:
    """True when the transcript so far ends on a word no finished sentence ends on, trails
    off, or leaves a list open (a trailing comma, a number: "five five five," "four seven")."""
    return ends_mid_sentence(text) or leaves_list_open(text)


def ends_mid_sentence(text: str) -> bool:
    """The transcript ends on a function word ("the", "and", "um") or trails off ("...")."""
    if re.search(r"(\.\.\.|\u2026)\s*$", text):
        return True  # whisper writes a trailing-off voice as "..."
    words = re.findall(r"[a-z']+", text.lower())
    if words[-2:] == ["and", "then"]:
        return True  # "we had lunch and then."
    return bool(words) and words[-1] in UNFINISHED_WORDS


def leaves_list_open(text: str) -> bool:
    """A list or a number may go on after a pause ("milk, eggs," "five five five" "47."):
    such a turn waits for the cap. A finished number ("at 7.") waits too: a slower answer,
    never a cut one."""
    stripped = text.strip()
    if stripped.endswith(","):
        return True
    words = re.findall(r"[a-z0-9']+", stripped.lower())
    return bool(words) and (words[-1][-1].isdigit() or words[-1] in NUMBER_WORDS)


@dataclass
class TurnConfig:
    """End-of-turn policy at a pause. The defaults are the bench's operating point with the
    fewest false cut-offs below 800 ms (`omni-agent bench turns`, docs/speech.md); the same
    as EndpointingConfig's."""

    policy: Policy = "model+text"
    """silence: end after VadConfig.trailing_silence_ms (no model); model: ask Smart Turn
    at each check; model+text: also keep listening while the pause's partial transcript
    ends on an unfinished word."""
    check_ms: int = 200
    """Silence before the model is first asked, then again every `check_ms`."""
    threshold: float = 0.95
    """Smart Turn's probability of "complete" at or above which the turn ends (with
    model+text: once the pause's words are back and sound finished)."""
    alone_threshold: float | None = None
    """model+text: the model's bar before the pause's words are back (the speculative
    pass takes a few hundred ms on a busy CPU); None waits for the words."""
    max_wait_ms: int = 1600
    """Hard cap: silence after which the turn ends whatever the model says."""
    judge_early: bool = True
    """model+text: ask the model at checks before the pause's words are back too (it
    decides nothing then): when the words arrive, a check that would have ended the turn
    with them ends it at once, and the partial transcript carries the model's P(done)."""


class SmartTurn:
    """Smart Turn v3.2 on onnxruntime: probability that the speech so far is a whole turn."""

    def __init__(self, model_path: Path | None = None, *, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
            from faster_whisper.feature_extractor import FeatureExtractor
        except ImportError as exc:
            raise ModelMissingError(f"onnxruntime/faster-whisper missing; {SETUP_HINT}") from exc
        path = model_path or smart_turn_path()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        # faster-whisper's mel filters (Whisper's: 80 bands, Slaney); its STFT loops in
        # Python, so the frames are cut and transformed here in one batch
        self._mel = FeatureExtractor(feature_size=80).mel_filters.astype(np.float32)
        self._window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
        self.call_ms: list[float] = []
        """Time of every call (features + model), for the bench."""

    def features(self, pcm: bytes) -> np.ndarray:
        """Whisper log-mel features (80 x 800) of the last 8 s, left-padded with zeros and
        normalised to zero mean, unit variance, as the model was trained."""
        n = MODEL_SECONDS * AUDIO_SAMPLE_RATE
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float32)[-n:] / 32768.0
        x = np.pad(x, (n - len(x), 0))
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        padded = np.pad(x, N_FFT // 2, mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:-1]
        spectrum = np.fft.rfft(frames * self._window, axis=-1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        log_mel = np.log10(np.maximum(self._mel @ power.T, 1e-10))
        log_mel = np.maximum(log_mel, log_mel.max() - 8.0)
        return np.asarray((log_mel + 4.0) / 4.0, dtype=np.float32)

    def probability(self, pcm: bytes) -> float:
        """P(the turn is complete) for 16 kHz int16 audio ending now (speech + silence)."""
        started = time.perf_counter()
        mel = self.features(pcm)[np.newaxis]
        (out,) = self._session.run(None, {"input_features": mel})
        self.call_ms.append((time.perf_counter() - started) * 1000)
        return float(np.asarray(out).reshape(-1)[0])


@functools.cache
def smart_turn_path() -> Path:
    """The Smart Turn v3.2 ONNX file inside the installed pipecat-ai wheel, verified.

    Found through the import system without importing pipecat (its dependencies are not
    installed)."""
    spec = importlib.util.find_spec("pipecat")
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        path = Path(root) / SMART_TURN_FILE
        if path.is_file():
            if sha256_file(path) != SMART_TURN_SHA256:
                raise ModelMissingError(
                    f"{path} is not the pinned Smart Turn v3.2 model; {SETUP_HINT}"
                )
            return path
    raise ModelMissingError(f"Smart Turn v3.2 (pipecat-ai, no deps) is not installed; {SETUP_HINT}")


@functools.cache
def shared_smart_turn() -> SmartTurn:
    """One model per process: every listener asks the same session."""
    return SmartTurn()


@dataclass
class EndOfTurn:
    """The decision at a pause. The endpointer calls `is_done` at each check; the listener
    sets `transcript` when the pause's speculative pass is back."""

    config: TurnConfig = field(default_factory=TurnConfig)
    model: SmartTurn | None = None
    transcript: tuple[int, str] | None = None
    """(voiced bytes, text): the speculative transcript of the speech up to a pause, named
    by where that speech ended, so a pass about an earlier pause is never taken for this
    one."""
    transcripts_expected: bool = True
    """A speculative pass runs at every pause (the listener has ASR). Without one the
    model+text policy is the model alone."""
    last_probability: float | None = None
    judged: tuple[int, float] | None = None
    """(voiced bytes, P(done)): the model's latest answer, named by its pause."""

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = shared_smart_turn()

    def hear(self, voiced_bytes: int, text: str) -> None:
        """The speculative transcript of the speech that ends at `voiced_bytes`."""
        self.transcript = (voiced_bytes, text)

    def _words(self, voiced_bytes: int) -> str | None:
        heard = self.transcript
        return heard[1] if heard is not None and heard[0] == voiced_bytes else None

    def is_done(self, pcm: bytes, voiced_bytes: int, silence_ms: int) -> bool:
        """At a check of a pause (the cap is the endpointer's): does the turn end now?
        `pcm` is the speech so far with its silence; `voiced_bytes` names the pause."""
        bar: float | None = self.config.threshold
        if self.config.policy == "model+text" and self.transcripts_expected:
            words = self._words(voiced_bytes)
            if words is None:
                bar = self.config.alone_threshold  # the words are not back yet
            elif sounds_unfinished(words):
                return False  # the words are not over: no need to ask the model
        if bar is None and not (self.config.judge_early and self.config.policy == "model+text"):
            return False
        assert self.model is not None
        self.last_probability = self.model.probability(pcm)
        self.judged = (voiced_bytes, self.last_probability)
        return bar is not None and self.last_probability >= bar

    def lean(self, voiced_bytes: int) -> float | None:
        """How much the policy leans "done" at this pause so far: 0 when its words are
        unfinished, else the model's latest P(done) for it (None: not asked yet)."""
        words = self._words(voiced_bytes)
        if words is not None and self.config.policy == "model+text" and sounds_unfinished(words):
            return 0.0
        judged = self.judged
        return judged[1] if judged is not None and judged[0] == voiced_bytes else None

    def done_on_words(self, voiced_bytes: int) -> bool:
        """The pause's words just arrived: would the latest check of this pause have ended
        the turn with them? Then it ends now instead of at the next check."""
        if self.config.policy != "model+text" or self._words(voiced_bytes) is None:
            return False
        p = self.lean(voiced_bytes)
        return p is not None and p >= self.config.threshold


BACKCHANNELS = frozenset(
    {
        *("mm", "mhm", "mm-hmm", "hmm", "uh-huh", "uh", "huh", "aha", "ah", "oh"),
        *("yeah", "yes", "yep", "yup", "okay", "ok", "right", "sure", "alright", "all"),
        *("i", "see", "got", "it", "true", "exactly", "cool", "nice", "wow"),
    }
)
"""Words of "I'm listening, go on" ("mm-hmm", "yeah", "okay", "right", "I see", "got it")."""


def is_backchannel(text: str) -> bool:
    """True when a short reply is only listening noises: no request, nothing to answer."""
    words = re.findall(r"[a-z]+(?:-[a-z]+)*", text.lower())
    if not words or len(words) > 3:
        return False
    if words in (["i"], ["it"], ["all"], ["got"], ["see"]):
        return False  # a fragment, not a backchannel
    return all(w in BACKCHANNELS or _hum(w) for w in words)


def _hum(word: str) -> bool:
    """A hum as whisper spells it: "mmm", "mhn", "nma", "hmm", "m-m-a", "uh-hm"."""
    if word in ("am", "ma", "man", "mum", "ham", "mama"):
        return False
    return bool(re.fullmatch(r"[mhnau]{2,4}|[mhnau]{1,2}(-[mhnau]{1,2})+", word)) and "m" in word
