"""Task kinds: each expands a loaded task into engine-agnostic work items."""
