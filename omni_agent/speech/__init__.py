"""Speech in and out: utterance handles, sinks, and (with the speech extra) VAD, ASR, TTS."""

from omni_agent.speech.handle import SpeechHandle, SpeechOutput, TextSpeechOutput

__all__ = ["SpeechHandle", "SpeechOutput", "TextSpeechOutput"]
