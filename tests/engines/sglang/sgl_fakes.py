"""Work items and a scripted embedded runtime for the SGLang engine tests."""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from structbench.engines.embedded.api import GenRequest, GenResult
from structbench.ir import (
    Branch,
    Choice,
    Constraint,
    Gen,
    Grammar,
    JsonSchema,
    Message,
    Regex,
    Turn,
    WorkItem,
)

SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    },
    sort_keys=True,
)
REGEX = r"[0-9]{3}-[0-9]{4}"
CHOICES = ("red", "green", "b.lue")
GBNF = 'root ::= "yes" | "no"'
LARK = 'start: "yes" | "no"'

JSON_C = JsonSchema(SCHEMA)
REGEX_C = Regex(REGEX)
CHOICE_C = Choice(CHOICES)
GRAMMAR_C = Grammar((("gbnf", GBNF), ("lark", LARK)))

SMOL_DEFAULT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def one_gen(
    c: Constraint,
    *,
    strategy: str = "constrained",
    system: str | None = "Answer tersely.",
    max_tokens: int = 24,
) -> WorkItem:
    """A single-turn item with one gen."""
    prefix = (Message("system", system),) if system else ()
    gen = Gen("answer", c, max_tokens=max_tokens, choice_strategy=strategy)  # type: ignore[arg-type]
    return WorkItem(f"{c.kind}/0", "t", c.kind, prefix, (Branch((Turn("Question?", gen),)),))


def multi_turn(c1: Constraint = JSON_C, c2: Constraint = REGEX_C) -> WorkItem:
    """Two turns in one branch; the second sees the first answer."""
    turns = (
        Turn("First question?", Gen("first", c1, max_tokens=24)),
        Turn("Second?", Gen("second", c2, max_tokens=12)),
    )
    return WorkItem("chat/0", "t", "chat", (Message("system", "Be brief."),), (Branch(turns),))


def fanout(n: int = 3, c: Constraint = REGEX_C) -> WorkItem:
    """A shared prefix forked into ``n`` single-turn branches (same gen name in each)."""
    prefix = (
        Message("system", "Shared context."),
        Message("user", "Long shared doc."),
        Message("assistant", "Ok."),
    )
    branches = tuple(Branch((Turn(f"Q{i}?", Gen("ans", c, max_tokens=12)),)) for i in range(n))
    return WorkItem("fan/0", "t", "fanout", prefix, branches)


def chatml(messages: list[tuple[str, str]], add_generation_prompt: bool = True) -> str:
    """SmolLM2's own chat template, written out (ChatML + its default system prompt)."""
    out = ""
    if messages and messages[0][0] != "system":
        out += f"<|im_start|>system\n{SMOL_DEFAULT}<|im_end|>\n"
    for role, content in messages:
        out += f"<|im_start|>{role}\n{content}<|im_end|>\n"
    return out + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def canned(c: Constraint) -> str:
    """A constraint-valid answer."""
    if c.kind == "json_schema":
        return json.dumps({"name": "Ada", "age": 36})
    if c.kind == "regex":
        # Valid for the item regex and for choice alternations.
        m = re.fullmatch(r"\((.*?)\|.*\)", c.regex or "")
        return re.sub(r"\\(.)", r"\1", m.group(1)) if m else "555-0100"
    if c.kind == "grammar":
        return "yes"
    return "free text"


@dataclass
class FakeRuntime:
    """Implements the Runtime protocol with canned, constraint-valid answers.

    Attributes:
        fail_on: A substring; prompts containing it fail with an error result.
        delay_s: Time each request takes (lets concurrency show).
    """

    model_id: str = "fake-smollm2"
    context_length: int | None = 8192
    fail_on: str | None = None
    delay_s: float = 0.05
    requests: list[GenRequest] = field(default_factory=list)
    scored: list[tuple[str, list[str]]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def chat_prompt(self, messages: list[tuple[str, str]], add_generation_prompt: bool = True) -> str:
        return chatml(messages, add_generation_prompt)

    def submit(self, req: GenRequest) -> Future[GenResult]:
        fut: Future[GenResult] = Future()
        threading.Thread(target=self._run, args=(req, fut), daemon=True).start()
        return fut

    def _run(self, req: GenRequest, fut: Future[GenResult]) -> None:
        with self._lock:
            self.requests.append(req)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        t0 = time.perf_counter()
        time.sleep(self.delay_s / 2)
        t1 = time.perf_counter()
        time.sleep(self.delay_s / 2)
        t2 = time.perf_counter()
        with self._lock:
            self.in_flight -= 1
        if self.fail_on and self.fail_on in req.prompt:
            fut.set_result(GenResult("", 5, 0, "error", t0, None, t2, error="scripted failure"))
            return
        # The runtime returns the end-of-turn marker the way a decoder that keeps it would.
        text = canned(req.constraint) + "<|im_end|>"
        fut.set_result(
            GenResult(text, len(req.prompt.split()), 7, "stop", t0, t1, t2, (t1, t2), strategy="fake")
        )

    def score_choices(self, prompt: str, choices: list[str]) -> list[float]:
        self.scored.append((prompt, list(choices)))
        # Prefer the last choice, so a test can tell select from the regex strategy.
        return [-1.0 - (len(choices) - i) for i in range(len(choices))]

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def encode(self, text: str) -> list[int]:
        return [hash(w) for w in text.split()]

    def close(self) -> None:
        self.closed = True
