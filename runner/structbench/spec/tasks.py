"""Task specs, one model per kind (the ``kind`` field picks it)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
    data_files: str | tuple[str, ...] | None = None
    """Files for a ``datasets`` builder (``hf: json``, ``csv``, ``parquet``), relative to
    the task file: lets ``datasets`` read local files."""
    fields: dict[str, str] = Field(default_factory=dict)
    """Name source columns for the templates: ``{name_used_in_templates: source_column}``
    (the source names stay available too)."""
    limit: int | None = None
    """Use at most this many rows (after shuffling, if any)."""
    shuffle: bool = False
    """Shuffle the rows before ``limit``, seeded by the suite seed and the task name."""


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
    """Column with the user messages of a row, in order (a list of strings)."""
    category_field: str = "category"
    """Column with the category (labels results; picks the per-category settings)."""
    reference_field: str = "reference"
    """Column with the reference answers, one per turn (``null`` where a turn has none)."""
    id_field: str = "question_id"
    """Column with the question id, used in item ids (the row number when absent)."""
    category_temperature: dict[str, float] = Field(default_factory=dict)
    """Temperature per category, overriding ``temperature``."""
    category_max_tokens: dict[str, int] = Field(default_factory=dict)
    """Token limit per category, overriding ``max_tokens``."""
    scorers: tuple[str, ...] = ("final_number",)

    @field_validator("prompt")
    @classmethod
    def _no_prompt(cls, value: str) -> str:
        # The turns are the user messages; a template around them would be silently unused.
        if value:
            raise ValueError("a chat task sends the turns of each row as written; remove prompt")
        return value


class FanoutTaskSpec(_TaskBase):
    """Shared-prefix fan-out: G groups x M branches, each a question after one prefix."""

    kind: Literal["fanout"]
    groups: int = Field(default=4, gt=0)
    """Number of shared prefixes (G)."""
    branches: int = Field(default=4, gt=0)
    """Questions per prefix (M)."""
    prefix_file: str | None = None
    """A document used as the shared prefix (else a prefix of ``prefix_tokens`` is generated)."""
    prefix_tokens: int = Field(default=512, gt=0)
    """Approximate length of a generated prefix, in tokens."""
    question_tokens: int = Field(default=32, gt=0)
    """Approximate length of a generated question (when the task has no ``prompt``)."""
    order: Literal["ordered", "shuffled"] = "shuffled"
    """Arrival order of per-branch items: group by group, or shuffled (seeded)."""
    popularity: Literal["uniform", "zipf"] = "uniform"
    """How often each group is asked: equally, or with Zipf weights (group 0 hottest)."""
    zipf_s: float = Field(default=1.1, gt=0)
    """Zipf exponent: weight of group g is ``1 / (g + 1) ** zipf_s``."""
    as_fork: bool = True
    """One item with ``fork(branches)`` per group (True) or one item per branch (False)."""


TaskSpec = Annotated[
    JsonTaskSpec | RegexTaskSpec | ChoiceTaskSpec | GrammarTaskSpec | ChatTaskSpec | FanoutTaskSpec,
    Field(discriminator="kind"),
]
