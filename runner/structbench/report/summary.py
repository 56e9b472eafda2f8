"""The run summary and its terminal rendering, re-exported for the runner and the CLI."""

from structbench.metrics import RunSummary
from structbench.report.terminal import render_terminal_table

__all__ = ["RunSummary", "render_terminal_table"]
