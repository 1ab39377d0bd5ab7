"""Simulation harness: a small world, a simulated robot, scripted people and scenarios."""
