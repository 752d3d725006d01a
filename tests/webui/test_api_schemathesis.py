"""Schemathesis against the served OpenAPI document (WSGI, in-process): bounded and derandomized.

Every operation gets a fixed number of generated requests, sent with a bearer token of a user
who can reach it; no response may be a 5xx, and every response must match what the document
says about it (status code, content type, body schema)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.webui.test_api import SHIPMENT

EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
USER_FOR = {  # everything else: zhang (sales_admin)
    "put_flow": "admin",
    "check_flow": "admin",
    "flow_versions": "admin",
    "flow_changes": "admin",
    "approve_flow_change": "admin",
    "audit": "shen",
    "audit_verify": "shen",
    "audit_sod": "shen",
    "report_summary": "liu",
    "report_contracts": "liu",
    "list_users": "hr",
    "create_user": "hr",
    "update_user": "hr",
}


@pytest.mark.slow
def test_api_conforms_to_its_openapi_document(app, client, api_as):
    # Something to find: a document in review, so ids 1-2 exist for the generated requests.
    headers = api_as("zhang")
    doc = client.post(
        "/api/v1/documents", json={"flow": "shipment", "data": SHIPMENT}, headers=headers
    ).get_json()
    client.post(
        f"/api/v1/documents/{doc['id']}/actions",
        headers=headers,
        json={"action": "submit", "revision": 1},
    )
    from webui.extensions import db
    from workflow.accounts import create_user

    with app.app_context():
        create_user(db.session, "hr", "hr-password-1", ["user_admin"])
        db.session.remove()
    tokens = {user: api_as(user) for user in ("zhang", "admin", "shen", "liu", "hr")}

    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 35
    failures = []
    for operation in operations:
        user = USER_FOR.get(operation.definition.raw.get("operationId"), "zhang")
        try:
            fuzz(operation, tokens[user])
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)


def fuzz(operation, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()
