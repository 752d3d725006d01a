"""What a drafter sees: only the fields the first step is for."""

from __future__ import annotations

from dataclasses import dataclass

from workflow.definitions.spec import FieldSpec, FlowSpec


def creation_fields(spec: FlowSpec) -> tuple[FieldSpec, ...]:
    """The flow's fields minus those a later step fills (listed in `editable_fields` of a later
    state: payment reference, tracking no., bid result). A required field is always shown, so
    nobody is refused for a field they cannot see."""
    initial = spec.state(spec.initial)
    later = {
        name
        for state in spec.states
        if state.name != spec.initial
        for name in state.editable_fields
    } - set(initial.editable_fields)
    return tuple(f for f in spec.fields if f.name not in later or f.required)


@dataclass(frozen=True)
class SumPlan:
    """How the drafting form adds up a table live (the server stays the judge): each line is
    `qty` × `price`, or its `amount` column; the sum is compared with the `target` field."""

    qty: str = ""
    price: str = ""
    amount: str = ""
    target: str = ""


def sum_plans(fields: tuple[FieldSpec, ...]) -> dict[str, SumPlan]:
    """Table name → its plan, for the tables with quantity × unit price or an amount column
    (the same convention as the print page's line totals)."""
    shown = {f.name for f in fields}
    target = "amount" if "amount" in shown else ""
    plans = {}
    for field in fields:
        if field.type != "table":
            continue
        columns = {c.name: c for c in field.columns}
        if "qty" in columns and "unit_price" in columns:
            plans[field.name] = SumPlan(qty="qty", price="unit_price", target=target)
        elif "amount" in columns and columns["amount"].type == "decimal":
            plans[field.name] = SumPlan(amount="amount", target=target)
    return plans
