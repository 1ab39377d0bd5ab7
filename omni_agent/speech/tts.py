"""Text to speech: piper (natural, 22.05 kHz) with espeak-ng as the robotic fallback.

A synthesizer turns one piece of text (a clause or a sentence) into int16 PCM. Streaming
is done one level up (outputs.py) by feeding it clauses as soon as they are complete.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from typing import Protocol

import numpy as np

from omni_agent.speech.models import SETUP_HINT, ModelMissingError, piper_joe_paths
from omni_agent.speech.pcm import read_wav, to_int16


class Synthesizer(Protocol):
    name: str
    sample_rate: int

    def synthesize(self, text: str) -> bytes:
        """int16 mono PCM at `sample_rate` for `text` (may be empty for punctuation)."""
        ...


class PiperTts:
    """Piper with the joe voice (en_US, medium). `threads` bounds onnxruntime's CPU use;
    `deterministic` turns off piper's sampling noise so the same text gives the same audio."""

    name = "piper"

    def __init__(
        self,
        *,
        length_scale: float | None = None,
        noise_scale: float | None = None,
        threads: int = 1,
        deterministic: bool = False,
    ) -> None:
        try:
            import onnxruntime
            from piper import PiperConfig, PiperVoice, SynthesisConfig
        except ImportError as exc:
            raise ModelMissingError(f"piper-tts is not installed; {SETUP_HINT}") from exc
        onnx_path, config_path = piper_joe_paths()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        self._voice = PiperVoice(
            session=onnxruntime.InferenceSession(
                str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
            ),
            config=config,
        )
        if deterministic:
            # Piper samples noise inside the model (onnxruntime's generator ignores
            # set_seed here): no noise gives the same audio for the same text (tests).
            noise_scale, noise_w_scale = 0.0, 0.0
        else:
            noise_w_scale = None
        self._syn = SynthesisConfig(
            length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w_scale
        )
        self.sample_rate = int(config.sample_rate)
        self._lock = threading.Lock()  # one onnx run at a time per voice

    def synthesize(self, text: str) -> bytes:
        with self._lock:
            pieces = [c.audio_float_array for c in self._voice.synthesize(text, self._syn)]
        if not pieces:
            return b""
        return to_int16(np.concatenate(pieces) * 32767.0).tobytes()


class EspeakTts:
    """espeak-ng through its command line (Debian package `espeak-ng`): fast and robotic."""

    name = "espeak-ng"

    def __init__(self, *, voice: str = "en-us", words_per_minute: int = 170, pitch: int = 50):
        self._exe = shutil.which("espeak-ng")
        if self._exe is None:
            raise ModelMissingError(
                "espeak-ng is not installed (Debian: apt-get install espeak-ng); "
                f"{SETUP_HINT} with piper"
            )
        self._args = ["-v", voice, "-s", str(words_per_minute), "-p", str(pitch)]
        self.sample_rate = 22_050

    def synthesize(self, text: str) -> bytes:
        wav = subprocess.run(
            [str(self._exe), *self._args, "--stdout", text],
            check=True,
            capture_output=True,
            timeout=30,
        ).stdout
        pcm, rate = read_wav(wav)
        self.sample_rate = rate
        return pcm


def load_tts(prefer: str = "piper", *, threads: int = 1) -> Synthesizer:
    """Piper if installed, else espeak-ng; raises ModelMissingError when neither is."""
    if prefer == "piper":
        try:
            return PiperTts(threads=threads)
        except ModelMissingError as piper_error:
            try:
                return EspeakTts()
            except ModelMissingError:
                raise piper_error from None
    return EspeakTts()
