"""`omni-agent bench speech --against pipecat`: the same spoken lines through a pipecat-ai
pipeline assembled from the same three models, measured in the same run.

The pipeline is what a pipecat user would build from its stock parts: a microphone
transport fed the same audio in real time, Silero VAD in the user aggregator,
`WhisperSTTService` on the project's packaged whisper-base weights (int8), the
OpenAI-compatible LLM service pointed at the llama.cpp server the embedded brain started,
`PiperTTSService` with the same joe voice files, and a speaker transport that plays in real
time and stamps every write, as our TopicSink does. The end of a turn is pipecat's own:
Silero VAD at its recommended 0.2 s stop, then its local Smart Turn v3 analyzer (the same
Smart Turn v3.2 file ours runs), with the same hard cap as ours (`max_wait_ms`). What
still differs is listed in DIFFERENCES and written into the report.

Needs the optional `compare` extra (`pip install -e '.[compare]'`); bench/speech.py checks
for it before anything loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    OutputAudioRawFrame,
    StartFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transcriptions.language import Language
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

from bench.voice_turns import Progress, RealTimeMic, SpokenStack, loop_gone, measure_turns
from omni_agent.brain import Brain
from omni_agent.config import Config
from omni_agent.messages import AUDIO_SAMPLE_RATE, now
from omni_agent.speech.models import piper_joe_paths, whisper_base_dir

log = logging.getLogger(__name__)

DIFFERENCES = [
    "end of turn: pipecat's Silero VAD (stop 0.2 s) + LocalSmartTurnAnalyzerV3 at its own "
    "threshold, waiting for the segment's transcript; ours webrtcvad + Smart Turn at 0.95 "
    "once the pause's words are back and sound finished; the same hard cap",
    "ASR: pipecat transcribes the segment after the VAD stop with faster-whisper's stock "
    "settings (30 s window, beam 5); ours transcribes speculatively at pauses with a short "
    "window and greedy decoding",
    "LLM prompt: a short plain-text voice prompt for pipecat; ours has the robot's skills, "
    "examples, situation and a JSON reply (say + actions), so ours reads and writes more",
    "TTS: pipecat speaks sentence by sentence; ours starts with the first clause",
    "threads: pipecat's whisper and piper use their libraries' default thread counts; ours "
    "pin whisper to 2 and piper to 1",
]


class LineMic(BaseInputTransport):
    """A microphone transport: the bench's RealTimeMic feeds it 20 ms chunks."""

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def feed(self, pcm: bytes, stamp: float) -> None:
        frame = InputAudioRawFrame(audio=pcm, sample_rate=AUDIO_SAMPLE_RATE, num_channels=1)
        await self.push_audio_frame(frame)


class StampingSpeaker(BaseOutputTransport):
    """A speaker that plays in real time and stamps each write: the robot audio output."""

    def __init__(self, params: TransportParams) -> None:
        super().__init__(params)
        self.written: asyncio.Queue[float] = asyncio.Queue()
        self.answering = False
        """From the end of a user turn to the end of the LLM's response: speech may follow."""
        self.turns_ended = 0
        """User turns pipecat has ended (a line that ends two was cut in two)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, UserStoppedSpeakingFrame):
            self.turns_ended += 1
        if isinstance(frame, (UserStoppedSpeakingFrame, LLMFullResponseStartFrame)):
            self.answering = True
        elif isinstance(frame, LLMFullResponseEndFrame):
            self.answering = False
        await super().process_frame(frame, direction)

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        self.written.put_nowait(now())
        await asyncio.sleep(len(frame.audio) / (2 * frame.sample_rate * frame.num_channels))
        return True


class QueueReplies:
    def __init__(self, queue: asyncio.Queue[float]) -> None:
        self._queue = queue

    def drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    async def next(self) -> float:
        return await self._queue.get()


def system_prompt(config: Config) -> str:
    places = ", ".join(sorted(config.robot.places)) or "the rooms of the home"
    return (
        f"You are {config.robot.name}, a helpful home robot. You can go to: {places}. "
        "Answer the person in one or two short spoken sentences, without lists or markup."
    )


async def warm_up(base_url: str, config: Config, system: str) -> None:
    """Have the server read the system prompt once, as our agent's warm-up does."""
    body = {
        "model": config.model.name,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": "Hi"}],
        "max_tokens": 1,
    }
    async with httpx.AsyncClient(timeout=60) as http:
        with contextlib.suppress(httpx.HTTPError):
            await http.post(f"{base_url}/chat/completions", json=body)


