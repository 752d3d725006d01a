"""The document page: a rejection banner only while the rejection stands, people by name, the
flow version shown."""

from __future__ import annotations

from sqlalchemy import select

from tests.webui.test_api import Api
from webui.extensions import db
from workflow.models import User


def name(app, username: str, display: str) -> None:
    with app.app_context():
        db.session.scalars(
            select(User).where(User.username == username)
        ).one().display_name = display
        db.session.commit()
        db.session.remove()


def test_the_rejected_banner_lasts_only_while_the_rejection_stands(app, client, api_as, login_as):
    api = Api(client, api_as)
    name(app, "wang", "王芳")
    doc = api.submitted("zhang")
    assert api.act(doc, "wang", "reject", "数量与订单不符", revision=2).status_code == 200
    zhang = login_as("zhang")
    page = zhang.get(f"/documents/{doc['id']}").get_data(as_text=True)
    assert "已被驳回" in page and "驳回人 王芳" in page and "数量与订单不符" in page
    assert api.act(doc, "zhang", "submit", revision=2).status_code == 200  # resubmitted as is
    page = zhang.get(f"/documents/{doc['id']}").get_data(as_text=True)
    assert "已被驳回" not in page
    assert "数量与订单不符" in page  # still in the history, where it belongs
    assert "<strong>王芳</strong>" in page and "<strong>wang</strong>" not in page


def test_the_document_shows_its_flow_version(client, api_as, login_as):
    api = Api(client, api_as)
    doc = api.create("zhang")
    page = login_as("zhang").get(f"/documents/{doc['id']}").get_data(as_text=True)
    assert "流程版本 v1" in page
