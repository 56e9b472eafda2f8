"""The launch tests share tests/faults' process helpers."""

import sys
from pathlib import Path

# tests/faults is on sys.path only while its own modules run (pytest's rootdir-relative
# imports); the launch and tether tests reuse its alive() whatever the order.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
