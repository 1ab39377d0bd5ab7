"""Test doubles that follow a real interface (an OpenAI-compatible model server, an omni model): named as doubles, shared by tests, sim and benches."""
