"""The print page: number, data, lines and totals, the amount in 大写, review signatures."""

from __future__ import annotations

from sqlalchemy import select

from tests.webui.test_api import Api
from webui.extensions import db
from workflow.models import User


def test_print_page_holds_the_amount_in_words_and_the_signatures(app, client, api_as, login_as):
    with app.app_context():
        for username, display in (("wang", "王芳"), ("li", "李强")):
            db.session.scalars(
                select(User).where(User.username == username)
            ).one().display_name = display
        db.session.commit()
        db.session.remove()
    api = Api(client, api_as)
    doc = api.submitted("zhang")
    assert api.act(doc, "wang", "approve", "核对无误", revision=2).status_code == 200
    assert api.act(doc, "li", "approve", revision=2).status_code == 200
    page = login_as("zhang").get(f"/documents/{doc['id']}/print")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "发货单" in text and doc["number"] in text
    assert "壹万贰仟捌佰元整" in text  # 12,800.00
    assert "¥1,700.00" in text and "¥11,100.00" in text  # line totals: 2000 × 0.85, 300 × 37
    assert "合计" in text and "¥12,800.00" in text
    signatures = text[text.index("复核签字") :]
    assert "王芳" in signatures and "销售内勤" in signatures and "核对无误" in signatures
    assert "李强" in signatures and "库管" in signatures
    assert f"/documents/{doc['id']}" in text  # the way back online


def test_print_page_follows_the_visibility_rule(client, api_as, login_as):
    api = Api(client, api_as)
    doc = api.create("zhang")
    assert login_as("xu").get(f"/documents/{doc['id']}/print").status_code == 404
