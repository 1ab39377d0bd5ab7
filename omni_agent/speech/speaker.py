"""Who is speaking: voiceprints, identification of each utterance, enrolment by conversation.

A robot stores every turn with the person who said it, and per-person memory needs that
name: in the sim the script knows it, on a robot the voice must tell. The speaker
embedding is the GE2E d-vector encoder (3-layer LSTM, 40 mel bands, 256-d embedding)
whose weights ship on PyPI inside the `resemblyzer` wheel (the `speaker` extra). We read
those weights without torch (a small reader for the legacy torch checkpoint format) and
run the LSTM in numpy, so identification needs no GPU, no torch and nothing downloaded.

A wrong name is worse than no name: it gives one person's private memory to another and
feeds their voice into the other's print. So every doubt resolves to "unknown":

- `VoiceEncoder.embed(pcm)`: one L2-normed 256-d voiceprint of a 16 kHz utterance.
- `VoiceprintStore`: one voiceprint per person (the running mean of their utterances) in
  its own SQLite file next to the memory database, names compared by `person_key`;
  `forget` deletes a person's print.
- `SpeakerId.identify`: the closest enrolled person when the voice matches their print
  at `threshold` or more and no other print comes within `MARGIN`; otherwise unknown. A
  print made from less than `ENROL_SECONDS` of speech or `ENROL_UTTERANCES` utterances is
  provisional: it grows from utterances that match it confidently but names nobody yet.
- `SpeakerId.hear`: the identification plus what the person said; "I'm Alice" from an
  unknown voice starts a provisional print for Alice; from a voice that sounds like
  another enrolled person it is refused (the robot can say so and ask to confirm).
  A print is only ever updated from an utterance that matched it confidently.
- An external face-recognition node can name the person instead (`SpeakerId.seen`).
"""

from __future__ import annotations

import importlib.util
import pickle
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from memory.names import InvalidPersonName, person_name, same_person
from memory.voiceprints import (
    ENROL_SECONDS,
    Voiceprint,
    VoiceprintStore,
)
from omni_agent.errors import UserError

SAMPLE_RATE = 16_000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s per partial utterance
PARTIAL_RATE = 1.3  # partials per second, as the encoder was evaluated
MIN_COVERAGE = 0.75

DEFAULT_THRESHOLD = 0.85
"""Cosine similarity below which a voice is unknown: the equal-error point on the sim's
voices (`omni-agent bench speaker`), which are one TTS voice shifted apart and so harder
to tell apart than people; set it from your own people's enrolment (docs/speech.md)."""
MARGIN = 0.05
"""A voice is named only when its best print beats every other print by this much: two
prints that both match are an unsure identity, and unsure is unknown."""
FIRST_THRESHOLD = 0.75
"""A print made from one utterance (often one short "I'm Alice") takes a second from this
similarity (and MARGIN above every other print): it scores its own voice at about
0.72-0.78 and other voices up to about 0.73 when near in pitch (bench speaker). From its
second utterance on, a print grows only from voices at `threshold`, like an enrolled one,
so a near voice can slip in once at most, and the print still names nobody then."""
CLAIM_GUARD = 0.75
"""A claim ("I'm Alice") is refused when the voice matches another enrolled person's print
at this similarity or more (and better than the claimed one): a voice near someone else's
is not a new person on its word alone."""


class SpeakerModelMissing(UserError):
    pass


