"""Definitions are versioned: documents stay pinned, and move only by explicit migration."""

from __future__ import annotations

import pytest
from sqlalchemy import select

# The review rules are tested on the frozen shipment (tests/data/flows/rules/shipment.yaml).
from tests.conftest import RULES_DEFINITIONS as DEFINITIONS
from tests.workflow.test_review import SHIPMENT
from workflow import audit, services
from workflow.errors import Forbidden, InvalidData
from workflow.models import AuditEvent, Document


@pytest.fixture
def flows(rules_flows):
    """The rules are tested on the frozen shipment (tests/data/flows/rules/shipment.yaml)."""
    return rules_flows


SHIPMENT_YAML = next(p for p in DEFINITIONS if p.stem == "shipment").read_text(encoding="utf-8")
RENAMED = SHIPMENT_YAML.replace("double_check", "dual_check")


def publish(session, text: str) -> int:
    version, _ = services.publish_flow(session, text, "shipment.yaml")
    return version.version


def test_new_version_affects_new_documents_only(session, flows, people) -> None:
    old = services.create_document(session, people["zhang"], "shipment", SHIPMENT).document
    assert publish(session, RENAMED) == 2
    new = services.create_document(session, people["zhang"], "shipment", SHIPMENT).document
    services.act(session, old.id, people["zhang"], "submit", 1)
    services.act(session, new.id, people["zhang"], "submit", 1)
    session.expire_all()
    assert session.get(Document, old.id).state == "double_check"
    assert session.get(Document, new.id).state == "dual_check"
    assert session.get(Document, old.id).flow_version.version == 1


def test_migration_maps_states_and_restarts_the_review(session, flows, people) -> None:
    doc = services.create_document(session, people["zhang"], "shipment", SHIPMENT).document
    services.act(session, doc.id, people["zhang"], "submit", 1)
    services.act(session, doc.id, people["wang"], "approve", 1)
    publish(session, RENAMED)
    with pytest.raises(InvalidData, match="double_check"):
        services.migrate_documents(session, "shipment", {})
    session.expire_all()
    assert session.get(Document, doc.id).flow_version.version == 1  # nothing moved
    with pytest.raises(Forbidden):
        services.migrate_documents(
            session, "shipment", {"double_check": "dual_check"}, people["zhang"]
        )
    moved = services.migrate_documents(session, "shipment", {"double_check": "dual_check"})
    assert moved == [doc.id]
    session.expire_all()
    document = session.get(Document, doc.id)
    assert (document.state, document.flow_version.version) == ("dual_check", 2)
    process = services.get_document(session, doc.id, people["li"])
    assert process.current_approvals() == []  # approvals under the old definition are void
    assert process.actions_for(people["li"]) == ["approve", "reject"]
    # wang approved `double_check`, which is another review state as far as the rules know:
    # the four-eyes rule errs on the side of a fresh pair of eyes.
    assert process.actions_for(people["wang"]) == []
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "migrate")).one()
    assert (event.from_state, event.to_state, event.details["from_version"]) == (
        "double_check",
        "dual_check",
        1,
    )
    assert audit.verify(session).ok
