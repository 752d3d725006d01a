"""Structured edits (workflow/definitions/edit.py): round trips that keep comments, order and
layout, change exactly what they say, and never let ruamel read what the strict loader refuses."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from workflow.definitions import edit
from workflow.definitions.build import load_flow
from workflow.errors import DefinitionError


@pytest.fixture
def flows(rules_flows):
    """The rules are tested on the frozen shipment (tests/data/flows/rules/shipment.yaml)."""
    return rules_flows


ROOT = Path(__file__).resolve().parents[2]
FILES = [
    *sorted((ROOT / "definitions").glob("*.yaml")),
    *sorted((ROOT / "tests" / "data" / "flows" / "valid").glob("*.yaml")),
]
SHIPMENT = (ROOT / "tests" / "data" / "flows" / "valid" / "shipment.yaml").read_text("utf-8")
EXPENSE = (ROOT / "definitions" / "expense.yaml").read_text("utf-8")


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="")
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_a_round_trip_without_change_gives_the_same_text(path: Path):
    text = path.read_text("utf-8")
    assert edit.set_transition_roles(text, 0, load_roles(text)) == text


def load_roles(text: str) -> list[str]:
    return list(edit.parts_of(text).transitions[0].roles)


def test_set_review_changes_one_line_and_keeps_comments():
    after = edit.set_review(SHIPMENT, "double_check", 3, ["sales_admin", "warehouse", "finance"])
    assert changed_lines(SHIPMENT, after) == [
        "-    review: {required: 2, roles: [sales_admin, warehouse]}",
        "+    review: {required: 3, roles: [sales_admin, warehouse, finance]}",
    ]
    assert "# 双人复核" in after and "# validated on create and edit" in after
    spec = load_flow(after, "shipment.yaml")
    review = spec.state("double_check").review
    assert review.required == 3 and review.roles == ("sales_admin", "warehouse", "finance")


def test_set_review_in_block_style():
    after = edit.set_review(EXPENSE, "manager_approval", 3, ["sales_manager", "gm", "finance"])
    assert changed_lines(EXPENSE, after)[-4:] == [
        "-      required: 2",
        "-      roles: [sales_manager, gm]",
        "+      required: 3",
        "+      roles: [sales_manager, gm, finance]",
    ]


def test_set_transition_roles():
    after = edit.set_transition_roles(SHIPMENT, 2, ["warehouse", "sales_admin"])
    assert changed_lines(SHIPMENT, after) == [
        "-  - {action: ship, from: approved, to: shipped, roles: [warehouse]}",
        "+  - {action: ship, from: approved, to: shipped, roles: [warehouse, sales_admin]}",
    ]


def test_set_field_label_required_and_choices():
    after = edit.set_field(SHIPMENT, "carrier", "承运方式", "Carrier", False, ["自提", "物流"])
    [removed, added] = changed_lines(SHIPMENT, after)
    assert removed == "-  carrier:   {type: choice, choices: [自提, 物流, 快递]}"
    assert added == (
        "+  carrier: {type: choice, label: {zh: 承运方式, en: Carrier}, choices: [自提, 物流]}"
    )
    field = load_flow(after, "shipment.yaml").field("carrier")
    assert field.label.zh == "承运方式" and field.choices == ("自提", "物流")
    required = edit.set_field(SHIPMENT, "ship_by", "发货日期", "Ship by", True)
    assert (
        load_flow(
            required.replace(
                "example: {customer: 安庆某医药公司,",
                'example: {ship_by: "2026-12-01", customer: 安庆某医药公司,',
            ),
            "shipment.yaml",
        )
        .field("ship_by")
        .required
    )


def test_set_field_keeps_a_block_label():
    after = edit.set_field(EXPENSE, "department", "部门", "Dept", False)
    assert changed_lines(EXPENSE, after) == [  # difflib groups the block; max_length is kept
        "-    required: true",
        "-    max_length: 60",
        "-    label: {zh: 部门, en: Department}",
        "+    required: false",
        "+    max_length: 60",
        "+    label: {zh: 部门, en: Dept}",
    ]


def test_an_edit_of_something_missing_is_refused():
    with pytest.raises(DefinitionError, match="`nowhere` is not in the definition"):
        edit.set_review(SHIPMENT, "nowhere", 2, ["gm"])
    with pytest.raises(DefinitionError, match="not a review state"):
        edit.set_review(SHIPMENT, "approved", 2, ["gm"])
    with pytest.raises(DefinitionError):
        edit.set_transition_roles(SHIPMENT, 99, ["gm"])


def test_ruamel_never_sees_what_the_strict_loader_refuses():
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\n" + SHIPMENT
    with pytest.raises(DefinitionError, match="anchor"):
        edit.set_review(bomb, "double_check", 2, ["gm"])


def test_parts_list_reviews_transitions_and_fields():
    parts = edit.parts_of(SHIPMENT)
    assert [(r.state, r.required) for r in parts.reviews] == [
        ("double_check", 2),
        ("gm_exception", 2),
    ]
    assert [t.action for t in parts.transitions] == ["submit", "submit", "ship"]
    carrier = next(f for f in parts.fields if f.name == "carrier")
    assert carrier.choices == ("自提", "物流", "快递") and carrier.type == "choice"


def test_guard_thresholds_are_listed_and_changed_in_place():
    [guard] = edit.parts_of(EXPENSE).guards
    assert (guard.key, guard.numbers) == ("r:receipt_check:0", ("5000.00",))
    after = edit.set_guard_numbers(EXPENSE, guard.key, ["8000.00"])
    assert changed_lines(EXPENSE, after) == [
        "-        when: 'amount > decimal(\"5000.00\")'",
        "+        when: 'amount > decimal(\"8000.00\")'",
    ]
    route = load_flow(after, "expense.yaml").state("receipt_check").on_approve[0]
    assert route.when.source == 'amount > decimal("8000.00")'


def test_a_bare_guard_number_keeps_its_quoting():
    [guard] = edit.parts_of(SHIPMENT).guards
    assert (guard.key, guard.numbers) == ("t:0", ("2",))
    after = edit.set_guard_numbers(SHIPMENT, "t:0", ["3"])
    assert 'when: "held_orders >= 3 || !paid"}' in after
    assert len(changed_lines(SHIPMENT, after)) == 2


@pytest.mark.parametrize("value", ["1e9", "-5", "5000; true", "", "１２"])
def test_a_guard_threshold_must_be_plain_digits(value):
    with pytest.raises(DefinitionError, match="is not a number"):
        edit.set_guard_numbers(SHIPMENT, "t:0", [value])


def test_a_choice_taken_out_takes_its_label_along():
    shipped = (Path(__file__).resolve().parents[2] / "definitions" / "shipment.yaml").read_text(
        encoding="utf-8"
    )
    after = edit.set_field(shipped, "carrier", "承运方式", "Carrier", True, ["自提", "物流"])
    field = load_flow(after, "shipment.yaml").field("carrier")
    assert field.choices == ("自提", "物流")
    assert dict(field.choice_labels).keys() == {"自提", "物流"}
    assert field.choice_text("物流", "en") == "Freight"