def weights_path() -> Path:
    """The encoder weights inside the installed resemblyzer wheel (not imported: its
    __init__ pulls in torch and librosa, which we do not need)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise SpeakerModelMissing(
            "speaker identification needs the voice encoder weights: "
            "pip install --no-deps 'resemblyzer==0.1.4' (or omni-agent[speaker])"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.exists():
        raise SpeakerModelMissing(f"voice encoder weights missing: {path}")
    return path


# -- a torch-free reader for the legacy (pre-zip) torch checkpoint format ---------------

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64}


class _Storage:
    def __init__(self, dtype: Any, numel: int) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


def _rebuild_tensor(storage: _Storage, offset: int, size: Any, stride: Any, *_: Any) -> Any:
    return ("tensor", storage, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, f: Any, storages: dict[str, _Storage]) -> None:
        super().__init__(f)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" or module.startswith("torch"):
            return lambda *a, **k: None  # optimizer state and other parts we do not use
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        _, kind, key, _location, numel, *_ = pid
        if key not in self.storages:
            self.storages[key] = _Storage(_DTYPES.get(kind, np.float32), int(numel))
        return self.storages[key]


def load_legacy_checkpoint(path: Path) -> dict[str, np.ndarray]:
    """The model_state tensors of a legacy torch.save file, as numpy arrays."""
    with path.open("rb") as f:
        for _ in range(3):  # magic number, protocol version, sys info
            pickle.load(f)
        storages: dict[str, _Storage] = {}
        result = _Unpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            storage = storages[key]
            numel = int(np.frombuffer(f.read(8), "<i8")[0])
            width = np.dtype(storage.dtype).itemsize
            storage.data = np.frombuffer(f.read(numel * width), storage.dtype)
    state: dict[str, np.ndarray] = {}
    for name, value in result["model_state"].items():
        _, storage, offset, size, stride = value
        assert storage.data is not None
        width = np.dtype(storage.dtype).itemsize
        flat = storage.data[offset:]
        state[name] = np.lib.stride_tricks.as_strided(
            flat, shape=size, strides=tuple(s * width for s in stride)
        ).copy()
    return state


# -- the front end: mel power spectrogram (librosa's slaney mel, no log) ----------------


def _mel_filters(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        mel = f / (200.0 / 3)
        log_region = f >= 1000.0
        return np.where(
            log_region, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel
        )

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        hz = m * (200.0 / 3)
        return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), hz)

    fft_freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mels = mel_to_hz(np.linspace(hz_to_mel(np.array(0.0)), hz_to_mel(np.array(sr / 2)), n_mels + 2))
    fdiff = np.diff(mels)
    ramps = mels[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mels[2 : n_mels + 2] - mels[:n_mels]))[:, None]
    return weights.astype(np.float32)


_MEL = _mel_filters()
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def mel_frames(wav: np.ndarray) -> np.ndarray:
    """(frames, 40) mel power spectrogram of float audio, centred frames as librosa."""
    padded = np.pad(wav, N_FFT // 2)
    n = 1 + (len(padded) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(padded[idx] * _WINDOW, axis=1)) ** 2
    return (spec.astype(np.float32) @ _MEL.T).astype(np.float32)


def _normalize_volume(wav: np.ndarray, target_dbfs: float = -30.0) -> np.ndarray:
    rms = float(np.sqrt(np.mean(wav**2))) if len(wav) else 0.0
    if rms <= 0:
        return wav
    gain_db = target_dbfs - 20 * np.log10(rms)
    return wav * (10 ** (gain_db / 20)) if gain_db > 0 else wav  # increase only


def _onnx_lstm(state: dict[str, np.ndarray]) -> bytes:
    """The encoder as an ONNX graph built from the weights (3 LSTM nodes, Linear, ReLU),
    so onnxruntime runs the recurrence in C++: a Python loop over 480 steps is too slow."""
    from onnx import TensorProto, helper, numpy_helper

    def reorder(w: np.ndarray) -> np.ndarray:  # torch gates i,f,g,o -> onnx i,o,f,c
        i, f, g, o = np.split(w, 4, axis=0)
        return np.concatenate([i, o, f, g], axis=0)

    inits, nodes = [], []
    x = "mels_t"  # (steps, batch, 40)
    nodes.append(helper.make_node("Transpose", ["mels"], [x], perm=[1, 0, 2]))
    for i in range(3):
        w = reorder(state[f"lstm.weight_ih_l{i}"])[None]
        r = reorder(state[f"lstm.weight_hh_l{i}"])[None]
        b = np.concatenate(
            [reorder(state[f"lstm.bias_ih_l{i}"]), reorder(state[f"lstm.bias_hh_l{i}"])]
        )[None]
        for name, arr in ((f"W{i}", w), (f"R{i}", r), (f"B{i}", b)):
            inits.append(numpy_helper.from_array(arr.astype(np.float32), name))
        y, yh = f"Y{i}", f"Yh{i}"
        nodes.append(
            helper.make_node("LSTM", [x, f"W{i}", f"R{i}", f"B{i}"], [y, yh], hidden_size=256)
        )
        axes = f"axes{i}"
        inits.append(numpy_helper.from_array(np.array([1], np.int64), axes))
        x = f"X{i + 1}"
        nodes.append(helper.make_node("Squeeze", [y, axes], [x]))  # (steps, batch, 256)
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "axes_h"))
    nodes.append(helper.make_node("Squeeze", ["Yh2", "axes_h"], ["h"]))  # (batch, 256)
    inits.append(numpy_helper.from_array(state["linear.weight"].T.astype(np.float32), "Wl"))
    inits.append(numpy_helper.from_array(state["linear.bias"].astype(np.float32), "Bl"))
    nodes.append(helper.make_node("MatMul", ["h", "Wl"], ["hl"]))
    nodes.append(helper.make_node("Add", ["hl", "Bl"], ["hb"]))
    nodes.append(helper.make_node("Relu", ["hb"], ["embeds"]))
    graph = helper.make_graph(
        nodes,
        "ge2e",
        [helper.make_tensor_value_info("mels", TensorProto.FLOAT, ["batch", "steps", N_MELS])],
        [helper.make_tensor_value_info("embeds", TensorProto.FLOAT, ["batch", 256])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


class VoiceEncoder:
    """GE2E speaker encoder: 16 kHz PCM in, an L2-normed 256-d voiceprint out.

    The LSTM runs in onnxruntime (already a dependency, for the memory embeddings) from
    a graph built at load time from the shipped weights; one thread, so it never competes
    with ASR for more than one core.
    """

    def __init__(self, path: Path | None = None) -> None:
        import onnxruntime as ort

        state = load_legacy_checkpoint(path or weights_path())
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            _onnx_lstm(state), options, providers=["CPUExecutionProvider"]
        )

    def _forward(self, mels: np.ndarray) -> np.ndarray:
        """(batch, frames, 40) -> (batch, 256) normalized embeddings."""
        (raw,) = self.session.run(["embeds"], {"mels": mels.astype(np.float32)})
        return np.asarray(raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-8))

    def embed(self, pcm: bytes | np.ndarray) -> np.ndarray:
        """The voiceprint of one utterance: the normalized mean of its 1.6 s partials."""
        wav = np.frombuffer(pcm, "<i2") if isinstance(pcm, bytes) else np.asarray(pcm)
        wav = wav.astype(np.float32) / (32768.0 if wav.dtype.kind == "i" else 1.0)
        wav = _normalize_volume(wav)
        n_frames = int(np.ceil((len(wav) + 1) / HOP))
        step = max(1, int(np.round((SAMPLE_RATE / PARTIAL_RATE) / HOP)))
        starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
        last = starts[-1] * HOP
        coverage = (len(wav) - last) / (PARTIAL_FRAMES * HOP)
        if coverage < MIN_COVERAGE and len(starts) > 1:
            starts = starts[:-1]
        need = (starts[-1] + PARTIAL_FRAMES) * HOP
        if need > len(wav):
            wav = np.pad(wav, (0, need - len(wav)))
        mels = mel_frames(wav)
        batch = np.stack([mels[s : s + PARTIAL_FRAMES] for s in starts])
        partials = self._forward(batch)
        mean = partials.mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)


# -- who is who ---------------------------------------------------------------------------


@dataclass
class Identification:
    person: str | None
    """The enrolled person the voice is, None if unknown (or unsure)."""
    confidence: float
    """Cosine similarity to that person's print (0..1 for these embeddings)."""
    source: Literal["voice", "face", "claim", "none"] = "voice"
    best: str | None = None
    """The closest enrolled person, even below the threshold."""
    embedding: np.ndarray | None = field(default=None, repr=False)
    ms: float = 0.0
    """Time spent embedding and matching."""
    seconds: float = 0.0
    """Length of the utterance."""
    note: str = ""
    """Why the person was decided so (a claim refused, a voice still being learnt...)."""
    provisional: str | None = None
    """The provisional print this voice matches confidently: the person it will be named
    as once enrolment has enough speech (still unknown for memory until then)."""


