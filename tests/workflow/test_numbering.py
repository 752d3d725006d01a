"""Document numbers: FH-2026-000123, per flow and year, unique under concurrent creation."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from tests.workflow.test_concurrency import at_once
from tests.workflow.test_review import SHIPMENT
from workflow import numbering, services
from workflow.definitions.build import load_flow_file
from workflow.errors import InvalidData
from workflow.models import Document
from workflow.process import compiled


@pytest.fixture
def flows(rules_flows):
    """The rules are tested on the frozen shipment (tests/data/flows/rules/shipment.yaml)."""
    return rules_flows


NUMBER = re.compile(r"(FH|KP|BX|BZ)-(\d{4})-(\d{6})")


def this_year() -> int:
    return dt.datetime.now(numbering.ZONE).year


def test_numbers_count_per_flow_and_year(session, flows, people):
    zhang = people["zhang"]
    first = services.create_document(session, zhang, "shipment", SHIPMENT).document
    second = services.create_document(session, zhang, "shipment", SHIPMENT).document
    year = this_year()
    assert first.number == f"FH-{year}-000001"
    assert second.number == f"FH-{year}-000002"
    invoice = compiled(services.current_version(session, "invoicing")).spec.example
    other = services.create_document(session, zhang, "invoicing", invoice).document
    assert other.number == f"KP-{year}-000001"  # each flow counts on its own


def test_a_refused_creation_takes_no_number(session, flows, people):
    zhang = people["zhang"]
    try:
        services.create_document(session, zhang, "shipment", {**SHIPMENT, "customer": ""})
    except InvalidData:
        pass
    else:  # pragma: no cover - the data above is invalid
        raise AssertionError("an empty customer was accepted")
    document = services.create_document(session, zhang, "shipment", SHIPMENT).document
    assert document.number == f"FH-{this_year()}-000001"


def test_the_year_is_the_business_calendar_year(session, flows):
    spec = compiled(services.current_version(session, "shipment")).spec
    new_year_in_shanghai = dt.datetime(2026, 12, 31, 17, 0, tzinfo=dt.UTC)
    assert numbering.next_number(session, spec, new_year_in_shanghai) == "FH-2027-000001"
    assert numbering.next_number(session, spec, new_year_in_shanghai) == "FH-2027-000002"
    last_day = dt.datetime(2026, 12, 31, 15, 59, tzinfo=dt.UTC)
    assert numbering.next_number(session, spec, last_day) == "FH-2026-000001"
    session.rollback()


def test_shipped_flows_have_their_prefixes():
    from tests.workflow.test_definitions import SHIPPED

    prefixes = {p.stem: load_flow_file(p).number_prefix for p in SHIPPED}
    assert prefixes == {
        "shipment": "FH",
        "invoicing": "KP",
        "expense": "BX",
        "tender_deposit": "BZ",
    }


def test_a_flow_without_a_prefix_uses_its_name():
    from tests.workflow.test_definitions import VALID

    spec = load_flow_file(next(p for p in VALID if p.stem == "full_featured"))
    assert spec.number_prefix is None
    assert numbering.prefix_of(spec) == spec.name.upper()


def test_concurrent_creations_get_distinct_consecutive_numbers(
    session_factory, session, flows, people
):
    creators = ["zhang", "wang", "chen", "duo"] * 2
    create = lambda s, u: services.create_document(s, u, "shipment", SHIPMENT)  # noqa: E731
    outcomes = at_once(session_factory, [(name, create) for name in creators])
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    session.expire_all()
    numbers = session.scalars(select(Document.number).where(Document.flow_name == "shipment"))
    sequences = sorted(int(NUMBER.fullmatch(n)[3]) for n in numbers)
    assert sequences == list(range(1, len(creators) + 1))  # no duplicate, no gap


def test_number_search_condition(session, flows, people):
    zhang = people["zhang"]
    documents = [
        services.create_document(session, zhang, "shipment", SHIPMENT).document for _ in range(3)
    ]
    target = documents[1]

    def found(text: str) -> list[int]:
        stmt = select(Document.id).where(numbering.number_condition(text))
        return list(session.scalars(stmt))

    assert found(target.number) == [target.id]
    assert found(target.number.lower()) == [target.id]
    assert target.id in found("2")  # the short form: the sequence (or the id)
    assert found("FH-1999-000002") == []
