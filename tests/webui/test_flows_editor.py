"""The flow admin's screens and API: check without storing, versions with notes and open
documents, publish (fresh login, same text → no version), four eyes on weakening changes, the
diagram — on both backends."""

from __future__ import annotations

import html as html_lib
import re

import pytest
from sqlalchemy import func, select

from tests.conftest import DEFINITIONS, PASSWORD
from tests.webui.test_api import Api, error_code

EXPENSE = next(p for p in DEFINITIONS if p.stem == "expense").read_text(encoding="utf-8")
YAML = {"Content-Type": "application/yaml"}
THRESHOLD = 'decimal("5000.00")'


@pytest.fixture
def api(client, api_as) -> Api:
    return Api(client, api_as)


@pytest.fixture
def second_admin(app) -> str:
    from webui.extensions import db
    from workflow.accounts import create_user

    with app.app_context():
        create_user(db.session, "admin2", PASSWORD, ("flow_admin",))
        db.session.remove()
    return "admin2"


def versions_stored(app, flow: str = "expense") -> int:
    from webui.extensions import db
    from workflow.models import FlowVersion

    with app.app_context():
        count = db.session.scalar(
            select(func.count()).select_from(FlowVersion).where(FlowVersion.flow_name == flow)
        )
        db.session.remove()
    return count


def line_with(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert match
    return match.group(1)


# --- POST /api/v1/flows/{name}/check --------------------------------------------------------------
def test_check_valid_text_returns_the_diagram_and_stores_nothing(app, api):
    text = EXPENSE.replace(THRESHOLD, 'decimal("8000.00")')
    response = api.post("/flows/expense/check", "admin", data=text, headers=YAML)
    assert response.status_code == 200
    body = response.get_json()
    assert body["ok"] is True and body["weakens"] == []
    assert body["diagram"].startswith("<svg") and "8000.00" in body["diagram"]
    assert "+        when: 'amount > decimal(\"8000.00\")'" in body["diff"]
    assert versions_stored(app) == 1


def test_check_invalid_text_is_422_with_line_message_and_hint(app, api):
    text = EXPENSE.replace("on_approve: payment", "on_approve: paymnt", 1)
    response = api.post("/flows/expense/check", "admin", data=text, headers=YAML)
    assert response.status_code == 422
    assert error_code(response) == "invalid_definition"
    [detail] = response.get_json()["error"]["details"]
    assert set(detail) == {"line", "message", "hint"}
    assert detail["line"] == line_with(text, "on_approve: paymnt")
    assert "did you mean `payment`" in detail["message"]
    assert versions_stored(app) == 1


def test_check_reports_a_trap_loop_naming_its_states(api):
    text = EXPENSE.replace(
        "transitions:\n",
        "transitions:\n"
        "  - {action: park, from: payment, to: parked, roles: [finance]}\n"
        "  - {action: unpark, from: parked, to: payment, roles: [finance]}\n",
    ).replace("  paid:\n", "  parked:\n    label: 搁置\n  paid:\n", 1)
    # payment can still be paid, so nothing is trapped yet
    assert api.post("/flows/expense/check", "admin", data=text, headers=YAML).status_code == 200
    trapped = text.replace(
        "    from: payment\n    to: paid\n", "    from: payment\n    to: parked\n"
    )
    response = api.post("/flows/expense/check", "admin", data=trapped, headers=YAML)
    assert response.status_code == 422
    messages = [d["message"] for d in response.get_json()["error"]["details"]]
    assert any("`payment`, `parked` can never reach a final state" in m for m in messages), messages


def test_check_is_for_flow_admins_only(api):
    response = api.post("/flows/expense/check", "zhang", data=EXPENSE, headers=YAML)
    assert response.status_code == 403


def test_check_needs_yaml(api):
    response = api.post("/flows/expense/check", "admin", json={"yaml": EXPENSE})
    assert response.status_code == 415


# --- versions, notes, four eyes ------------------------------------------------------------------
def test_put_stores_the_note_and_versions_list_it(app, api):
    text = EXPENSE.replace(THRESHOLD, 'decimal("8000.00")')
    response = api.put("/flows/expense?note=门槛提高到8000", "admin", data=text, headers=YAML)
    assert response.status_code == 201 and response.get_json() == {"version": 2}
    items = api.get("/flows/expense/versions", "admin").get_json()["items"]
    assert [v["version"] for v in items] == [2, 1]
    assert items[0]["note"] == "门槛提高到8000" and items[0]["published_by"] == "admin"
    assert items[1]["note"] == "" and items[1]["published_by"] is None
    from webui.extensions import db
    from workflow.models import AuditEvent

    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "publish", AuditEvent.flow_version == 2)
        ).one()
        assert event.details["note"] == "门槛提高到8000"
        assert len(event.details["content_hash"]) == 64
        assert "+        when: 'amount > decimal(\"8000.00\")'" in event.details["diff"]
        db.session.remove()


