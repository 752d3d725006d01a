"""Graph questions about a flow's states, shared by the validator and the diagram.

A flow is a directed graph: states are nodes, and every way a document can move (a transition,
an `on_approve` route, an `on_reject`) is an edge. The validator asks which states are
reachable and which can still finish; the diagram asks how to lay the states out in layers.
Everything here is pure: plain dicts of state name → successor names in, sets and lists out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Edges = Mapping[str, Sequence[str]]


def edges_of_tree(
    states: Mapping[str, Any], expanded: Iterable[tuple[Any, str]]
) -> dict[str, list[str]]:
    """Successors of each state in a loaded (shape-checked) definition tree.

    `expanded` is the validator's list of (transition mapping, source state) pairs.
    """
    edges: dict[str, list[str]] = {name: [] for name in states}
    for item, source in expanded:
        edges[source].append(item["to"])
    for name, node in states.items():
        routes = node.get("on_approve")
        if isinstance(routes, str):
            edges[name].append(routes)
        elif routes:
            edges[name].extend(route["to"] for route in routes)
        if node.get("on_reject"):
            edges[name].append(node["on_reject"])
    return edges


def edges_of_spec(spec: Any) -> dict[str, list[str]]:
    """Successors of each state in a built FlowSpec."""
    edges: dict[str, list[str]] = {s.name: [] for s in spec.states}
    for t in spec.transitions:
        edges[t.source].append(t.dest)
    for state in spec.states:
        edges[state.name].extend(route.to for route in state.on_approve)
        if state.on_reject:
            edges[state.name].append(state.on_reject)
    return edges


def reachable(edges: Edges, start: str) -> set[str]:
    """Every state a document starting in `start` can get to (including `start`)."""
    if start not in edges:
        return set()
    seen = {start}
    queue = deque([start])
    while queue:
        for target in edges[queue.popleft()]:
            if target in edges and target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def reaching(edges: Edges, targets: Iterable[str]) -> set[str]:
    """Every state from which some state in `targets` can be reached (including the targets)."""
    incoming: dict[str, list[str]] = {name: [] for name in edges}
    for source, successors in edges.items():
        for target in successors:
            if target in incoming:
                incoming[target].append(source)
    seen = {t for t in targets if t in edges}
    queue = deque(seen)
    while queue:
        for source in incoming[queue.popleft()]:
            if source not in seen:
                seen.add(source)
                queue.append(source)
    return seen


def dead_ends(edges: Edges, finals: Iterable[str]) -> list[str]:
    """States with no way out that are not final, in definition order."""
    final = set(finals)
    return [name for name, successors in edges.items() if not successors and name not in final]


def trapped(
    edges: Edges, start: str, finals: Iterable[str], ignore: Iterable[str] = ()
) -> list[str]:
    """Reachable states from which no final state can ever be reached, in definition order.

    States in `ignore` (dead ends already reported on their own) count as exits, so a trap is
    what remains: states that only lead round in circles.
    """
    can_finish = reaching(edges, [*finals, *ignore])
    seen = reachable(edges, start)
    return [name for name in edges if name in seen and name not in can_finish]


def back_edges(edges: Edges, start: str) -> set[tuple[str, str]]:
    """Edges that close a cycle in a depth-first walk from `start` (then from the rest)."""
    colour: dict[str, int] = {}  # 1 = on the current path, 2 = done
    back: set[tuple[str, str]] = set()
    order = [start, *[n for n in edges if n != start]] if start in edges else list(edges)
    for root in order:
        if root in colour:
            continue
        colour[root] = 1
        stack = [(root, iter(edges[root]))]
        while stack:
            node, successors = stack[-1]
            for target in successors:
                if target not in edges:
                    continue
                if colour.get(target) == 1:
                    back.add((node, target))
                elif target not in colour:
                    colour[target] = 1
                    stack.append((target, iter(edges[target])))
                    break
            else:
                colour[node] = 2
                stack.pop()
    return back


def layers(edges: Edges, start: str) -> list[list[str]]:
    """States grouped in layers for drawing top to bottom: the longest forward path from
    `start` decides a state's layer, so every forward edge points down (cycles are cut at
    their back edges); within a layer, definition order."""
    back = back_edges(edges, start)
    forward = {n: [t for t in ts if t in edges and (n, t) not in back] for n, ts in edges.items()}
    indegree = {n: 0 for n in edges}
    for successors in forward.values():
        for target in successors:
            indegree[target] += 1
    depth = {n: 0 for n in edges}
    queue = deque(n for n in edges if indegree[n] == 0)
    while queue:
        node = queue.popleft()
        for target in forward[node]:
            depth[target] = max(depth[target], depth[node] + 1)
            indegree[target] -= 1
            if indegree[target] == 0:
                queue.append(target)
    grouped: dict[int, list[str]] = {}
    for name in edges:
        grouped.setdefault(depth[name], []).append(name)
    return [grouped[d] for d in sorted(grouped)]