def _quiet_pipecat_logs() -> None:
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="ERROR")


@contextlib.asynccontextmanager
async def pipecat_stack(
    config: Config, base_url: str, clips: dict[str, bytes]
) -> AsyncIterator[SpokenStack]:
    _quiet_pipecat_logs()
    cap_s = config.endpointing.max_wait_ms / 1000
    onnx, _ = piper_joe_paths()
    stt = WhisperSTTService(
        device="cpu", compute_type="int8",
        settings=WhisperSTTService.Settings(model=str(whisper_base_dir()), language=Language.EN),
    )  # fmt: skip
    system = system_prompt(config)
    llm = OpenAILLMService(
        api_key="local", base_url=base_url,
        settings=OpenAILLMService.Settings(
            model=config.model.name, system_instruction=system,
            temperature=config.model.temperature,
            max_tokens=config.model.max_tokens, seed=config.model.seed,
        ),
    )  # fmt: skip
    tts = PiperTTSService(
        download_dir=onnx.parent,
        settings=PiperTTSService.Settings(voice=onnx.name.removesuffix(".onnx")),
    )
    user, assistant = LLMContextAggregatorPair(
        LLMContext(),
        user_params=LLMUserAggregatorParams(
            vad_analyzer=SileroVADAnalyzer(params=VADParams()),
            # pipecat's Smart Turn setup, with our hard cap as its longest wait
            user_turn_strategies=UserTurnStrategies(
                stop=[
                    TurnAnalyzerUserTurnStopStrategy(
                        turn_analyzer=LocalSmartTurnAnalyzerV3(
                            params=SmartTurnParams(stop_secs=cap_s)
                        )
                    )
                ]
            ),
        ),
    )
    mic = LineMic(TransportParams(audio_in_enabled=True, audio_in_sample_rate=AUDIO_SAMPLE_RATE))
    speaker = StampingSpeaker(
        TransportParams(
            audio_out_enabled=True, audio_out_auto_silence=False, audio_out_end_silence_secs=0
        )
    )
    pipeline = Pipeline([mic, stt, user, llm, tts, speaker, assistant])
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=AUDIO_SAMPLE_RATE, audio_out_sample_rate=22_050),
        cancel_on_idle_timeout=False,
        idle_timeout_secs=None,
        enable_rtvi=False,
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker: Any, _frame: Any) -> None:
        started.set()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run = asyncio.create_task(runner.run())
    try:
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({waiter, run}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not started.is_set():
            raise RuntimeError(f"the pipecat pipeline did not start: {loop_gone(run)()}")
        await warm_up(base_url, config, system)
        async with RealTimeMic(mic.feed) as line_mic:

            async def speak(line: str) -> float:
                return await line_mic.say(clips[line])

            yield SpokenStack(
                "pipecat", speak, QueueReplies(speaker.written), loop_gone(run),
                lambda: speaker.answering, heard=lambda: speaker.turns_ended,
            )  # fmt: skip
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(worker.cancel(), 10)
        if not run.done():
            run.cancel()
        await asyncio.gather(run, return_exceptions=True)


async def run_pipecat(
    config: Config, brain: Brain, lines: list[str], clips: dict[str, bytes], *,
    answer_timeout_s: float, progress: Progress | None,
) -> dict[str, Any]:  # fmt: skip
    """Our lines through pipecat on the brain's own llama.cpp server; faults are results."""
    report: dict[str, Any] = {
        "version": importlib.metadata.version("pipecat-ai"),
        "differences": DIFFERENCES,
    }
    base_url = brain.server.base_url if brain.server else config.model.url
    if base_url is None:
        return {**report, "turns": len(lines), "answered": 0, "error": "no LLM server URL"}
    try:
        async with pipecat_stack(config, base_url, clips) as stack:
            load = os.getloadavg()[0]
            turns = await measure_turns(
                stack, lines, answer_timeout_s=answer_timeout_s, progress=progress
            )
            load_end = os.getloadavg()[0]
        return {
            **report,
            **turns.summary(),
            "load_avg_1m_start_end": [round(load, 2), round(load_end, 2)],
        }
    except Exception as exc:
        log.debug("the pipecat pipeline did not run", exc_info=True)
        error = f"{type(exc).__name__}: {exc}"
        return {**report, "turns": len(lines), "answered": 0, "error": error}
