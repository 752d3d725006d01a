"""Drafting without surprises: money as the app shows it, only this step's fields, a form that
fits a phone, a CSRF token as long-lived as the sign-in, a favicon."""

from __future__ import annotations

import re

import pytest

from tests.webui.test_inbox import SHIPMENT_FORM, csrf
from webui.extensions import db
from workflow.models import Document


def test_money_with_thousands_separators_is_accepted(app, login_as):
    zhang = login_as("zhang")
    data = {
        **SHIPMENT_FORM,
        "items-1-unit_price": "50.00",
        "amount": "12,800.00",
        "csrf_token": csrf(zhang, "/new/shipment"),
    }
    response = zhang.post("/new/shipment", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    with app.app_context():
        assert str(db.session.query(Document).one().data["amount"]) == "12800.00"


def test_badly_grouped_money_is_still_refused(app, login_as):
    zhang = login_as("zhang")
    data = {**SHIPMENT_FORM, "amount": "12,80.00", "csrf_token": csrf(zhang, "/new/shipment")}
    response = zhang.post("/new/shipment", data=data)
    assert response.status_code == 422
    assert 'value="12,80.00"' in response.get_data(as_text=True)  # kept as typed


def test_the_create_form_hides_later_steps_fields(login_as):
    zhang = login_as("zhang")
    shipment = zhang.get("/new/shipment").get_data(as_text=True)
    assert 'name="customer"' in shipment and 'name="tracking_no"' not in shipment
    assert 'name="delivery_note_signed"' not in shipment
    invoice = zhang.get("/new/invoicing").get_data(as_text=True)
    assert 'name="order_no"' in invoice
    assert 'name="invoice_number"' not in invoice and 'name="mail_tracking_no"' not in invoice
    deposit = zhang.get("/new/tender_deposit").get_data(as_text=True)
    assert 'name="result"' not in deposit and 'name="payment_ref"' not in deposit


def test_table_cells_carry_their_column_name_for_phone_cards(login_as):
    page = login_as("zhang").get("/new/shipment").get_data(as_text=True)
    assert re.search(r'<td data-label="[^"]+">\s*<input[^>]+name="items-0-qty"', page), page


def test_css_keeps_forms_inside_a_phone_and_contrast_at_3_to_1(client):
    response = client.get("/static/css/app.css")
    css = response.get_data(as_text=True)
    response.close()
    assert re.search(r"\.docform fieldset \{[^}]*min-width: 0", css)
    assert "#9aa5b1" not in css and "#f79009" not in css  # 2.5:1 and 2.35:1 on white


def test_csrf_token_lives_as_long_as_the_sign_in(app):
    assert app.config["WTF_CSRF_TIME_LIMIT"] is None


def test_favicon(login_as, client):
    page = login_as("zhang").get("/inbox").get_data(as_text=True)
    link = re.search(r'<link rel="icon" href="([^"]+)"', page)
    assert link
    response = client.get(link.group(1))
    assert response.status_code == 200 and b"<svg" in response.get_data()
    response.close()


def test_choice_values_read_in_english_and_are_stored_as_they_are(client, api_as, login_as):
    from tests.webui.test_api import SHIPMENT

    created = client.post(
        "/api/v1/documents", headers=api_as("zhang"), json={"flow": "shipment", "data": SHIPMENT}
    )
    assert created.status_code == 201 and created.get_json()["data"]["carrier"] == "物流"
    doc_id = created.get_json()["id"]
    zhang = login_as("zhang")
    english = {"Accept-Language": "en"}
    page = zhang.get(f"/documents/{doc_id}", headers=english).get_data(as_text=True)
    assert "<bdi>Freight</bdi>" in page and "<bdi>物流</bdi>" not in page
    chinese = zhang.get(f"/documents/{doc_id}").get_data(as_text=True)
    assert "<bdi>物流</bdi>" in chinese
    form = zhang.get("/new/shipment", headers=english).get_data(as_text=True)
    assert '<option value="物流" >Freight</option>' in form
    assert '<option value="快递" >Express courier</option>' in form


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize(
    ("rule", "pattern"),
    [
        (":focus-visible", r":focus-visible \{[^}]*outline: \d+px solid (#[0-9a-f]{6})"),
        ("inputs", r"\ninput, select, textarea \{[^}]*border: 1px solid (#[0-9a-f]{6})"),
        ("buttons", r"\nbutton, \.button \{[^}]*border: 1px solid (#[0-9a-f]{6})"),
    ],
)
def test_focus_ring_and_control_borders_reach_3_to_1_on_white_and_on_the_page(
    client, rule, pattern
):
    response = client.get("/static/css/app.css")
    css = response.get_data(as_text=True)
    response.close()
    found = re.search(pattern, css)
    assert found, rule
    page = re.search(r"--bg: (#[0-9a-f]{6})", css).group(1)
    for background in ("#ffffff", page):
        assert contrast(found.group(1), background) >= 3, (rule, background)


@pytest.mark.parametrize(
    ("headers", "title", "button"),
    [
        ({"Accept-Language": "en"}, "<h1>New expense claim</h1>", ">New expense claim</a>"),
        ({}, "<h1>新建费用报销</h1>", ">新建费用报销</a>"),
    ],
)
def test_new_document_titles_read_as_a_sentence(login_as, headers, title, button):
    rep = login_as("xu")  # a sales rep starts expense claims
    assert title in rep.get("/new/expense", headers=headers).get_data(as_text=True)
    assert button in rep.get("/inbox", headers=headers).get_data(as_text=True)
