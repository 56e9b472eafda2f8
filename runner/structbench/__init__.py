"""structbench: structured-generation benchmarks for LLM inference engines."""

__version__ = "0.1.0"
