"""Flow definitions: strict YAML, shape, meaning, frozen specs and the compiled machine."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from transitions import MachineError

from workflow.definitions import loader
from workflow.definitions.build import load_flow, load_flow_file
from workflow.definitions.compile import clear_cache, compile_flow
from workflow.definitions.loader import MAX_DEFINITION_BYTES, MAX_DEPTH, load_yaml
from workflow.definitions.spec import FlowSpec, Label, Route, StateSpec, TransitionSpec
from workflow.errors import DefinitionError
from workflow.fields import clean_data, typed

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "flows"
VALID = sorted((DATA / "valid").glob("*.yaml"))
INVALID = sorted((DATA / "invalid").glob("*.yaml"))
SHIPPED = sorted((ROOT / "definitions").glob("*.yaml"))
EXPECT_RE = re.compile(r"# expect: (\d+): (.+)")


def problems_of(text: str, path: str = "<text>") -> list:
    with pytest.raises(DefinitionError) as info:
        load_flow(text, path)
    return info.value.problems


def messages(text: str, path: str = "<text>") -> str:
    return "\n".join(p.text for p in problems_of(text, path))


# --- the data-driven cases: one defect per file ---------------------------------------------


def test_the_data_folders_are_populated():
    assert len(INVALID) >= 60
    assert {p.name for p in VALID} >= {"shipment.yaml", "full_featured.yaml"}


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_definition_is_refused_on_the_expected_line(path: Path):
    header = path.read_text(encoding="utf-8").splitlines()[0]
    expected = EXPECT_RE.fullmatch(header)
    assert expected, f"{path.name}: first line must be `# expect: <line>: <message>`"
    line, fragment = int(expected[1]), expected[2]
    with pytest.raises(DefinitionError) as info:
        load_flow_file(path)
    problems = info.value.problems
    found = [str(p) for p in problems]
    assert any(p.line == line and fragment in p.message for p in problems), found
    # one defect per file: the message is the only one, so the file tests what it says
    assert len(problems) == 1, found
    assert all(p.path == str(path) for p in problems)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_definition_loads(path: Path):
    spec = load_flow_file(path)
    assert isinstance(spec, FlowSpec)
    assert spec.name == path.stem


@pytest.mark.skipif(not SHIPPED, reason="definitions/*.yaml not written yet")
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_definitions_load_and_their_example_is_valid(path: Path):
    spec = load_flow_file(path)
    assert spec.name == path.stem
    assert clean_data(spec.fields, spec.example) == spec.example
    compiled = compile_flow(spec, f"shipped:{path.name}")
    for state in spec.states:
        for action in compiled.actions_from(state.name):
            assert action in compiled.machine.events


# --- the YAML loader ---------------------------------------------------------------------------


def test_booleans_only_from_true_and_false():
    tree = load_yaml("a: yes\nb: no\nc: on\nd: off\ne: y\nf: n\ng: NO\nh: true\ni: false\n")
    assert tree == {
        "a": "yes",
        "b": "no",
        "c": "on",
        "d": "off",
        "e": "y",
        "f": "n",
        "g": "NO",
        "h": True,
        "i": False,
    }


def test_numbers_dates_and_nulls():
    tree = load_yaml(
        "money: 12800.10\nsmall: 0.005\nwhole: 42\nneg: -3\ndate: 2026-11-24\n"
        "quoted: '1.50'\nnothing: ~\nalso_nothing: null\nempty:\n"
    )
    assert tree["money"] == Decimal("12800.10")
    assert str(tree["money"]) == "12800.10"  # from the original text: trailing zero kept
    assert tree["small"] == Decimal("0.005")
    assert all(not isinstance(v, float) for v in tree.values())
    assert tree["whole"] == 42 and type(tree["whole"]) is int
    assert tree["neg"] == -3
    assert tree["date"] == "2026-11-24"
    assert tree["quoted"] == "1.50"
    assert tree["nothing"] is None and tree["also_nothing"] is None and tree["empty"] is None


def test_keys_are_always_text():
    tree = load_yaml("yes: 1\n1: 2\ntrue: 3\nnull: 4\n")
    assert list(tree) == ["yes", "1", "true", "null"]


def test_lines_are_recorded():
    tree = load_yaml(
        "# comment\nname: x\nstates:\n  draft:\n    editable_by: [a, b]\nlist:\n  - 1\n  - 2\n"
    )
    assert tree.line == 2
    assert tree.key_lines == {"name": 2, "states": 3, "list": 6}
    assert tree["states"].line == 4
    assert tree["states"]["draft"].key_lines["editable_by"] == 5
    assert tree["states"]["draft"]["editable_by"].line == 5
    assert tree["list"].item_lines == [7, 8]


def test_duplicate_key_names_both_lines():
    with pytest.raises(DefinitionError) as info:
        load_yaml("review:\n  required: 2\n  roles: [a]\n  required: 1\n", "f.yaml")
    (problem,) = info.value.problems
    assert problem.line == 4
    assert problem.message == "duplicate key `required` (first at line 2)"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: &x 1\nb: 2\n", "anchors (`&x`)"),
        ("a: *x\n", "aliases (`*x`)"),
        ("a:\n  <<: {b: 1}\n", "merge keys (`<<`)"),
        ("a: !!python/object:os.system x\n", "tags (`!!python/object:os.system`)"),
        ("a: !!python/name:os.system\n", "tags (`!!python/name:os.system`)"),
        ("a: !foo x\n", "tags (`!foo`)"),
        ("a: ! x\n", "tags (`!`)"),
        ("a: !!str 1\n", "tags (`!!str`)"),
        ("a: !!map {b: 1}\n", "tags (`!!map`)"),
        ("a: 1\n---\nb: 2\n", "a second YAML document"),
        ("", "the definition is empty"),
        ("# only a comment\n", "the definition is empty"),
        ("a: b: c\n", "the YAML does not parse"),
        ("? [a, b]\n: 1\n", "a key must be a plain name"),
        (f"a: {'9' * 50}\n", "is longer than 40 characters"),
    ],
)
def test_yaml_traps_are_refused(text: str, fragment: str):
    with pytest.raises(DefinitionError) as info:
        load_yaml(text, "t.yaml")
    assert fragment in str(info.value)


def test_control_characters_are_refused_with_their_line():
    with pytest.raises(DefinitionError) as info:
        load_yaml("a: 1\nb: x\x07y\n", "c.yaml")
    (problem,) = info.value.problems
    assert (problem.line, problem.message) == (2, "the text contains the control character U+0007")


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("from: draft", "from: 5", "`from` of transition `submit` must be a state, a list of"),
        ("from: draft", "from: []", "`from` of transition `submit` is an empty list"),
        ("title: Minimal", "title: {cn: 最小}", "unknown key `cn` in `title` of the flow"),
        ("title: Minimal", "title: 12", "`title` of the flow must be text or `{zh: …, en: …}`"),
        ("states:\n", "states: [a]\nold_states:\n", "`states` must be a mapping"),
        ("required: 2,", "required: 2.0,", "must be a whole number, not `2.0`"),
        ("transitions:\n", "transitions: 5\nold:\n", "`transitions` must be a list"),
        ('example: {amount: "1.00"}', "example: [1]", "`example` must be a mapping"),
    ],
)
def test_shape_messages(old: str, new: str, fragment: str):
    assert old in MINIMAL
    assert fragment in messages(MINIMAL.replace(old, new, 1))


def test_a_quoted_merge_key_is_plain_text():
    assert load_yaml("'<<': 1\n") == {"<<": 1}


def test_the_loader_never_uses_yaml_load():
    for source in (ROOT / "workflow").rglob("*.py"):
        assert not re.search(r"yaml\.load\(", source.read_text(encoding="utf-8")), source
        assert "CSafeLoader" not in source.read_text(encoding="utf-8"), source
        assert "CLoader" not in source.read_text(encoding="utf-8"), source


ALIAS_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [{','.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_alias_bomb_is_refused_fast():
    assert len(ALIAS_BOMB.encode()) < 500
    started = time.perf_counter()
    with pytest.raises(DefinitionError) as info:
        load_flow(ALIAS_BOMB)
    assert time.perf_counter() - started < 0.5
    assert info.value.problems[0].line == 1
    assert "anchors" in info.value.problems[0].message


def test_oversized_text_is_refused_before_parsing():
    text = "name: big\n" + "# padding padding padding padding padding padding\n" * 1400
    assert len(text.encode()) > MAX_DEFINITION_BYTES
    with pytest.raises(DefinitionError) as info:
        load_flow(text)
    assert "at most 65536 are accepted" in str(info.value)


def test_oversized_is_measured_in_utf8_bytes():
    text = "name: big\ndescription: " + "审" * 22000 + "\n"  # 22,000 characters, 66,000 bytes
    assert len(text) < MAX_DEFINITION_BYTES < len(text.encode())
    with pytest.raises(DefinitionError, match="bytes; at most"):
        load_flow(text)


def test_oversized_file_is_refused_without_reading_it_whole(tmp_path: Path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (10 * MAX_DEFINITION_BYTES))
    with pytest.raises(DefinitionError, match="larger than"):
        load_flow_file(path)


def test_non_utf8_file_is_refused(tmp_path: Path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: x\ntitle: caf\xe9\n".encode("latin-1"))
    with pytest.raises(DefinitionError) as info:
        load_flow_file(path)
    assert info.value.problems[0].line == 2
    assert "not UTF-8" in info.value.problems[0].message


@pytest.mark.parametrize("opener", ["[", "{a: "])
def test_50000_deep_nesting_is_refused_in_process(opener: str):
    # 100 KB: the C loader segfaults on this and the Python composer hits RecursionError.
    closer = "]" if opener == "[" else "}"
    text = opener * 50_000 + closer * 50_000
    started = time.perf_counter()
    with pytest.raises(DefinitionError):
        load_flow(text)
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    "text",
    [
        "[" * 30_000 + "]" * 30_000,  # under the size limit: the pre-scan refuses it
        "a: " + "[" * 30_000 + "]" * 30_000,
        "".join(" " * (2 * depth) + f"k{depth}:\n" for depth in range(MAX_DEPTH + 5)),
        "".join(" " * (2 * depth) + "- \n" for depth in range(MAX_DEPTH + 5)) + "x\n",
        "- " * (MAX_DEPTH + 5) + "x\n",
    ],
    ids=["flow", "flow-after-key", "block-mappings", "block-sequences", "compact-sequences"],
)
def test_deep_nesting_under_the_size_limit_is_refused(text: str):
    assert len(text.encode()) <= MAX_DEFINITION_BYTES
    started = time.perf_counter()
    with pytest.raises(DefinitionError, match="nested more than 20 levels deep"):
        load_yaml(text, "deep.yaml")
    assert time.perf_counter() - started < 1


def test_composer_enforces_the_depth_limit_even_without_the_prescan(monkeypatch):
    monkeypatch.setattr(loader, "_prescan", lambda text: None)
    with pytest.raises(DefinitionError, match="nested more than 20 levels deep"):
        load_yaml("[" * 30_000 + "]" * 30_000)
    with pytest.raises(DefinitionError, match="nested more than 20 levels deep"):
        load_yaml("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert load_yaml("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)) is not None


def test_prescan_ignores_brackets_in_text():
    text = (
        'a: "[[[[[[[[[[[[[[[[[[[[[[[[[[[[["\n'
        "b: '{{{{{{{{{{{{{{{{{{{{{{{{{{{{{'\n"
        "c: x[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n"
        "d: |\n  [[[[[[[[[[[[[[[[[[[[[[[[[[[[\n  {{{{{{{{{{{{{{{{{{{{{{{{{{{{\n"
        "e: [a, b, {c: d}]  # [[[[[[[[[[[[[[[[[[[[[[[[\n"
        "f: don't [[[[[[[[[[[[[[[[[[[[[[[[[\n"
    )
    tree = load_yaml(text)
    assert tree["c"].startswith("x[[")
    assert tree["e"] == ["a", "b", {"c": "d"}]


# --- rules that need more than one line to show ------------------------------------------------

MINIMAL = """\
name: minimal
title: Minimal
fields:
  amount: {type: decimal, required: true, min: 0}
  paid: {type: boolean, default: false}
