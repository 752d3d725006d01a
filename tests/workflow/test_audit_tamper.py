"""Tampering with the business tables behind the audit chain's back, as a database
administrator would (raw SQL, no key): `verify` must name the document and what differs.

Every case here passed `audit verify` before events carried the revision data hash, review rows
named their event and events were sealed with a key.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tests.workflow.test_review import SHIPMENT
from workflow import audit, services
from workflow.models import AuditChain, AuditEvent, Review, User


@pytest.fixture
def flows(rules_flows):
    """The rules are tested on the frozen shipment (tests/data/flows/rules/shipment.yaml)."""
    return rules_flows


@pytest.fixture
def docs(session, flows, people) -> dict[str, int]:
    """`approved`: two approvals given to revision 2 (after an edit); `waiting`: one approval."""
    approved = services.create_document(session, people["zhang"], "shipment", SHIPMENT)
    a = approved.document.id
    services.edit_document(session, a, people["zhang"], {"order_no": "SO-2026-2048"}, 1)
    services.act(session, a, people["zhang"], "submit", 2)
    services.act(session, a, people["wang"], "approve", 2, "核对无误")
    services.act(session, a, people["li"], "approve", 2, "数量规格一致")
    waiting = services.create_document(session, people["zhang"], "shipment", SHIPMENT)
    w = waiting.document.id
    services.act(session, w, people["zhang"], "submit", 1)
    services.act(session, w, people["wang"], "approve", 1, "看过了")
    result = audit.verify(session)
    assert result.ok, result.report
    return {"approved": a, "waiting": w}


def sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def problems(session: Session) -> str:
    session.expire_all()
    session.rollback()
    result = audit.verify(session)
    assert not result.ok, "tampering went unnoticed"
    return result.report


def test_document_state_changed(engine, session, docs):
    sql(engine, "UPDATE documents SET state = 'approved' WHERE id = :d", d=docs["waiting"])
    report = problems(session)
    assert f"document {docs['waiting']}: state is `approved`" in report
    assert "`double_check`" in report


def test_document_amount_changed(engine, session, docs):
    doc = docs["approved"]
    with engine.begin() as conn:
        data = conn.execute(text("SELECT data FROM documents WHERE id = :d"), {"d": doc}).scalar()
        data = json.loads(data) if isinstance(data, str) else data
        data["amount"] = "1.00"
        conn.execute(
            text("UPDATE documents SET data = :v WHERE id = :d"),
            {"v": json.dumps(data, ensure_ascii=False), "d": doc},
        )
    report = problems(session)
    assert f"document {doc}: data differs from revision 2" in report
    assert "amount" in report


def test_revision_data_changed(engine, session, docs):
    doc = docs["approved"]
    with engine.begin() as conn:
        data = conn.execute(
            text("SELECT data FROM document_revisions WHERE document_id = :d AND number = 1"),
            {"d": doc},
        ).scalar()
        data = json.loads(data) if isinstance(data, str) else data
        data["customer"] = "别的公司"
        conn.execute(
            text("UPDATE document_revisions SET data = :v WHERE document_id = :d AND number = 1"),
            {"v": json.dumps(data, ensure_ascii=False), "d": doc},
        )
    assert f"document {doc}: revision 1's data differs" in problems(session)


def test_review_reattributed(engine, session, docs):
    doc = docs["approved"]
    zhou = session.scalar(select(User.id).where(User.username == "zhou"))
    session.rollback()
    sql(engine, "UPDATE reviews SET user_id = :u WHERE document_id = :d AND comment = '核对无误'",
        u=zhou, d=doc)  # fmt: skip
    report = problems(session)
    assert f"document {doc}: the review of event" in report
    assert "reviewer `zhou`, the audit chain says `wang`" in report


def test_reviews_deleted(engine, session, docs):
    doc = docs["approved"]
    sql(engine, "DELETE FROM reviews WHERE document_id = :d", d=doc)
    report = problems(session)
    assert f"document {doc}: the review (approve by wang" in report and "was deleted" in report
    assert f"document {doc}: the review (approve by li" in report


def test_review_inserted(engine, session, docs):
    doc = docs["waiting"]
    zhou = session.scalar(select(User.id).where(User.username == "zhou"))
    session.rollback()
    sql(engine, "INSERT INTO reviews (document_id, state, round, revision, user_id, decision, "
        "comment, at) VALUES (:d, 'double_check', 1, 1, :u, 'approve', '', '2026-11-30')",
        d=doc, u=zhou)  # fmt: skip
    assert f"document {doc}: the review (approve by zhou) has no audit event" in problems(session)


def test_review_comment_changed(engine, session, docs):
    sql(engine, "UPDATE reviews SET comment = '随便' WHERE document_id = :d", d=docs["waiting"])
    assert "has comment `随便`, the audit chain says `看过了`" in problems(session)


def test_review_credited_to_a_principal_afterwards(engine, session, docs):
    """A plain approval rewritten as a delegate's ("on behalf of" someone who never delegated)."""
    zhou = session.scalar(select(User.id).where(User.username == "zhou"))
    session.rollback()
    sql(engine, "UPDATE reviews SET on_behalf_of_id = :u WHERE document_id = :d",
        u=zhou, d=docs["waiting"])  # fmt: skip
    assert "has on behalf of `zhou`, the audit chain says `None`" in problems(session)


