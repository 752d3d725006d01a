"""Money and other field values: refused when wrong, never rounded, stored exactly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.workflow.test_review import SHIPMENT
from workflow import services
from workflow.definitions.spec import FieldSpec, Label
from workflow.errors import InvalidData
from workflow.fields import FieldError, clean_data, parse_decimal
from workflow.models import Document


@pytest.fixture
def flows(rules_flows):
    """The rules are tested on the frozen shipment (tests/data/flows/rules/shipment.yaml)."""
    return rules_flows


MONEY = FieldSpec(name="amount", type="decimal", label=Label("金额", "Amount"), required=True)


@pytest.mark.parametrize(
    "value",
    [
        "0.005",
        "12.345",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "inf",
        "１２３",
        "１２.５０",
        "1e3",
        "12,800.00",
        "",
        " ",
        "0x10",
        "99999999999999.99",
        True,
        None,
        [],
        1.5,
    ],
)
def test_bad_money_is_refused_not_rounded(value) -> None:
    with pytest.raises(FieldError):
        parse_decimal(value)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("12800", "12800.00"),
        ("0.01", "0.01"),
        (12800, "12800.00"),
        (Decimal("7.5"), "7.50"),
        ("9999999999999.99", "9999999999999.99"),
        (" 3.10 ", "3.10"),
    ],
)
def test_good_money_is_kept_exactly(value, stored) -> None:
    assert clean_data([MONEY], {"amount": value}) == {"amount": stored}


def test_negative_money_is_refused_unless_the_field_allows_it() -> None:
    with pytest.raises(InvalidData) as info:
        clean_data([MONEY], {"amount": "-1.00"})
    assert "at least 0" in info.value.errors["amount"][0]


def test_unknown_and_missing_fields_are_named() -> None:
    with pytest.raises(InvalidData) as info:
        clean_data([MONEY], {"amout": "1.00"})
    assert set(info.value.errors) == {"amout", "amount"}


@pytest.mark.parametrize("amount", ["0.01", "12800.00", "9999999999999.99", "1234567.89"])
def test_money_round_trips_exactly_through_the_database(session, flows, people, amount) -> None:
    data = {
        **SHIPMENT,
        "amount": amount,
        "items": [{"product": "样品", "qty": 1, "unit_price": amount}],
    }
    doc_id = services.create_document(session, people["zhang"], "shipment", data).document.id
    session.expire_all()
    stored = session.get(Document, doc_id).data
    assert stored["amount"] == amount
    assert stored["items"][0]["unit_price"] == amount
    assert isinstance(stored["amount"], str)


def test_table_errors_name_the_row_and_column(session, flows, people) -> None:
    data = {**SHIPMENT, "items": [{"product": "A", "qty": 0, "unit_price": "1.001"}]}
    with pytest.raises(InvalidData) as info:
        services.create_document(session, people["zhang"], "shipment", data)
    assert set(info.value.errors) >= {"items[1].qty", "items[1].unit_price"}