initial: draft
states:
  draft: {editable_by: [sales_admin]}
  check:
    review: {required: 2, roles: [sales_admin, finance]}
    on_approve: done
    on_reject: draft
  done: {final: true}
transitions:
  - {action: submit, from: draft, to: check, roles: [sales_admin]}
example: {amount: "1.00"}
"""


def test_minimal_flow_loads():
    spec = load_flow(MINIMAL)
    assert spec.name == "minimal"
    assert [s.name for s in spec.states] == ["draft", "check", "done"]


def test_name_must_match_the_file_stem():
    assert load_flow(MINIMAL, "<text>").name == "minimal"
    assert load_flow(MINIMAL, "/some/where/minimal.yaml").name == "minimal"
    problems = problems_of(MINIMAL, "/some/where/other.yaml")
    assert [(p.line, p.message) for p in problems] == [
        (1, "the flow is named `minimal` but its file is `other.yaml`")
    ]


def test_many_problems_are_collected_and_sorted_by_line():
    text = (
        MINIMAL.replace("roles: [sales_admin, finance]", "roles: [sales_admin, finace]")
        .replace("required: 2", "required: 1")
        .replace("to: check", "to: chek")
        .replace('amount: "1.00"', 'amount: "1.001"')
    )
    problems = problems_of(text)
    lines = [p.line for p in problems]
    assert lines == sorted(lines)
    joined = "\n".join(p.message for p in problems)
    assert "unknown role `finace` in the review of state `check`; did you mean `finance`?" in joined
    assert "requires 1 approval(s)" in joined
    assert "unknown state `chek` in transition `submit`; did you mean `check`?" in joined
    assert "example: amount: has more than 2 decimal places" in joined


def test_shape_problems_are_all_reported_before_meaning():
    text = MINIMAL.replace("title: Minimal\n", "titel: Minimal\n").replace(
        "{type: boolean, default: false}", "{type: boolean, default: false, places: 2}"
    )
    joined = messages(text)
    assert "unknown key `titel` in the definition; did you mean `title`?" in joined
    assert "the definition has no `title`" in joined
    assert "`places` does not apply to field `paid`" in joined


def test_problems_carry_hints():
    (problem,) = problems_of(MINIMAL.replace("required: 2", "required: 1"))
    assert problem.hint == "set `required: 2` or more"
    assert problem.as_dict() == {"line": 10, "message": problem.text}


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n", "true", "false", "null"])
def test_yaml_words_are_refused_as_state_names(word: str):
    text = MINIMAL.replace("  done: {final: true}", f"  {word}: {{final: true}}").replace(
        "on_approve: done", f"on_approve: '{word}'"
    )
    assert f"`{word}` cannot be a state name" in messages(text)


@pytest.mark.parametrize(
    "action", ["approve", "reject", "edit", "create", "state", "trigger", "delete"]
)
def test_reserved_action_names(action: str):
    text = MINIMAL.replace("action: submit", f"action: {action}")
    assert f"`{action}` is reserved and cannot be an action name" in messages(text)


@pytest.mark.parametrize("action", ["to_done", "is_done", "may_submit"])
def test_reserved_action_prefixes(action: str):
    text = MINIMAL.replace("action: submit", f"action: {action}")
    assert f"`{action}` cannot be an action name: names starting with" in messages(text)


def test_a_state_may_not_be_named_like_a_machine_method():
    text = MINIMAL.replace("  done: {final: true}", "  to_done: {final: true}").replace(
        "on_approve: done", "on_approve: to_done"
    )
    assert "`to_done` cannot be a state name" in messages(text)


def test_star_expands_to_every_non_final_non_review_state():
    spec = load_flow_file(DATA / "valid" / "full_featured.yaml")
    cancels = [t for t in spec.transitions if t.action == "cancel"]
    assert [t.source for t in cancels] == ["draft", "ready", "on_hold"]
    assert {t.line for t in cancels} == {81}


def test_from_lists_expand_in_definition_order():
    spec = load_flow_file(DATA / "valid" / "full_featured.yaml")
    actions = [(t.action, t.source) for t in spec.transitions]
    assert actions[:3] == [("submit", "draft"), ("hold", "ready"), ("hold", "draft")]


def test_build_fills_in_labels_routes_and_decimal_bounds():
    spec = load_flow_file(DATA / "valid" / "full_featured.yaml")
    ready = spec.state("ready")
    assert ready.label == Label("ready", "ready")
    assert spec.state("draft").label == Label("草稿", "草稿")
    assert spec.title == Label("全功能", "全功能")
    first = spec.state("first_check")
    assert [r.to for r in first.on_approve] == ["gm_check", "ready"]
    assert first.on_approve[0].when is not None and first.on_approve[1].when is None
    assert spec.state("gm_check").on_approve == (Route("ready"),)
    assert spec.state("gm_check").review.allow_earlier_reviewers is True
    amount = spec.field("amount")
    assert amount.max == Decimal("9999999.99") and isinstance(amount.min, Decimal)
    rate = spec.field("rate")
    assert rate.places == 4 and rate.min == Decimal("-1.5") and rate.default == "0.0125"
    assert spec.field("carrier").default == "物流"
    assert spec.field("held_orders").max == 99 and type(spec.field("held_orders").max) is int
    items = spec.field("items")
    assert [c.name for c in items.columns] == ["product", "qty", "unit_price"]
    assert items.min_rows == 1 and items.max_rows == 50
    submit = spec.transitions[0]
    assert submit.label == Label("提交", "Submit")
    assert [c.message.en for c in submit.checks] == [
        "The amount does not add up",
        "`size(items) > 0` does not hold",
    ]
    assert spec.overdue is not None and spec.overdue.field == "refund_due"
    assert spec.example["amount"] == "12800.00"
    assert spec.example["items"][1]["unit_price"] == "37.00"


def test_a_valid_load_is_frozen():
    spec = load_flow_file(DATA / "valid" / "shipment.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.states[0].editable_by = ("gm",)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.state("double_check").review.required = 1  # type: ignore[union-attr,misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.transitions[0].dest = "shipped"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.fields[0].required = False  # type: ignore[misc]
    assert isinstance(spec.states, tuple) and isinstance(spec.transitions, tuple)
    assert all(isinstance(s, StateSpec) for s in spec.states)
    assert all(isinstance(t, TransitionSpec) for t in spec.transitions)


def test_the_contract_example_builds_as_documented():
    spec = load_flow_file(DATA / "valid" / "shipment.yaml")
    assert spec.title == Label("发货", "Shipment")
    assert spec.state("double_check").review.required == 2
    assert spec.state("double_check").on_approve == (Route("approved"),)
    submits = spec.transitions_from("draft")
    assert [t.dest for t in submits] == ["gm_exception", "double_check"]
    assert submits[0].when is not None and submits[0].when.source == "held_orders >= 2 || !paid"
    assert submits[0].line == 25
    assert spec.field("amount").min == Decimal(0)
    assert spec.field("items").columns[1].min == 1


# --- the compiled machine -------------------------------------------------------------------


@pytest.fixture
def shipment():
    clear_cache()
    spec = load_flow_file(DATA / "valid" / "shipment.yaml")
    return spec, compile_flow(spec, "shipment-test")


def data_for(spec: FlowSpec, **values):
    return typed(spec.fields, clean_data(spec.fields, {**spec.example, **values}))


def dest(resolution):
    return resolution.dest if resolution is not None else None


def test_resolve_agrees_with_the_machine():
    """The one resolver reads the machine's table: firing the machine lands where it says."""
    for path in [
        *sorted((ROOT / "definitions").glob("*.yaml")),
        DATA / "valid" / "full_featured.yaml",
    ]:
        spec = load_flow_file(path)
        compiled = compile_flow(spec, f"agree-{path.name}")
        changes = (("paid", False), ("held_orders", 3), ("amount", "9000.00"))
        variants = [data_for(spec)] + [
            data_for(spec, **{name: value}) for name, value in changes if spec.field(name)
        ]
        for state in spec.states:
            for action in compiled.machine.get_triggers(state.name):
                for data in variants:

                    class Probe:
                        pass

                    probe = Probe()
                    compiled.machine.add_model(probe, initial=state.name)
                    try:
                        moved = probe.trigger(action, data=data, today=None)
                        fired = probe.state if moved else None
                    except MachineError:
                        fired = None
                    finally:
                        compiled.machine.remove_model(probe)
                    assert dest(compiled.resolve(action, state.name, data)) == fired, (
                        path.name,
                        state.name,
                        action,
                    )