_CLAIM = re.compile(
    r"\b(?:i am|i'm|im|my name is|my name's|this is|call me)\s+([A-Z][a-z]+)\b", re.IGNORECASE
)
_NOT_NAMES = {"here", "back", "fine", "good", "sorry", "not", "just", "so", "very", "a", "the"}


def claimed_name(text: str) -> str | None:
    """The name someone gives for themselves ("I'm Alice", "my name is Bob"), if any."""
    for match in _CLAIM.finditer(text):
        name = match.group(1)
        if name.lower() not in _NOT_NAMES:
            return name.capitalize()
    return None


class SpeakerId:
    """Names the person behind each utterance from their voice (or a face node).

    `threshold`: below this cosine similarity a voice is unknown. `face_hold_s`: how long a
    name from the face-recognition topic stands for the utterances that follow.
    """

    def __init__(
        self,
        store: VoiceprintStore,
        encoder: VoiceEncoder | None = None,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        face_hold_s: float = 10.0,
    ) -> None:
        self.store = store
        self.encoder = encoder or VoiceEncoder()
        self.threshold = threshold
        self.face_hold_s = face_hold_s
        self._face: tuple[str, float, float] | None = None

    def enroll(self, person: str, pcm: bytes | np.ndarray) -> Voiceprint:
        """Add one utterance of `person` to their print (raises InvalidPersonName); the
        print names them once it holds ENROL_SECONDS over ENROL_UTTERANCES."""
        return self.store.add(person_name(person), self.encoder.embed(pcm), _seconds(pcm))

    def seen(self, person: str, confidence: float = 1.0, stamp: float | None = None) -> None:
        """An external face-recognition node names the person in front of the robot
        (raises InvalidPersonName)."""
        name = person_name(person)
        self._face = (name, confidence, time.monotonic() if stamp is None else stamp)

    def identify(self, pcm: bytes | np.ndarray) -> Identification:
        started = time.perf_counter()
        embedding = self.encoder.embed(pcm)
        result = self.match(embedding)
        result.ms = (time.perf_counter() - started) * 1000
        result.seconds = _seconds(pcm)
        return result

    def match(self, embedding: np.ndarray) -> Identification:
        """The person whose print the voice matches confidently: at `threshold` or more,
        and MARGIN above every other print. A provisional print matched so (from
        FIRST_THRESHOLD while it holds one utterance) is reported in `provisional` but
        names nobody."""
        prints = self.store.all()
        scores = {p: float(v.embedding @ embedding) for p, v in prints.items()}
        ranked = sorted(scores, key=lambda p: -scores[p])
        best = ranked[0] if ranked else None
        score = scores[best] if best else 0.0
        runner_up = scores[ranked[1]] if len(ranked) > 1 else 0.0
        known = provisional = None
        if best is not None and score - runner_up >= MARGIN:  # unsure between two: unknown
            if prints[best].enrolled and score >= self.threshold:
                known = best
            elif not prints[best].enrolled:
                first = prints[best].utterances == 1
                if score >= (FIRST_THRESHOLD if first else self.threshold):
                    provisional = best
        if self._face is not None and known is None:
            name, conf, at = self._face
            if time.monotonic() - at <= self.face_hold_s:
                return Identification(name, conf, "face", best, embedding)
        return Identification(known, score, "voice", best, embedding, provisional=provisional)

    def hear(self, pcm: bytes | np.ndarray, text: str) -> Identification:
        """Identify the utterance and act on a name it gives: the one call per turn."""
        result = self.identify(pcm)
        return self.resolve(result, text)

    def resolve(self, result: Identification, text: str) -> Identification:
        """Apply what was said to an identification (enrolment from conversation).

        No name given: the print the voice matched confidently (enrolled or provisional)
        takes the utterance; an unsure voice changes no print. "I'm X" from X's voice
        confirms. From a voice that is (or sounds like) another enrolled person it is
        refused: the turn stays theirs, or unknown, and the note says to ask. From an
        unknown voice: a new provisional print for X, or more speech for X's provisional
        print when the voice matches it; never a print X already has that this voice
        does not match (a stranger must not reach X's memory by saying X's name).
        """
        claim = claimed_name(text)
        emb = result.embedding
        if emb is None or result.source != "voice":
            return result
        if claim is None:
            if result.person is not None:
                self.store.add(result.person, emb, result.seconds)
            elif result.provisional is not None:
                grown = self.store.add(result.provisional, emb, result.seconds)
                result.note = _learning(result.provisional, grown)
            return result
        if result.person is not None:
            if same_person(claim, result.person):
                self.store.add(result.person, emb, result.seconds)
                result.note = f"{result.person} confirmed by voice"
            else:
                result.note = (
                    f"claims to be {claim} but sounds like {result.person} "
                    f"({result.confidence:.2f}): not taken on trust, ask to confirm"
                )
            return result
        prints = self.store.all()
        scores = {p: float(v.embedding @ emb) for p, v in prints.items()}
        claimed = self.store.find(claim)
        own = scores[claimed[0]] if claimed else 0.0
        alike = [
            p
            for p, v in prints.items()
            if v.enrolled and not same_person(p, claim) and scores[p] >= max(CLAIM_GUARD, own)
        ]
        if alike:
            other = max(alike, key=lambda p: scores[p])
            note = (
                f"claims to be {claim} but sounds like {other} ({scores[other]:.2f}): "
                "not taken on trust, ask to confirm"
            )
            return _unknown(result, note)
        if claimed is not None:
            name = claimed[0]
            if result.provisional is not None and same_person(result.provisional, name):
                grown = self.store.add(name, emb, result.seconds)
                return _unknown(result, _learning(name, grown))
            note = f"claims to be {name}, voice unlike {name}'s ({own:.2f}): ask to confirm"
            return _unknown(result, note)
        if result.provisional is not None:  # matches someone else's young print
            note = f"claims to be {claim} but sounds like {result.provisional}: ask to confirm"
            return _unknown(result, note)
        try:
            grown = self.store.add(claim, emb, result.seconds)
        except InvalidPersonName as exc:
            return _unknown(result, f"name not accepted: {exc}")
        return _unknown(result, _learning(person_name(claim), grown))


