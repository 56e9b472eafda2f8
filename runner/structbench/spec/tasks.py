"""Task specs, one model per kind (the ``kind`` field picks it)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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
    """The ``datasets`` configuration name, if the dataset has several."""
    split: str = "train"
    """The ``datasets`` split to read."""
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
    """The example question (a template, like ``prompt``)."""
    assistant: str
    """Its answer, as the model should give it."""


class _TaskBase(_Frozen):
    name: str
    """Unique task name within the suite."""
    description: str = ""
    """Free text, shown in the report."""
    dataset: DatasetSpec = DatasetSpec(rows=({},))
    """Where the rows come from (below); default: one empty row."""
    system: str | None = None
    """System prompt template (Jinja2, sandboxed; the row is ``row``)."""
    prompt: str = ""
    """User message template."""
    few_shot: tuple[FewShot, ...] = ()
    """Worked examples sent before the question, as earlier chat turns."""
    max_tokens: int = Field(default=256, gt=0)
    """Most output tokens per call (checked against the server's context before a run sends load)."""
    temperature: float = Field(default=0.0, ge=0.0)
    """Sampling temperature (0 = greedy)."""
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
    """The pattern every output must match, in the subset engines compile (no lookaround or
    backreferences)."""
    canary: bool = False
    """A pattern the model would not follow unprompted: if outputs don't match, the run flags
    the constraint as not applied."""
    scorers: tuple[str, ...] = ("regex_match",)


class ChoiceTaskSpec(_TaskBase):
    """Output is one of a fixed list."""

    kind: Literal["choice"]
    choices: tuple[str, ...] = Field(min_length=2)
    """The answers to pick from (distinct, no edge whitespace)."""
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
    """The grammar files (below), relative to the task file."""
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


class SchemaCorpusTaskSpec(_TaskBase):
    """A corpus of JSON schemas, one work item per schema: constrained-decoding coverage.

    Rows come from ``schema_dir`` (one schema per ``*.json`` file) or from ``dataset``
    (a column holding a schema object or its JSON text), never both. A row without a
    prompt gets one written from the schema's title, description and property names
    (or from ``prompt``, when given, as a template over the row).
    """

    kind: Literal["schema_corpus"]
    schema_dir: str | None = None
    """Folder of schema files (``*.json``), relative to this file."""
    subsets_dir: str | None = None
    """A folder laid out like the JSONSchemaBench dataset repository, relative to this file:
    ``data/<subset>/*.json``, one raw schema per file (give the repository's root or its
    ``data/``). Each schema's subset is a reported dimension; no hub is needed."""
    subsets: tuple[str, ...] = ()
    """With ``subsets_dir``: only these subsets (folder names), in this order; all when empty."""
    limit_per_subset: int | None = Field(default=None, gt=0)
    """With ``subsets_dir``: use only the first N schemas (file-name order) of each subset."""
    subset_field: str | None = None
    """Dataset column naming each row's subset (optional; a hub dataset's config, say)."""
    index: str = "index.json"
    """Feature tags inside ``schema_dir``: ``{file: [feature, ...]}``. Files it doesn't
    list (or all, without the file) get the features detected from the schema."""
    examples: str = "examples.json"
    """Hand-made valid instances inside ``schema_dir``: ``{file: instance}`` (optional)."""
    schema_field: str = "schema"
    """Dataset column with the schema (an object, or JSON text)."""
    id_field: str | None = None
    """Dataset column with a schema id (the row number when unset)."""
    prompt_field: str = "prompt"
    """Dataset column with a prompt (optional per row)."""
    features_field: str = "features"
    """Dataset column with feature tags, a list or comma-separated text (optional per row)."""
    mode: Literal["constrained", "free"] = "constrained"
    """``free`` sends the same prompts without a constraint (the structured/free twin)."""
    unique_schemas: bool = False
    """Make every request's schema text unique (a distinct ``$comment``), so no engine can
    reuse a compiled grammar: the cost of an unseen schema."""
    repeats: int = Field(default=1, ge=1, le=16)
    """Send each schema this many times (all first copies, then all second ...); with 2
    or more, the report derives compile time from the first copy's extra TTFT."""
    pair: str | None = None
    """Name shared by the tasks of one comparison (constrained, free, unique); tasks
    without it pair by identical prompts."""
    limit: int | None = Field(default=None, gt=0)
    """Use only the first N schemas (file-name or dataset order)."""
    invalid_schemas: Literal["error", "skip", "count"] = "error"
    """A schema that fails meta-validation under its own ``$schema`` draft stops loading
    (``error``), is left out (``skip``), or is kept and reported (``count``: it is sent,
    and the coverage report counts it as "bad schema", with why, apart from the engine's
    failures; for third-party corpora such as JSONSchemaBench)."""
    max_tokens: int = Field(default=128, gt=0)
    scorers: tuple[str, ...] = ("json_parse", "schema_valid")

    @model_validator(mode="after")
    def _one_source(self) -> SchemaCorpusTaskSpec:
        # Compared by value, not by fields set, so a dumped spec validates again.
        given = self.dataset != DatasetSpec(rows=({},))
        sources = sum((self.schema_dir is not None, self.subsets_dir is not None, given))
        if sources > 1:
            raise ValueError("give one of schema_dir, subsets_dir or dataset")
        if sources == 0:
            raise ValueError(
                "give schema_dir (a folder of schema files), subsets_dir (data/<subset>/*.json) "
                "or a dataset with a schema column"
            )
        if self.subsets_dir is None and (self.subsets or self.limit_per_subset is not None):
            raise ValueError("subsets and limit_per_subset need subsets_dir")
        return self


class PrefixHitTaskSpec(_TaskBase):
    """Prompts built to reach a target prefix-cache hit rate at a given input length.

    Each prompt is ``input_len`` tokens of the rendered chat (counted with ``tokenizer``):
    a shared part, the same in every prompt of a group, then a part no other prompt
    starts with. The shared part is ``target_hit_rate`` of the prompt, so once a group's
    prefix is cached, every measured prompt finds that share of its tokens cached. Each
    group is primed first: one untimed warm-up request that shares the prefix and nothing
    after it, outside every measured figure. A list of targets is a sweep: one task (and
    so one cell per engine and load point) per target, named ``<name>-t<percent>``.
    """

    kind: Literal["prefix_hit"]
    target_hit_rate: float | tuple[float, ...]
    """Share of each prompt's tokens that is shared with its group, in [0, 1); a list sweeps."""
    input_len: int = Field(default=1024, gt=16)
    """Tokens per prompt, as the engine sees it (chat template included)."""
    groups: int = Field(default=1, gt=0)
    """Distinct shared prefixes; measured requests go round-robin over them (shuffled)."""
    tokenizer: str | None = None
    """A local model folder whose tokenizer and chat template count the tokens (the
    served model's; ``~`` and paths relative to this file work). Unset: an approximation
    (words and punctuation over ChatML), labelled as such in every item."""
    prompt: str = "Reply with one word."
    """The user message after the system message that holds the shared and unique text."""
    max_tokens: int = Field(default=8, gt=0)

    @field_validator("target_hit_rate")
    @classmethod
    def _targets_in_range(cls, value: float | tuple[float, ...]) -> float | tuple[float, ...]:
        targets = value if isinstance(value, tuple) else (value,)
        if not targets:
            raise ValueError("give at least one target")
        bad = [t for t in targets if not 0.0 <= t < 1.0]
        if bad:
            raise ValueError(f"targets must be in [0, 1) (a fraction, not a percentage), got {bad[0]}")
        if len(set(targets)) < len(targets):
            raise ValueError("a target is listed twice")
        return value

    @model_validator(mode="after")
    def _own_system(self) -> PrefixHitTaskSpec:
        # The system message is where the shared and unique text go: a template there
        # would change the shared share behind the target's back.
        if self.system is not None or self.few_shot:
            raise ValueError("a prefix_hit task writes its own system message; remove system and few_shot")
        return self

    @property
    def targets(self) -> tuple[float, ...]:
        """The target(s) as a tuple."""
        t = self.target_hit_rate
        return t if isinstance(t, tuple) else (t,)


TaskSpec = Annotated[
    JsonTaskSpec
    | RegexTaskSpec
    | ChoiceTaskSpec
    | GrammarTaskSpec
    | ChatTaskSpec
    | FanoutTaskSpec
    | PrefixHitTaskSpec
    | SchemaCorpusTaskSpec,
    Field(discriminator="kind"),
]