def test_compile_is_cached_per_key(shipment):
    spec, compiled = shipment
    assert compile_flow(spec, "shipment-test") is compiled
    machine = compiled.machine
    compiled.resolve("submit", "draft", data_for(spec))
    assert compiled.machine is machine
    assert compile_flow(spec, "another-version") is not compiled


def test_no_to_state_triggers(shipment):
    spec, compiled = shipment
    assert not [e for e in compiled.machine.events if e.startswith("to_")]
    assert set(compiled.machine.events) == {"submit", "ship", "approve", "reject"}
    assert dest(compiled.resolve("to_approved", "draft", data_for(spec))) is None


def test_a_trigger_cannot_fire_from_an_undeclared_state(shipment):
    spec, compiled = shipment
    data = data_for(spec)
    assert dest(compiled.resolve("ship", "draft", data)) is None
    assert dest(compiled.resolve("approve", "draft", data)) is None
    assert dest(compiled.resolve("submit", "double_check", data)) is None
    assert dest(compiled.resolve("submit", "shipped", data)) is None
    assert compiled.resolve("ship", "draft", data) is None

    class Doc:
        pass

    doc = Doc()
    compiled.machine.add_model(doc, initial="draft")
    try:
        with pytest.raises(MachineError):
            doc.ship(data=data)
        assert not hasattr(doc, "to_approved")
        assert doc.state == "draft"
    finally:
        compiled.machine.remove_model(doc)