def _unknown(result: Identification, note: str) -> Identification:
    return Identification(
        None, result.confidence, "voice", result.best, result.embedding, result.ms,
        result.seconds, note, result.provisional,
    )  # fmt: skip


def _learning(person: str, grown: Voiceprint) -> str:
    if grown.enrolled:
        return f"enrolled {person}'s voice ({grown.utterances} utterances, {grown.seconds:.0f} s)"
    return (
        f"learning {person}'s voice ({grown.utterances} utterances, {grown.seconds:.1f} s of "
        f"{ENROL_SECONDS:.0f} s): unknown until enrolled"
    )


def _seconds(pcm: bytes | np.ndarray) -> float:
    n = len(pcm) // 2 if isinstance(pcm, bytes) else len(pcm)
    return n / SAMPLE_RATE


def equal_error_rate(genuine: list[float], impostor: list[float]) -> tuple[float, float]:
    """(EER, the threshold where false accepts and false rejects meet)."""
    best = (1.0, 0.0)
    for t in sorted(set(genuine) | set(impostor)):
        far = sum(s >= t for s in impostor) / max(1, len(impostor))
        frr = sum(s < t for s in genuine) / max(1, len(genuine))
        gap = abs(far - frr)
        if gap < best[0] or best == (1.0, 0.0):
            best = (gap, t)
    t = best[1]
    far = sum(s >= t for s in impostor) / max(1, len(impostor))
    frr = sum(s < t for s in genuine) / max(1, len(genuine))
    return (far + frr) / 2, t
