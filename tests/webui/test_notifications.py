"""Notifications are written with the action that causes them (a transactional outbox), shown
in the app, and mailed by workers — each message once, also with two workers at once."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from tests.webui.test_api import Api
from webui.extensions import db
from workflow import notify
from workflow.models import Notification, User


@pytest.fixture
def api(client, api_as) -> Api:
    return Api(client, api_as)


class Inbox:
    """A local SMTP server's mailbox (127.0.0.1 only)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp():
    mailbox = Inbox()
    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def rows(app, **where: Any) -> list[Notification]:
    with app.app_context():
        stmt = select(Notification).filter_by(**where).order_by(Notification.id)
        found = list(db.session.scalars(stmt))
        db.session.expunge_all()
        db.session.remove()
        return found


def user_id(app, name: str) -> int:
    with app.app_context():
        found = db.session.scalar(select(User.id).where(User.username == name))
        db.session.remove()
        assert found is not None
        return found


def test_a_submit_tells_the_reviewers_and_a_rejection_tells_the_creator(app, api):
    doc = api.submitted("zhang")
    waiting = {n.user_id for n in rows(app, kind="task_waiting", document_id=doc["id"])}
    reviewers = {user_id(app, u) for u in ("wang", "chen", "li", "zhou", "duo")}
    finance = {user_id(app, u) for u in ("zhao", "qian", "wu")}  # told of the payment check
    assert waiting == reviewers | finance  # sales_admin and warehouse holders, not the creator
    items = api.get("/notifications", "li").get_json()["items"]
    assert items and "双人复核" in items[0]["text"] and items[0]["read"] is False
    assert api.act(doc, "li", "reject", "批号不符").status_code == 200
    told = rows(app, kind="rejected", document_id=doc["id"])
    assert [n.user_id for n in told] == [user_id(app, "zhang")]
    text = api.get("/notifications", "zhang").get_json()["items"][0]["text"]
    assert "批号不符" in text


def test_a_refused_action_notifies_nobody(app, api):
    doc = api.submitted("zhang")
    before = len(rows(app))
    assert api.act(doc, "zhang", "approve").status_code == 403  # self-review
    assert api.act(doc, "wang", "reject", "").status_code == 422  # no reason
    assert len(rows(app)) == before


def test_the_bell_counts_unread_and_the_page_marks_them_read(app, api, login_as):
    api.submitted("zhang")
    li = login_as("li")
    assert 'class="badge"' in li.get("/inbox").get_data(as_text=True)
    page = li.get("/notifications").get_data(as_text=True)
    assert "双人复核" in page
    assert 'class="badge"' not in li.get("/inbox").get_data(as_text=True)


def test_two_workers_mail_each_notification_once(app, api, smtp):
    mailbox, port = smtp
    with app.app_context():
        db.session.execute(update(User).values(email=User.username + "@example.test"))
        db.session.commit()
        db.session.remove()
    for _ in range(3):
        api.submitted("zhang")
    pending = rows(app, email_state="pending")
    assert len(pending) == 3 * (3 + 5)  # each: 3 finance (payment check) + 5 reviewers
    settings = notify.MailSettings(host="127.0.0.1", port=port, base_url="https://fuhe.test")
    send = notify.smtp_sender(settings)
    start = threading.Barrier(2)
    sent: list[int] = []

    def work() -> None:
        start.wait()
        with app.app_context():
            while True:
                count = notify.deliver(db.session, send, settings, batch=4)
                sent.append(count)
                if not count:
                    break
            db.session.remove()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(sent) == len(pending) and len(mailbox.messages) == len(pending)
    ids = [m.content.decode().split("Message-ID: ")[1].split("\r\n")[0] for m in mailbox.messages]
    assert len(set(ids)) == len(pending)  # no message twice
    body = mailbox.messages[0].content.decode()
    assert "https://fuhe.test/documents/" in body
    assert not rows(app, email_state="pending")


def test_a_mail_server_that_fails_is_retried_later(app, api):
    api.submitted("zhang")
    with app.app_context():
        db.session.execute(update(User).values(email=User.username + "@example.test"))
        db.session.commit()

        def broken(_message: Any) -> None:
            raise OSError("connection refused")

        settings = notify.MailSettings(host="127.0.0.1")
        assert notify.deliver(db.session, broken, settings) == 0
        row = db.session.scalars(select(Notification).order_by(Notification.id)).first()
        assert row is not None and row.attempts == 1 and row.email_state == "pending"
        assert notify.deliver(db.session, broken, settings) == 0  # not due yet: backoff
        assert db.session.get(Notification, row.id).attempts == 1
        db.session.remove()


def test_with_mail_off_notifications_stay_in_the_app(app, api):
    api.submitted("zhang")
    with app.app_context():
        assert notify.deliver(db.session, None, notify.MailSettings(host="")) == 0
        db.session.remove()
    assert not rows(app, email_state="pending")
    assert rows(app, email_state="off")


# --- claims: "I am on it" ---------------------------------------------------------------------
def test_a_claim_shows_who_is_on_it_and_never_blocks_the_quorum(app, api):
    doc = api.submitted("zhang")
    path = f"/documents/{doc['id']}/claim"
    claimed = api.post(path, "wang")
    assert claimed.status_code == 200 and claimed.get_json()["claim"]["user"] == "wang"
    assert api.get(f"/documents/{doc['id']}", "li").get_json()["claim"]["user"] == "wang"
    taken = api.post(path, "chen")
    assert taken.status_code == 409 and taken.get_json()["error"]["code"] == "claimed"
    assert api.post(path, "zhang").status_code == 403  # the creator has nothing to do here
    # anyone eligible still acts; the claim does not stop the quorum
    assert api.act(doc, "li", "approve").status_code == 200
    assert api.act(doc, "chen", "approve").status_code == 200
    assert api.get(f"/documents/{doc['id']}", "li").get_json()["claim"] is None


def test_a_claim_is_released_by_its_holder_or_by_deciding(app, api):
    doc = api.submitted("zhang")
    path = f"/documents/{doc['id']}/claim"
    assert api.post(path, "wang").status_code == 200
    assert api.call("DELETE", path, "chen").status_code == 403
    assert api.call("DELETE", path, "wang").get_json()["claim"] is None
    assert api.post(path, "chen").status_code == 200
    assert api.act(doc, "chen", "approve").status_code == 200
    # chen decided: the claim no longer says anyone is on it, and li may claim
    assert api.get(f"/documents/{doc['id']}", "li").get_json()["claim"] is None
    assert api.post(path, "li").get_json()["claim"]["user"] == "li"
