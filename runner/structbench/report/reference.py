"""Published reference figures for the grammar-backend matrix, as data with their sources.

Two sources, both about the grammar libraries that vLLM and SGLang embed:

- **JSONSchemaBench** (Geng et al., 2025, arXiv 2501.10868), Table 4 "Coverage of all the
  frameworks on JSONSchemaBench": declared coverage, empirical coverage and compliance rate
  per dataset and framework. Setting (the paper's section 5.1): Llama-3.2-1B-Instruct, a
  two-shot prompt, greedy decoding (temperature 0), one generation per schema, a 40 s limit
  on grammar compilation and another 40 s on generation, validation with Python
  ``jsonschema`` (Draft 2020-12, formats checked). The paper leaves out Github_trivial and
  Github_ultra, reports XGrammar on Snowplow as NA, and leaves out Gemini where it supports
  under 1 % of a dataset. Kept as printed, though two rows break the paper's own
  compliance = empirical / declared: Outlines on GitHub Easy (0.59 / 0.86, printed 0.83)
  and on Snowplow (0.36 / 0.95, printed 0.61).
- **MaskBench** (``maskbench/README.md`` of guidance-ai/jsonschemabench at commit ba103c73,
  the 2025-03-27 re-run): mask computation without an LLM, on 11,306 schemas, one CPU thread
  per engine, 15 min and 40 GiB per schema. TBM = time to compute one token mask, TTFM =
  time to the first mask (grammar compilation), both in microseconds; "passing" as MaskBench
  counts it (the rest hit a compile error, a crash, a timeout or a wrong mask).

Our figures come from another model (Qwen2.5-Coder-1.5B), other prompts and newer library
versions inside a serving engine, so these are a reference to read ours against, not a
target. The report shows a figure only where a variant's grammar backend maps to a published
framework (:data:`JSB_FRAMEWORK`, :data:`MASKBENCH_ENGINE`) and, for coverage, the subset
is one the paper measured; anything else shows nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "JSB_COVERAGE",
    "JSB_FRAMEWORK",
    "JSB_SOURCE",
    "MASKBENCH",
    "MASKBENCH_ENGINE",
    "MASKBENCH_SOURCE",
    "MaskFigure",
    "PublishedCoverage",
    "Source",
    "jsb_coverage",
    "maskbench_figure",
]


@dataclass(frozen=True, slots=True)
class Source:
    """Where a set of figures comes from: a short label for tables, and the full reference."""

    label: str
    reference: str
    setting: str


@dataclass(frozen=True, slots=True)
class PublishedCoverage:
    """One framework on one JSONSchemaBench subset (rates 0..1; None where the paper says NA)."""

    framework: str
    subset: str
    declared: float | None
    empirical: float | None
    compliance: float | None


@dataclass(frozen=True, slots=True)
class MaskFigure:
    """One engine in MaskBench: mask and compile time percentiles (µs), passing schemas."""

    engine: str
    version: str
    tbm_p50_us: float
    tbm_p99_us: float
    ttfm_p50_us: float
    ttfm_p99_us: float
    passing: int
    schemas: int


JSB_SOURCE = Source(
    label="JSONSchemaBench, Table 4 (arXiv 2501.10868)",
    reference=(
        "Geng et al., 2025, 'Generating Structured Outputs from Language Models: Benchmark and "
        "Studies', arXiv 2501.10868, Table 4"
    ),
    setting="Llama-3.2-1B-Instruct, two-shot prompt, greedy, one run; 40 s compile + 40 s generation limits",
)
MASKBENCH_SOURCE = Source(
    label="MaskBench (jsonschemabench ba103c73)",
    reference="guidance-ai/jsonschemabench, maskbench/README.md at commit ba103c73 (2025-03-27 re-run)",
    setting="no LLM: mask computation alone, 11,306 schemas, one CPU thread, 15 min / 40 GiB per schema",
)

#: Our backend names (vLLM ``--structured-outputs-config`` / SGLang ``--grammar-backend``)
#: to the paper's framework names. vLLM's ``guidance`` and SGLang's ``llguidance`` both
#: run llguidance, the library behind Guidance's JSON support.
JSB_FRAMEWORK: dict[str, str] = {
    "xgrammar": "XGrammar",
    "guidance": "Guidance",
    "llguidance": "Guidance",
    "outlines": "Outlines",
}
#: The same, to MaskBench's engine names (Outlines there is outlines-core, which the
#: engines' ``outlines`` backends compile with).
MASKBENCH_ENGINE: dict[str, str] = {
    "xgrammar": "XGrammar",
    "guidance": "LLGuidance",
    "llguidance": "LLGuidance",
    "outlines": "Outlines",
}

# Table 4, as (declared, empirical, compliance); datasets under the folder names of the
# dataset repository (data/<subset>/), which the paper prints as "GitHub Easy" and so on.
_NA = (None, None, None)
_TABLE_4: dict[str, dict[str, tuple[float | None, float | None, float | None]]] = {
    "Glaiveai2K": {
        "LM only": (1.00, 0.90, 0.90), "Guidance": (0.98, 0.96, 0.98), "Llamacpp": (0.98, 0.95, 0.97),
        "Outlines": (0.99, 0.95, 0.96), "XGrammar": (1.00, 0.93, 0.93), "OpenAI": (0.89, 0.89, 1.00),
        "Gemini": (0.86, 0.86, 1.00),
    },
    "Github_easy": {
        "LM only": (1.00, 0.65, 0.65), "Guidance": (0.90, 0.86, 0.96), "Llamacpp": (0.85, 0.75, 0.88),
        "Outlines": (0.86, 0.59, 0.83), "XGrammar": (0.91, 0.79, 0.87), "OpenAI": (0.30, 0.29, 0.97),
        "Gemini": (0.08, 0.07, 0.88),
    },
    "Snowplow": {
        "LM only": (1.00, 0.46, 0.46), "Guidance": (0.87, 0.82, 0.94), "Llamacpp": (0.92, 0.74, 0.81),
        "Outlines": (0.95, 0.36, 0.61), "XGrammar": _NA, "OpenAI": (0.21, 0.21, 1.00),
    },
    "Github_medium": {
        "LM only": (1.00, 0.38, 0.38), "Guidance": (0.79, 0.69, 0.87), "Llamacpp": (0.77, 0.57, 0.74),
        "Outlines": (0.72, 0.29, 0.40), "XGrammar": (0.79, 0.52, 0.66), "OpenAI": (0.13, 0.12, 0.92),
    },
    "Kubernetes": {
        "LM only": (1.00, 0.56, 0.56), "Guidance": (0.98, 0.91, 0.92), "Llamacpp": (0.98, 0.76, 0.78),
        "Outlines": (0.98, 0.57, 0.58), "XGrammar": (0.12, 0.07, 0.58), "OpenAI": (0.21, 0.21, 1.00),
    },
    "WashingtonPost": {
        "LM only": (1.00, 0.40, 0.40), "Guidance": (0.86, 0.86, 1.00), "Llamacpp": (0.97, 0.94, 0.97),
        "Outlines": (0.97, 0.22, 0.23), "XGrammar": (0.85, 0.64, 0.75), "OpenAI": (0.13, 0.13, 1.00),
    },
    "Github_hard": {
        "LM only": (1.00, 0.13, 0.13), "Guidance": (0.60, 0.41, 0.69), "Llamacpp": (0.61, 0.39, 0.63),
        "Outlines": (0.47, 0.03, 0.06), "XGrammar": (0.69, 0.28, 0.41), "OpenAI": (0.09, 0.09, 1.00),
    },
    "JsonSchemaStore": {
        "LM only": (1.00, 0.21, 0.21), "Guidance": (0.35, 0.30, 0.88), "Llamacpp": (0.54, 0.38, 0.69),
        "Outlines": (0.38, 0.09, 0.24), "XGrammar": (0.76, 0.33, 0.43), "OpenAI": (0.06, 0.06, 1.00),
    },
}  # fmt: skip

#: Every figure of Table 4, in the paper's order of datasets and frameworks.
JSB_COVERAGE: tuple[PublishedCoverage, ...] = tuple(
    PublishedCoverage(framework, subset, *rates)
    for subset, rows in _TABLE_4.items()
    for framework, rates in rows.items()
)

#: MaskBench's "Performance Metrics" table (TBM and TTFM p50/p99, passing of 11,306) and the
#: versions it lists. XGrammar.cpp is XGrammar fed llama.cpp's JSON-schema-to-grammar script.
MASKBENCH: tuple[MaskFigure, ...] = (
    MaskFigure("LLGuidance", "llguidance 0.7.10", 46, 533, 1_037, 17_988, 8_909, 11_306),
    MaskFigure("XGrammar", "xgrammar 0.1.17", 9, 5_687, 919_459, 900_000_000, 8_122, 11_306),
    MaskFigure("llama.cpp", "llama-cpp-python 0.3.8", 17_021, 60_371, 312, 28_558, 6_505, 11_306),
    MaskFigure("XGrammar.cpp", "xgrammar 0.1.17", 1_677, 381_153, 856_231, 65_476_826, 6_387, 11_306),
    MaskFigure("Outlines", "outlines-core 0.2.3", 34, 7_184, 587_900, 413_111_222, 7_050, 11_306),
)


def jsb_coverage(backend: str, subset: str) -> PublishedCoverage | None:
    """The paper's figure for a grammar backend on a subset; None when either is not in Table 4."""
    framework = JSB_FRAMEWORK.get(backend)
    return next((c for c in JSB_COVERAGE if c.framework == framework and c.subset == subset), None)


def maskbench_figure(backend: str) -> MaskFigure | None:
    """MaskBench's figures for a grammar backend; None when it maps to no MaskBench engine."""
    engine = MASKBENCH_ENGINE.get(backend)
    return next((m for m in MASKBENCH if m.engine == engine), None)
