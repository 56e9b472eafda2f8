"""The package's import graph: no cycles, and each stage imports only earlier ones.

The stages follow DESIGN.md's data flow (spec, kinds, engines, load, records, scoring,
metrics, report). grimp sees every import, at module level, inside functions and under
``TYPE_CHECKING``, so a cycle cannot hide behind a local import. Chains are followed
through every module in between: the report must not load the driver even indirectly.
"""

from __future__ import annotations

import functools

import grimp
import pytest

PKG = "structbench"

#: Cycles allowed to exist, each with its reason: none today. (The last one, spec.loader <->
#: kinds.schema_corpus, went when the loaded-task types moved to spec/loaded.py.)
KNOWN_CYCLES: dict[frozenset[str], str] = {}

#: Imports the layer rules may cross, each with its reason.
ALLOWED_EDGES: dict[tuple[str, str], str] = {
    ("structbench.spec.checks", "structbench.scoring.registry"): (
        "the spec checks scorer names at load time against the registry, a table of names that "
        "imports its scorers lazily"
    ),
}

#: Modules the layer rules ignore, each with its reason.
PURE_TABLES: dict[str, str] = {
    "structbench.engines.registry": (
        "the table of engine kinds ('module:Class' strings): the suite model is built from its spec "
        "classes; it imports no engine module until an engine is created"
    ),
    "structbench.engines.counters": (
        "engine-neutral names of the servers' cache counters: a table that imports nothing, which "
        "metrics applies to cell files written before engines translated their counters"
    ),
}

#: (importer, imported, why): no chain may lead from the first to the second.
FORBIDDEN: tuple[tuple[str, str, str], ...] = (
    ("structbench.report", "structbench.load.driver", "the report only reads"),
    ("structbench.report", "structbench.engines", "the report only reads"),
    ("structbench.report", "structbench.judge_phase", "the report only reads"),
    ("structbench.metrics", "structbench.report", "metrics come before the report"),
    ("structbench.metrics", "structbench.engines", "metrics are engine-neutral"),
    ("structbench.metrics", "structbench.load.driver", "metrics are pure reductions"),
    ("structbench.scoring", "structbench.engines", "scoring reads records; the judge phase drives"),
    ("structbench.scoring", "structbench.load.driver", "scoring reads records; the judge phase drives"),
    ("structbench.scoring", "structbench.metrics", "scoring comes before metrics"),
    ("structbench.scoring", "structbench.report", "scoring comes before the report"),
    ("structbench.engines", "structbench.scoring", "engines come before scoring"),
    ("structbench.engines", "structbench.metrics", "engines come before metrics"),
    ("structbench.engines", "structbench.report", "engines come before the report"),
    ("structbench.engines", "structbench.load", "the driver calls engines, not the other way"),
)


@functools.cache
def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(PKG)


def _cycles(graph: grimp.ImportGraph) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.find_modules_directly_imported_by(w)))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.add(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(frozenset(comp))
    return out


def _describe(graph: grimp.ImportGraph, comp: frozenset[str]) -> str:
    lines = []
    for a in sorted(comp):
        for b in sorted(graph.find_modules_directly_imported_by(a) & comp):
            where = ", ".join(str(d["line_number"]) for d in graph.get_import_details(importer=a, imported=b))
            lines.append(f"  {a} -> {b} (line {where})")
    return "\n".join(lines)


def test_no_import_cycles() -> None:
    graph = _graph()
    new = [c for c in _cycles(graph) if c not in KNOWN_CYCLES]
    report = "\n\n".join(f"cycle of {len(c)} modules:\n{_describe(graph, c)}" for c in new)
    assert not new, f"import cycles in {PKG}:\n{report}"


def test_known_cycles_still_exist() -> None:
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in _cycles(_graph())]
    assert not gone, f"these cycles are gone or changed: update KNOWN_CYCLES in {__file__}: {gone}"


def test_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for m in ("p.a", "p.b", "p.c", "p.d"):
        graph.add_module(m)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    graph.add_import(importer="p.c", imported="p.d")
    assert _cycles(graph) == [frozenset({"p.a", "p.b", "p.c"})]


def _layer_graph() -> grimp.ImportGraph:
    graph = grimp.build_graph(PKG)
    for importer, imported in ALLOWED_EDGES:
        graph.remove_import(importer=importer, imported=imported)
    for module in PURE_TABLES:
        graph.remove_module(module)
    return graph


@pytest.fixture(scope="module")
def layer_graph() -> grimp.ImportGraph:
    """The import graph without the allowed crossings."""
    return _layer_graph()


@pytest.mark.parametrize(
    ("importer", "imported", "why"), FORBIDDEN, ids=[f"{a}->{b}" for a, b, _ in FORBIDDEN]
)
def test_stage_imports_only_earlier_stages(
    layer_graph: grimp.ImportGraph, importer: str, imported: str, why: str
) -> None:
    chains = layer_graph.find_shortest_chains(importer=importer, imported=imported, as_packages=True)
    shown = "\n".join("  " + " -> ".join(c) for c in sorted(chains))
    assert not chains, f"{importer} must not import {imported} ({why}):\n{shown}"


def test_allowances_are_still_needed() -> None:
    graph = _graph()
    stale = [e for e in ALLOWED_EDGES if not graph.direct_import_exists(importer=e[0], imported=e[1])]
    stale += [m for m in PURE_TABLES if m not in graph.modules]
    assert not stale, f"remove these from {__file__}: {stale}"