def test_versions_count_open_documents_per_version(api):
    from tests.webui.test_api import SPECS

    created = api.post(
        "/documents", "xu", json={"flow": "expense", "data": SPECS["expense"].example}
    )
    assert created.status_code == 201, created.get_json()
    text = EXPENSE.replace(THRESHOLD, 'decimal("8000.00")')
    assert api.put("/flows/expense", "admin", data=text, headers=YAML).status_code == 201
    items = api.get("/flows/expense/versions", "admin").get_json()["items"]
    assert {v["version"]: v["open_documents"] for v in items} == {2: 0, 1: 1}


def test_versions_are_for_flow_admins_and_unknown_flows_are_404(api):
    assert api.get("/flows/expense/versions", "shen").status_code == 403
    assert api.get("/flows/nothing/versions", "admin").status_code == 404


def test_a_note_too_long_is_422_and_stores_nothing(app, api):
    text = EXPENSE.replace(THRESHOLD, 'decimal("8000.00")')
    response = api.put(f"/flows/expense?note={'x' * 501}", "admin", data=text, headers=YAML)
    assert response.status_code == 422
    assert versions_stored(app) == 1


LOWER_QUORUM = EXPENSE.replace(
    "      required: 2\n      roles: [sales_manager, gm]",
    "      required: 2\n      roles: [sales_manager]",
    1,  # manager_approval (gm_approval, above 5000, keeps both roles)
)


def test_weakening_review_waits_for_a_second_flow_admin(app, api, second_admin):
    assert LOWER_QUORUM != EXPENSE
    response = api.put("/flows/expense?note=只要经理", "admin", data=LOWER_QUORUM, headers=YAML)
    assert response.status_code == 202
    body = response.get_json()
    assert body["version"] is None and body["status"] == "pending"
    assert body["weakens"] == ["`manager_approval` no longer needs reviewers with role `gm`"]
    assert versions_stored(app) == 1
    change = body["change"]
    pending = api.get("/flows/expense/changes", "admin").get_json()["items"]
    assert [c["id"] for c in pending] == [change]

    own = api.post(f"/flows/expense/changes/{change}/approve", "admin")
    assert own.status_code == 403
    assert versions_stored(app) == 1
    assert api.post(f"/flows/expense/changes/{change}/approve", "zhang").status_code == 403

    approved = api.post(f"/flows/expense/changes/{change}/approve", second_admin)
    assert approved.status_code == 201 and approved.get_json() == {"version": 2}
    items = api.get("/flows/expense/versions", "admin").get_json()["items"]
    assert items[0]["note"] == "只要经理" and items[0]["published_by"] == "admin"
    assert api.get("/flows/expense/changes", "admin").get_json()["items"] == []
    assert api.post(f"/flows/expense/changes/{change}/approve", second_admin).status_code == 404


def test_a_pending_change_is_refused_after_another_publish(app, api, second_admin):
    change = api.put("/flows/expense", "admin", data=LOWER_QUORUM, headers=YAML).get_json()[
        "change"
    ]
    stronger = EXPENSE.replace(THRESHOLD, 'decimal("3000.00")')
    assert api.put("/flows/expense", "admin", data=stronger, headers=YAML).status_code == 201
    response = api.post(f"/flows/expense/changes/{change}/approve", second_admin)
    assert response.status_code == 409
    assert versions_stored(app) == 2


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (
            "      required: 2\n      roles: [sales_admin, finance]",
            "      required: 2\n      roles: [sales_admin, finance]\n"
            "      allow_earlier_reviewers: true",
            "lets people who approved earlier",
        ),
        ("      require_each_role: true\n", "", "no longer requires each role"),
    ],
)
def test_other_weakenings_are_recognised(api, old, new, reason):
    assert old in EXPENSE
    response = api.put("/flows/expense", "admin", data=EXPENSE.replace(old, new, 1), headers=YAML)
    assert response.status_code == 202, response.get_json()
    assert any(reason in r for r in response.get_json()["weakens"])


