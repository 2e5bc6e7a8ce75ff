"""gewtui's modules import one another without circles: every import statement (including
the ones inside functions and under TYPE_CHECKING) is an edge, and the graph has no cycle.

A circle means two modules are one in disguise; a newcomer cannot read either first."""
from __future__ import annotations

import grimp


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    mods = sorted(m for m in graph.modules if m == "gewtui" or m.startswith("gewtui."))
    edges = {m: sorted(x for x in graph.find_modules_directly_imported_by(m)
                       if x == "gewtui" or x.startswith("gewtui.")) for m in mods}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in mods:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(edges[w])))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _edges_within(graph: grimp.ImportGraph, comp: list[str]) -> list[str]:
    return [f"{a} -> {b} (line {d['line_number']}: {d['line_contents']})"
            for a in comp for b in comp if a != b
            for d in graph.get_import_details(importer=a, imported=b)]


def test_the_package_import_graph_has_no_cycle():
    graph = grimp.build_graph("gewtui", cache_dir=None)
    assert len(graph.modules) > 50   # the whole package was read
    cycles = _cycles(graph)
    assert cycles == [], "\n".join(line for c in cycles for line in _edges_within(graph, c))


def test_the_cycle_finder_finds_a_circle():
    # The finder itself: a graph with a circle of three and a tail yields exactly that circle.
    g = grimp.ImportGraph()
    for m in ("gewtui", "gewtui.a", "gewtui.b", "gewtui.c", "gewtui.d"):
        g.add_module(m)
    for a, b in (("gewtui.a", "gewtui.b"), ("gewtui.b", "gewtui.c"), ("gewtui.c", "gewtui.a"),
                 ("gewtui.d", "gewtui.a")):
        g.add_import(importer=a, imported=b)
    assert _cycles(g) == [["gewtui.a", "gewtui.b", "gewtui.c"]]
