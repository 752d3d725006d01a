"""Graph questions (workflow/definitions/graph.py), the validator's named checks that use them,
and the SVG diagram drawn from the same graph."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest

from workflow.definitions import graph, validate
from workflow.definitions.build import load_flow, load_flow_file
from workflow.definitions.compile import clear_cache, compiled_from
from workflow.definitions.diagram import guard_in_words, render_svg
from workflow.errors import DefinitionError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "definitions").glob("*.yaml"))
SVG = "{http://www.w3.org/2000/svg}"

LOOP = {"draft": ["a"], "a": ["b"], "b": ["a"], "done": []}


def test_reachable_follows_edges_from_the_start():
    assert graph.reachable(LOOP, "draft") == {"draft", "a", "b"}
    assert graph.reachable(LOOP, "done") == {"done"}
    assert graph.reachable(LOOP, "nowhere") == set()


def test_reaching_walks_edges_backwards():
    edges = {"draft": ["a", "done"], "a": ["b"], "b": ["a"], "done": []}
    assert graph.reaching(edges, ["done"]) == {"draft", "done"}


def test_trapped_names_the_states_of_a_loop_without_exit():
    assert graph.trapped(LOOP, "draft", ["done"]) == ["draft", "a", "b"]
    edges = {"draft": ["a", "done"], "a": ["b"], "b": ["a"], "done": []}
    assert graph.trapped(edges, "draft", ["done"]) == ["a", "b"]


def test_trapped_counts_ignored_dead_ends_as_exits():
    edges = {"draft": ["hold", "done"], "hold": [], "done": []}
    assert graph.trapped(edges, "draft", ["done"]) == ["hold"]
    assert graph.trapped(edges, "draft", ["done"], ignore=["hold"]) == []


def test_dead_ends_are_non_final_states_without_successors():
    assert graph.dead_ends({"a": ["b"], "b": [], "c": []}, ["b"]) == ["c"]


def test_layers_put_every_forward_edge_downwards_and_cut_cycles():
    edges = {"draft": ["check", "cancel"], "check": ["draft", "ok"], "ok": [], "cancel": []}
    layers = graph.layers(edges, "draft")
    assert layers == [["draft"], ["check", "cancel"], ["ok"]]
    assert graph.back_edges(edges, "draft") == {("check", "draft")}


def test_layers_use_the_longest_path():
    edges = {"a": ["b", "c"], "b": ["c"], "c": []}
    assert graph.layers(edges, "a") == [["a"], ["b"], ["c"]]


def test_validation_checks_are_named_functions_in_one_list():
    names = [check.__name__ for check in validate.CHECKS]
    assert "_check_reachable" in names
    assert "_check_reaches_final" in names
    assert names.index("_check_transitions") < names.index("_check_reaches_final")


TRAP = """\
name: trap
title: Trap
fields:
  amount: {type: decimal, min: 0}
initial: draft
states:
  draft: {editable_by: [sales]}
  check:
    review: {required: 2, roles: [sales_admin]}
    on_approve: done
    on_reject: draft
  waiting: {}
  asking: {}
  done: {final: true}
transitions:
  - {action: submit, from: draft, to: check, roles: [sales]}
  - {action: park, from: draft, to: waiting, roles: [sales]}
  - {action: ask, from: waiting, to: asking, roles: [sales]}
  - {action: answer, from: asking, to: waiting, roles: [sales]}
example: {amount: "1.00"}
"""


def test_a_trap_loop_is_refused_naming_its_states():
    with pytest.raises(DefinitionError) as info:
        load_flow(TRAP)
    [problem] = info.value.problems
    assert problem.line == 12
    assert "`waiting`, `asking` can never reach a final state" in problem.message


def test_the_trap_is_accepted_once_it_has_a_way_out():
    fixed = (
        TRAP + ""
        if False
        else TRAP.replace(
            "  - {action: answer, from: asking, to: waiting, roles: [sales]}\n",
            "  - {action: answer, from: asking, to: waiting, roles: [sales]}\n"
            "  - {action: resume, from: asking, to: draft, roles: [sales]}\n",
        )
    )
    assert load_flow(fixed).name == "trap"


# --- the one cache of compiled flows ------------------------------------------------------------


def test_compiled_from_loads_the_spec_once_per_key():
    clear_cache()
    calls = []
    spec = load_flow_file(SHIPPED[0])

    def load():
        calls.append(1)
        return spec

    first = compiled_from("key-1", load)
    assert compiled_from("key-1", load) is first
    assert len(calls) == 1
    clear_cache()


# --- the diagram --------------------------------------------------------------------------------


def _svg(text: str) -> ElementTree.Element:
    return ElementTree.fromstring(text)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_the_diagram_names_every_state_and_is_well_formed_svg(path: Path):
    spec = load_flow_file(path)
    root = _svg(render_svg(spec, "zh"))
    assert root.tag == f"{SVG}svg"
    drawn = {g.get("data-state") for g in root.iter(f"{SVG}g")}
    assert drawn == {s.name for s in spec.states}
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for state in spec.states:
        assert state.label.zh in texts
    assert "style=" not in render_svg(spec, "zh")  # the CSP forbids inline styles


def test_the_diagram_shows_quorum_roles_and_guards_in_words():
    spec = load_flow_file(ROOT / "definitions" / "expense.yaml")
    svg = render_svg(spec, "zh")
    assert "复核：2 人" in svg
    assert "销售经理/总经理" in svg
    assert "报销总额" in svg and "&gt; 5000.00" in svg
    assert "decimal(" not in svg
    english = render_svg(spec, "en")
    assert "review: 2 people" in english


def test_the_diagram_highlights_the_current_state_and_the_path_so_far():
    spec = load_flow_file(ROOT / "definitions" / "expense.yaml")
    root = _svg(render_svg(spec, "zh", current="manager_approval", path=["draft", "receipt_check"]))
    classes = {g.get("data-state"): g.get("class") for g in root.iter(f"{SVG}g")}
    assert classes["manager_approval"] == "state current"
    assert classes["draft"] == "state visited"
    assert classes["paid"] == "state"
    walked = [
        (p.get("data-from"), p.get("data-to"))
        for p in root.iter(f"{SVG}path")
        if p.get("stroke-width") == "2.5"
    ]
    assert walked == [("draft", "receipt_check")]


def test_guard_in_words_uses_labels_and_words():
    spec = load_flow_file(ROOT / "definitions" / "shipment.yaml")
    words = guard_in_words("held_orders >= 2 || !paid", spec, "en")
    held, paid = spec.field("held_orders").label.en, spec.field("paid").label.en
    assert words == f"{held} ≥ 2 or not {paid}"
    assert guard_in_words('amount > decimal("5000.00") && paid', spec, "zh").endswith(
        f"> 5000.00 且 {spec.field('paid').label.zh}"
    )