def test_a_removed_review_state_and_a_lower_quorum_are_weakenings():
    from workflow.definitions.build import load_flow
    from workflow.flowadmin import weakenings

    old = load_flow(EXPENSE, "expense.yaml")
    three = load_flow(
        EXPENSE.replace(
            "      required: 2\n      roles: [sales_admin, finance]",
            "      required: 3\n      roles: [sales_admin, finance]",
        ),
        "expense.yaml",
    )
    assert weakenings(old, three) == []
    assert weakenings(three, old) == ["`receipt_check` needs 2 approvals instead of 3"]
    # Every claim to the manager approval: the GM approval (above 5000) is gone.
    skip = EXPENSE.replace(
        "    on_approve:\n      - to: gm_approval\n"
        "        when: 'amount > decimal(\"5000.00\")'\n      - to: manager_approval\n",
        "    on_approve: manager_approval\n",
        1,
    )
    skip = re.sub(r"  gm_approval:\n(    .*\n)+", "", skip)
    assert weakenings(old, load_flow(skip, "expense.yaml")) == [
        "review state `gm_approval` is removed"
    ]


# --- the pages -----------------------------------------------------------------------------------
def test_flows_page_lists_every_flow_with_versions(login_as):
    page = login_as("admin").get("/flows/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for path in DEFINITIONS:
        assert f'id="flow-{path.stem}"' in html
    assert "v1" in html


@pytest.mark.parametrize("path", ["/flows/", "/flows/expense/edit"])
def test_flow_pages_are_refused_to_others(login_as, path):
    assert login_as("zhang").get(path).status_code == 403


def test_editor_without_javascript_checks_and_shows_errors_at_their_lines(login_as):
    client = login_as("admin")
    page = client.get("/flows/expense/edit").get_data(as_text=True)
    assert "<textarea" in page and "receipt_check" in page and "<svg" in page
    text = EXPENSE.replace("on_approve: payment", "on_approve: paymnt", 1)
    response = client.post("/flows/expense/check", data={"yaml": text, "csrf_token": csrf(page)})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    line = line_with(text, "on_approve: paymnt")
    assert f'data-line="{line}"' in html and "paymnt" in html and "payment" in html


def test_editor_publishes_with_a_note_and_same_text_makes_no_version(app, login_as):
    client = login_as("admin")
    token = csrf(client.get("/flows/expense/edit").get_data(as_text=True))
    text = EXPENSE.replace(THRESHOLD, 'decimal("8000.00")')
    form = {"yaml": text, "note": "门槛 8000", "csrf_token": token}
    response = client.post("/flows/expense/publish", data=form)
    assert response.status_code == 303
    assert versions_stored(app) == 2
    page = client.get("/flows/").get_data(as_text=True)
    assert "门槛 8000" in page and "已发布版本 2" in page
    client.post("/flows/expense/publish", data=form)
    assert versions_stored(app) == 2


def test_editor_never_publishes_an_invalid_text(app, login_as):
    client = login_as("admin")
    token = csrf(client.get("/flows/expense/edit").get_data(as_text=True))
    text = EXPENSE.replace("on_approve: payment", "on_approve: paymnt", 1)
    response = client.post("/flows/expense/publish", data={"yaml": text, "csrf_token": token})
    assert response.status_code == 422
    assert "paymnt" in response.get_data(as_text=True)
    assert versions_stored(app) == 1


def test_publishing_needs_a_fresh_login(app, login_as):
    client = login_as("admin")
    token = csrf(client.get("/flows/expense/edit").get_data(as_text=True))
    with client.session_transaction() as session:
        session["_fresh"] = False  # as after a remember-me cookie brought the session back
    text = EXPENSE.replace(THRESHOLD, 'decimal("8000.00")')
    response = client.post("/flows/expense/publish", data={"yaml": text, "csrf_token": token})
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]
    assert versions_stored(app) == 1


