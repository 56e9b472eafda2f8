"""The fake OpenAI-compatible server of tests/faults serves these tests too."""

import sys
from pathlib import Path

# tests/faults is on sys.path only while its own modules run (pytest's rootdir-relative
# imports); these tests reuse its server and suite helpers whatever the order.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
