"""Task specs, one model per kind (the ``kind`` field picks it)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatasetSpec(_Frozen):
    """Where rows come from: exactly one of ``path``, ``rows`` or ``hf``."""

    path: str | None = None
    """Local JSONL/JSON/CSV/parquet file, relative to the task file."""
    rows: tuple[dict[str, Any], ...] | None = None
    """Inline rows."""
    hf: str | None = None
    """Hugging Face ``datasets`` id (needs internet and the ``hf`` extra)."""
    hf_config: str | None = None
    split: str = "train"
    fields: dict[str, str] = Field(default_factory=dict)
    """Rename source columns: ``{name_used_in_templates: source_column}``."""
    limit: int | None = None
    """Use at most this many rows (after shuffling, if any)."""
    shuffle: bool = False


class FewShot(_Frozen):
    """A worked example placed before the question."""

    user: str
    assistant: str


class _TaskBase(_Frozen):
    name: str
    """Unique task name within the suite."""
    description: str = ""
    dataset: DatasetSpec = DatasetSpec(rows=({},))
    system: str | None = None
    """System prompt template (Jinja2, sandboxed; the row is ``row``)."""
    prompt: str = ""
    """User message template."""
    few_shot: tuple[FewShot, ...] = ()
    max_tokens: int = Field(default=256, gt=0)
    temperature: float = Field(default=0.0, ge=0.0)
    reference: str | None = None
    """Template for the reference answer (e.g. ``{{ row.answer | tojson }}``)."""
    scorers: tuple[str, ...] = ()
    """Scorer names; see ``structbench scorers``."""


class JsonTaskSpec(_TaskBase):
    """Output constrained by a JSON schema."""

    kind: Literal["json"]
    json_schema: str | dict[str, Any]
    """Path to a schema file (relative to this file), or the schema inline."""
    scorers: tuple[str, ...] = ("json_parse", "schema_valid")


class RegexTaskSpec(_TaskBase):
    """Output constrained by a regular expression."""

    kind: Literal["regex"]
    regex: str
    canary: bool = False
    """A pattern the model would not follow unprompted: if outputs don't match, the run flags
    the constraint as not applied."""
    scorers: tuple[str, ...] = ("regex_match",)


class ChoiceTaskSpec(_TaskBase):
    """Output is one of a fixed list."""

    kind: Literal["choice"]
    choices: tuple[str, ...] = Field(min_length=2)
    strategy: Literal["constrained", "select"] = "constrained"
    """``constrained``: decode under a regex alternation. ``select``: score each choice by
    logprob (SGLang's ``sgl.select``); engines without it record unsupported."""
    scorers: tuple[str, ...] = ("choice_valid",)


class GrammarFiles(_Frozen):
    """The same grammar in the syntaxes engines take."""

    lark: str | None = None
    """Lark grammar file (outlines, vLLM)."""
    gbnf: str | None = None
    """GBNF/EBNF grammar file (xgrammar: SGLang ``ebnf``, vLLM)."""


class GrammarTaskSpec(_TaskBase):
    """Output constrained by a context-free grammar."""

    kind: Literal["grammar"]
    grammar: GrammarFiles
    match_regex: str | None = None
    """Optional regex the output must fully match, used by ``regex_match`` scoring."""


class ChatTaskSpec(_TaskBase):
    """Multi-turn chat (MT-Bench question format: question_id, category, turns, reference)."""

    kind: Literal["chat"]
    turns_field: str = "turns"
    category_field: str = "category"
    reference_field: str = "reference"
    id_field: str = "question_id"
    category_temperature: dict[str, float] = Field(default_factory=dict)
    category_max_tokens: dict[str, int] = Field(default_factory=dict)
    scorers: tuple[str, ...] = ("final_number",)


class FanoutTaskSpec(_TaskBase):
    """Shared-prefix fan-out: G groups x M branches, each a question after one prefix."""

    kind: Literal["fanout"]
    groups: int = Field(default=4, gt=0)
    branches: int = Field(default=4, gt=0)
    prefix_file: str | None = None
    """A document used as the shared prefix (else a prefix of ``prefix_tokens`` is generated)."""
    prefix_tokens: int = Field(default=512, gt=0)
    question_tokens: int = Field(default=32, gt=0)
    order: Literal["ordered", "shuffled"] = "shuffled"
    popularity: Literal["uniform", "zipf"] = "uniform"
    zipf_s: float = 1.1
    as_fork: bool = True
    """One item with ``fork(branches)`` per group (True) or one item per branch (False)."""


TaskSpec = Annotated[
    JsonTaskSpec | RegexTaskSpec | ChoiceTaskSpec | GrammarTaskSpec | ChatTaskSpec | FanoutTaskSpec,
    Field(discriminator="kind"),
]
