"""Test doubles that follow a real interface, shared by tests, sim and benches.

Each one stands in for something that cannot run here (a GPU model server, an omni model,
a broken server) and speaks that thing's real protocol, so the code under test is the code
that ships. Each is named as a double.
"""
