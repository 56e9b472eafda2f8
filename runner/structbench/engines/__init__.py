"""Engines: one module each, loaded lazily through :mod:`structbench.engines.registry`."""