def test_guards_choose_the_route(shipment):
    spec, compiled = shipment
    assert dest(compiled.resolve("submit", "draft", data_for(spec))) == "double_check"
    assert dest(compiled.resolve("submit", "draft", data_for(spec, paid=False))) == "gm_exception"
    assert (
        dest(compiled.resolve("submit", "draft", data_for(spec, held_orders=2))) == "gm_exception"
    )
    chosen = compiled.resolve("submit", "draft", data_for(spec, held_orders=2)).transition
    assert chosen is not None and chosen.dest == "gm_exception" and chosen.line == 25
    chosen = compiled.resolve("submit", "draft", data_for(spec)).transition
    assert chosen is not None and chosen.dest == "double_check"


def test_review_states_have_approve_and_reject(shipment):
    spec, compiled = shipment
    data = data_for(spec)
    assert compiled.actions_from("double_check") == ("approve", "reject")
    assert compiled.actions_from("draft") == ("submit",)
    assert compiled.actions_from("shipped") == ()
    assert dest(compiled.resolve("approve", "double_check", data)) == "approved"
    assert dest(compiled.resolve("reject", "gm_exception", data)) == "draft"
    assert dest(compiled.resolve("ship", "approved", data)) == "shipped"
    for state in spec.states:
        assert set(compiled.actions_from(state.name)) == set(
            compiled.machine.get_triggers(state.name)
        )