def test_new_flow_from_a_template(app, login_as):
    client = login_as("admin")
    token = csrf(client.get("/flows/").get_data(as_text=True))
    response = client.post(
        "/flows/new", data={"name": "expense_b", "template": "expense", "csrf_token": token}
    )
    assert response.status_code == 303
    editor = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "name: expense_b" in editor and "receipt_check" in editor
    text = EXPENSE.replace("name: expense", "name: expense_b", 1)
    client.post("/flows/expense_b/publish", data={"yaml": text, "csrf_token": token})
    assert versions_stored(app, "expense_b") == 1


def test_new_flow_refuses_a_taken_name(login_as):
    client = login_as("admin")
    token = csrf(client.get("/flows/").get_data(as_text=True))
    response = client.post(
        "/flows/new",
        data={"name": "expense", "template": "expense", "csrf_token": token},
        follow_redirects=True,
    )
    assert "已存在" in response.get_data(as_text=True)


def test_diagram_svg_names_every_state_for_any_version(api, login_as):
    from tests.webui.test_api import SPECS

    client = login_as("zhang")
    response = client.get("/flows/expense/diagram.svg")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    svg = response.get_data(as_text=True)
    for state in SPECS["expense"].states:
        assert f'data-state="{state.name}"' in svg
    text = EXPENSE.replace(THRESHOLD, 'decimal("8000.00")')
    assert api.put("/flows/expense", "admin", data=text, headers=YAML).status_code == 201
    assert "8000.00" in client.get("/flows/expense/diagram.svg").get_data(as_text=True)
    old = client.get("/flows/expense/diagram.svg?version=1").get_data(as_text=True)
    assert "5000.00" in old and "8000.00" not in old
    assert client.get("/flows/expense/diagram.svg?version=9").status_code == 404
    assert client.get("/flows/expense/diagram.svg?version=x").status_code == 404


def test_nav_offers_flows_to_flow_admins_only(login_as):
    assert "/flows/" in login_as("admin").get("/inbox").get_data(as_text=True)
    assert 'href="/flows/"' not in login_as("zhang").get("/inbox").get_data(as_text=True)


