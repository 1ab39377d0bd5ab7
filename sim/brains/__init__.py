"""Test doubles that follow a real interface, shared by tests, sim and benches.

The simulator's brains: `sim --brain scripted` runs the scripted model server and
`sim --brain omni-double` the omni model double (sim/instant_brain.py gives both their
rules). Each stands in for a model server that cannot run here (it needs a GPU) and
speaks that server's real protocol, so the code under test is the code that ships. Each
is named as a double. The hostile server and the throwaway PostgreSQL are in bench/.
"""
