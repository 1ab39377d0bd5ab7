"""Talking to omni models over the OpenAI-compatible chat-completions protocol."""