def test_review_checklist_rewritten(engine, session, docs):
    """Points of a checklist the reviewer never confirmed, written into the review row."""
    sql(engine, "UPDATE reviews SET checks = :c WHERE document_id = :d",
        c=json.dumps({"confirmed": ["quantity"]}), d=docs["waiting"])  # fmt: skip
    report = problems(session)
    assert f"document {docs['waiting']}: the review of event" in report
    assert "has checks `{'confirmed': ['quantity']}`, the audit chain says `None`" in report


def test_submitter_rewritten(engine, session, docs):
    """entered_by decides who may not approve (the submitter): rewriting it is reported."""
    wang = session.scalar(select(User.id).where(User.username == "wang"))
    session.rollback()
    sql(engine, "UPDATE documents SET entered_by_id = :u WHERE id = :d", u=wang, d=docs["waiting"])
    assert f"document {docs['waiting']}: submitter" in problems(session)


def test_review_round_rewound(engine, session, docs):
    """An older round's approvals would count again: reported."""
    sql(engine, "UPDATE documents SET review_round = 0 WHERE id = :d", d=docs["waiting"])
    assert f"document {docs['waiting']}: review round is `0`" in problems(session)


def test_revision_deleted_and_document_rewound(engine, session, docs):
    doc = docs["approved"]
    sql(engine, "DELETE FROM document_revisions WHERE document_id = :d AND number = 2", d=doc)
    sql(engine, "UPDATE documents SET revision = 1 WHERE id = :d", d=doc)
    report = problems(session)
    assert f"document {doc}: revision 2 was deleted" in report
    assert f"document {doc}: revision is `1`, the audit chain says `2`" in report


def test_document_deleted_with_its_rows(engine, session, docs):
    doc = docs["waiting"]
    for table in (
        "reviews", "document_revisions", "overdue_notices", "notifications", "unique_claims",
        "task_claims",
    ):  # fmt: skip
        sql(engine, f"DELETE FROM {table} WHERE document_id = :d", d=doc)
    sql(engine, "DELETE FROM documents WHERE id = :d", d=doc)
    assert f"document {doc}: the document was deleted" in problems(session)


def test_flow_definition_rewritten(engine, session, docs):
    sql(
        engine, "UPDATE flow_versions SET yaml_text = yaml_text || ' ' WHERE flow_name = 'shipment'"
    )
    assert "flow `shipment` version 1: its definition text differs" in problems(session)


# --- forging events -------------------------------------------------------------------------------
def _plain_sha256(event: AuditEvent) -> str:
    return hashlib.sha256(audit.event_payload(event).encode()).hexdigest()


