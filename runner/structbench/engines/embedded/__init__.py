"""The embedded engine: transformers + outlines in process (CPU default)."""