# --- structured edits -----------------------------------------------------------------------------
def test_structured_edit_rewrites_the_text_keeping_comments_and_stores_nothing(app, login_as):
    client = login_as("admin")
    page = client.get("/flows/expense/edit").get_data(as_text=True)
    assert 'value="review:receipt_check"' in page
    commented = "# 费用报销流程（注释应保留）\n" + EXPENSE
    response = client.post(
        "/flows/expense/structured",
        data={
            "yaml": commented,
            "edit": "review:receipt_check",
            "review-receipt_check-required": "3",
            "review-receipt_check-roles": ["sales_admin", "finance"],
            "csrf_token": csrf(page),
        },
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "# 费用报销流程（注释应保留）" in html
    assert "required: 3" in html and "roles: [sales_admin, finance]" in html
    assert versions_stored(app) == 1


def test_structured_edit_with_a_bad_quorum_is_refused_in_words(app, login_as):
    client = login_as("admin")
    page = client.get("/flows/expense/edit").get_data(as_text=True)
    form = {
        "yaml": EXPENSE,
        "edit": "review:receipt_check",
        "review-receipt_check-required": "1",
        "review-receipt_check-roles": ["sales_admin"],
        "csrf_token": csrf(page),
    }
    response = client.post("/flows/expense/structured", data=form)
    assert response.status_code == 422
    assert "at least 2 distinct people" in response.get_data(as_text=True)
    form["review-receipt_check-required"] = "two"
    response = client.post("/flows/expense/structured", data=form)
    assert response.status_code == 422
    assert versions_stored(app) == 1


@pytest.mark.parametrize(
    ("edit", "values"),
    [
        (
            "review:manager_approval",
            {
                "review-manager_approval-required": "2",
                "review-manager_approval-roles": ["sales_manager"],
            },
        ),
        (
            "review:gm_approval",
            {"review-gm_approval-required": "2", "review-gm_approval-roles": ["gm"]},
        ),
    ],
)
def test_a_structured_edit_that_weakens_review_waits_for_a_second_admin(
    app, login_as, edit, values
):
    client = login_as("admin")
    page = client.get("/flows/expense/edit").get_data(as_text=True)
    token = csrf(page)
    response = client.post(
        "/flows/expense/structured",
        data={"yaml": EXPENSE, "edit": edit, "csrf_token": token, **values},
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "削弱了复核" in html
    edited = re.search(r'<textarea id="yaml"[^>]*>(.*?)</textarea>', html, re.S).group(1)
    text = html_lib.unescape(edited)
    published = client.post(
        "/flows/expense/publish", data={"yaml": text, "note": "n", "csrf_token": token}
    )
    assert published.status_code == 303
    assert versions_stored(app) == 1  # pending, not published
    assert "待批准的修改" in client.get("/flows/").get_data(as_text=True)


# --- moving documents in flight ------------------------------------------------------------------
SHIPMENT_YAML = next(p for p in DEFINITIONS if p.stem == "shipment").read_text(encoding="utf-8")


def two_documents_in_review_then_v2(app, api) -> tuple[int, int]:
    """Two shipments in `double_check` on v1 (submitted, payment confirmed by finance), each
    approved once by wang; then v2 renames it."""
    ids = []
    for _ in range(2):
        doc = api.submitted("zhang")
        assert api.act(doc, "wang", "approve").status_code == 200
        ids.append(doc["id"])
    from webui.extensions import db
    from workflow import services

    with app.app_context():
        renamed = SHIPMENT_YAML.replace("double_check", "dual_check")
        services.publish_flow(db.session, renamed, "shipment.yaml")
        db.session.remove()
    return ids[0], ids[1]


def test_migration_preview_lists_voided_approvals_and_stores_nothing(app, api, login_as):
    first, second = two_documents_in_review_then_v2(app, api)
    client = login_as("admin")
    page = client.get("/flows/shipment/migrate")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'value="{first}"' in html and f'value="{second}"' in html
    token = csrf(html)
    unmapped = client.post(
        "/flows/shipment/migrate", data={"document": [str(first)], "csrf_token": token}
    ).get_data(as_text=True)
    assert "does not exist in version 2" in unmapped
    preview = client.post(
        "/flows/shipment/migrate",
        data={"document": [str(first)], "map-double_check": "dual_check", "csrf_token": token},
    ).get_data(as_text=True)
    row = re.search(rf"<tr class=\"\"><td>#{first}</td>(.*?)</tr>", preview, re.S).group(1)
    assert "dual_check" in row and "wang" in row
    assert f"#{second}</td>" not in preview.split('<table class="preview">')[1]
    assert api.get(f"/documents/{first}", "zhang").get_json()["flow_version"] == 1


def test_migration_moves_exactly_the_chosen_documents(app, api, login_as):
    first, second = two_documents_in_review_then_v2(app, api)
    client = login_as("admin")
    token = csrf(client.get("/flows/shipment/migrate").get_data(as_text=True))
    response = client.post(
        "/flows/shipment/migrate/apply",
        data={"document": [str(first)], "map-double_check": "dual_check", "csrf_token": token},
    )
    assert response.status_code == 303
    moved = api.get(f"/documents/{first}", "zhang").get_json()
    assert (moved["flow_version"], moved["state"]) == (2, "dual_check")
    assert moved["review"]["approvals"] == []  # wang's approval is void, as the preview said
    # The double check is blind: wang, who decided, sees the approvals (the creator does not).
    stayed = api.get(f"/documents/{second}", "wang").get_json()
    assert (stayed["flow_version"], stayed["state"]) == (1, "double_check")
    assert [a["user"] for a in stayed["review"]["approvals"]] == ["wang"]
    history = api.get(f"/documents/{first}/history", "zhang").get_json()["items"]
    assert history[-1]["action"] == "migrate" and history[-1]["flow_version"] == 2


def test_migration_is_for_flow_admins_only(app, api, login_as):
    two_documents_in_review_then_v2(app, api)
    client = login_as("zhang")
    assert client.get("/flows/shipment/migrate").status_code == 403


def test_structured_edit_of_a_guard_threshold_redraws_the_diagram(login_as):
    client = login_as("admin")
    page = client.get("/flows/expense/edit").get_data(as_text=True)
    # The 5000 route leaves the receipt check (to the GM approval).
    assert 'name="guard-r:receipt_check:0-0" value="5000.00"' in page
    response = client.post(
        "/flows/expense/structured",
        data={
            "yaml": EXPENSE,
            "edit": "guard:r:receipt_check:0",
            "guard-r:receipt_check:0-0": "8000.00",
            "csrf_token": csrf(page),
        },
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    diagram = html.split('id="diagram"')[1].split("</svg>")[0]
    assert "8000.00" in diagram and "5000.00" not in diagram