def test_forged_approval_hashed_without_the_key(engine, session, docs, people):
    """A new, correctly chained 'approve' by someone who never acted, hashed with SHA-256 as
    anyone could, plus the review row it would need: the seal does not match."""
    doc = docs["waiting"]
    key = audit.document_chain(doc)
    chain = session.get(AuditChain, key)
    last = session.scalar(
        select(AuditEvent).where(AuditEvent.chain_key == key, AuditEvent.chain_seq == chain.length)
    )
    forged = AuditEvent(
        id=10_000, at=last.at, chain_key=key, chain_seq=chain.length + 1, prev_hash=chain.head,
        hash="", document_id=doc, flow="shipment", flow_version=1, actor="zhou",
        action="approve", outcome="ok", from_state="double_check", to_state="approved",
        revision=1, comment="", details=None, key_id=last.key_id, data_hash=last.data_hash,
    )  # fmt: skip
    forged.hash = _plain_sha256(forged)
    session.add(forged)
    chain.length, chain.head = forged.chain_seq, forged.hash
    zhou = people["zhou"].id
    session.add(Review(document_id=doc, state="double_check", round=1, revision=1, user_id=zhou,
                       decision="approve", comment="", event_seq=forged.chain_seq))  # fmt: skip
    session.commit()
    sql(engine, "UPDATE documents SET state = 'approved' WHERE id = :d", d=doc)
    report = problems(session)
    assert "event 10000 (" in report and "was altered or forged" in report


def test_event_edited_and_chain_rehashed_without_the_key(engine, session, docs):
    """The comment of an approval edited and every later hash recomputed with plain SHA-256."""
    key = audit.document_chain(docs["approved"])
    events = list(session.scalars(
        select(AuditEvent).where(AuditEvent.chain_key == key).order_by(AuditEvent.chain_seq)
    ))  # fmt: skip
    victim = next(e.id for e in events if e.comment == "核对无误")
    session.rollback()
    sql(engine, "UPDATE audit_events SET comment = '随便看看' WHERE id = :i", i=victim)
    session.expire_all()
    events = list(session.scalars(
        select(AuditEvent).where(AuditEvent.chain_key == key).order_by(AuditEvent.chain_seq)
    ))  # fmt: skip
    prev = audit.GENESIS
    for event in events:
        event.prev_hash = prev
        event.hash = _plain_sha256(event)
        prev = event.hash
    chain = session.get(AuditChain, key)
    chain.head = prev
    session.commit()
    report = problems(session)
    assert f"event {events[0].id} (" in report and "forged" in report


def test_event_sealed_with_another_key(engine, session, docs):
    """Someone with a key of their own (not the deployment's) cannot seal an event that verifies."""
    key = audit.document_chain(docs["waiting"])
    event = session.scalar(
        select(AuditEvent).where(AuditEvent.chain_key == key, AuditEvent.chain_seq == 1)
    )
    theirs = audit.Keyring.from_settings("someone-elses-key-0123456789")
    event.comment = "改过"
    event.key_id = theirs.current_id
    event.hash = audit.event_hash(event, theirs)
    session.commit()
    assert f"event {event.id} (" in problems(session)
    assert "unknown key" in audit.verify(session).report


def test_rotated_key_old_events_still_verify(session, docs, people):
    """After rotation (new AUDIT_KEY, the old one in AUDIT_KEYS) both generations verify; without
    the old key its events are reported."""
    old = audit.keyring()
    new = audit.Keyring.from_settings(
        "the-next-audit-key-2027", ["testing-audit-key-not-for-production"]
    )
    try:
        audit.configure(new)
        services.act(session, docs["waiting"], people["li"], "approve", 1, "新密钥")
        assert audit.verify(session).ok
        alone = audit.Keyring.from_settings("the-next-audit-key-2027")
        assert "unknown key" in audit.verify(session, keys=alone).report
    finally:
        audit.configure(old)


def test_every_event_of_a_chain_deleted(engine, session, docs):
    """The chain's registry row stays, its events are gone: named, with how many were lost."""
    key = audit.document_chain(docs["waiting"])
    sql(engine, "DELETE FROM audit_events WHERE chain_key = :k", k=key)
    assert f"chain `{key}` has lost all 3 of its events" in problems(session)


def test_event_in_no_registered_chain(engine, session, docs):
    sql(engine, "UPDATE audit_events SET chain_key = 'document:999' WHERE chain_key = :k",
        k=audit.document_chain(docs["waiting"]))  # fmt: skip
    assert "events of `document:999` belong to no registered chain" in problems(session)
