"""Write a small ShareGPT-format file of team-made conversations.

sglang.bench_serving reads a ShareGPT file even for its random datasets, and the GPU
machine is offline, so we give it this one. Usage: sharegpt_synth.py OUT.json [N]
"""

from __future__ import annotations

import json
import random
import sys

WORDS = [
    "garden",
    "robot",
    "battery",
    "sensor",
    "moisture",
    "schedule",
    "pump",
    "valve",
    "firmware",
    "update",
    "route",
    "map",
    "soil",
    "season",
    "harvest",
    "tomato",
    "lettuce",
    "weather",
    "forecast",
    "alert",
    "charge",
    "dock",
    "blade",
    "height",
    "lawn",
    "edge",
]


def main() -> None:
    out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    rng = random.Random(0)
    rows = []
    for i in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 400)))
        a = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 300)))
        rows.append(
            {"id": str(i), "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
        )
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(rows, fh)


if __name__ == "__main__":
    main()
