"""Scorers: one module each, looked up by name in :mod:`structbench.scoring.registry`."""