def test_on_approve_routes_follow_their_guards():
    spec = load_flow_file(DATA / "valid" / "full_featured.yaml")
    compiled = compile_flow(spec, "full-featured-test")
    small = data_for(spec, amount="1700.00", paid=True, items=[spec.example["items"][0]])
    assert dest(compiled.resolve("approve", "first_check", small)) == "ready"
    assert dest(compiled.resolve("approve", "first_check", data_for(spec))) == "gm_check"
    held = data_for(spec, held_orders=2)
    assert dest(compiled.resolve("hold", "draft", held)) == "on_hold"
    assert dest(compiled.resolve("hold", "draft", data_for(spec, held_orders=0))) is None
    assert dest(compiled.resolve("cancel", "on_hold", held)) == "cancelled"
    assert dest(compiled.resolve("cancel", "first_check", held)) is None
    assert compiled.actions_from("ready") == ("hold", "finish", "cancel")


def test_resolve_is_safe_from_many_threads(shipment):
    spec, compiled = shipment
    paid, unpaid = data_for(spec), data_for(spec, paid=False)
    errors: list[str] = []

    def work(data, expected):
        for _ in range(200):
            got = dest(compiled.resolve("submit", "draft", data))
            if got != expected:
                errors.append(f"{got} != {expected}")

    threads = [threading.Thread(target=work, args=(paid, "double_check")) for _ in range(4)] + [
        threading.Thread(target=work, args=(unpaid, "gm_exception")) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert compiled.machine.models == []


def test_choice_labels_must_label_listed_choices():
    shipment_text = (ROOT / "definitions" / "shipment.yaml").read_text(encoding="utf-8")
    text = shipment_text.replace(
        "    choice_labels: {自提: Customer pickup, 物流: Freight, 快递: Express courier}\n",
        "    choice_labels: {自提: Customer pickup, 海运: Sea freight}\n",
    )
    assert text != shipment_text
    with pytest.raises(DefinitionError) as caught:
        load_flow(text)
    assert "`海运` in `choice_labels` of field `carrier` is not one of its choices" in str(
        caught.value
    )
    spec = load_flow(shipment_text)
    carrier = spec.field("carrier")
    assert carrier.choice_text("物流", "en") == "Freight"
    assert carrier.choice_text("物流", "zh") == "物流"
    assert carrier.choice_text("海运", "en") == "海运"  # unlabelled: as stored


def test_a_remembered_guard_result_never_answers_for_other_values():
    """Guards remember results by the exact values they read (and the day): a repeat is
    answered from memory, but True is not 1, 5000.0 is not 5000.00, and another day is asked
    again."""
    import datetime as dt
    from decimal import Decimal

    from workflow import guards

    flag = guards.compile_guard("paid == true", ["paid"])
    assert flag.evaluate({"paid": True}) and not flag.evaluate({"paid": 1})
    assert flag.evaluate({"paid": True})  # from memory
    text = guards.compile_guard('string(amount) == "5000.0"', ["amount"])
    assert text.evaluate({"amount": Decimal("5000.0")})
    assert not text.evaluate({"amount": Decimal("5000.00")})
    day = guards.compile_guard('today >= "2026-12-01"', [])
    assert not day.evaluate({}, dt.date(2026, 11, 30))
    assert day.evaluate({}, dt.date(2026, 12, 1))
    lines = guards.compile_guard("size(lines) > 1", ["lines"])
    assert not lines.evaluate({"lines": [{"qty": 1}]})
    assert lines.evaluate({"lines": [{"qty": 1}, {"qty": 2}]})
    assert len(lines._memo) == 2
    many = guards.compile_guard("qty > 3", ["qty"])
    for n in range(guards.MEMO_SIZE + 10):
        assert many.evaluate({"qty": n}) is (n > 3)
    assert len(many._memo) <= guards.MEMO_SIZE  # bounded
