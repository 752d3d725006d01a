"""Notifications are written with the action that causes them (a transactional outbox), shown
in the app, and mailed by workers — each message once, also with two workers at once.

A notification to roles is one row (its roles and exclusions aside), however many people hold
the roles: readers find it by the roles they hold; workers expand it into one delivery per
person for mail."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import event, func, select, table, update

from tests.webui.test_api import Api
from webui.extensions import db
from workflow import notify
from workflow.models import (
    Notification,
    NotificationDelivery,
    NotificationExclusion,
    NotificationRole,
    User,
    UserRole,
)


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


def rows(app, model: Any = Notification, **where: Any) -> list[Any]:
    with app.app_context():
        stmt = select(model).filter_by(**where).order_by(model.id)
        found = list(db.session.scalars(stmt))
        db.session.expunge_all()
        db.session.remove()
        return found


def deliveries(app, **where: Any) -> list[NotificationDelivery]:
    """The mail deliveries (one notification to one person), as the workers wrote them."""
    return rows(app, NotificationDelivery, **where)


def told(app, **where: Any) -> list[tuple[int, int]]:
    """(notification id, user id) for each person the matching notifications are for."""
    with app.app_context():
        found = []
        for row in db.session.scalars(select(Notification).filter_by(**where)):
            found += [(row.id, user) for user in db.session.scalars(notify.audience(row))]
        db.session.remove()
        return sorted(found)


def told_users(app, **where: Any) -> set[int]:
    return {user for _, user in told(app, **where)}


def seen_by(api: Api, name: str, doc_id: int, kind: str = "task_waiting") -> int:
    """How many `kind` notifications about the document `name` sees in the app."""
    items = api.get("/notifications", name).get_json()["items"]
    return sum(1 for i in items if i["document_id"] == doc_id and i["kind"] == kind)


def user_id(app, name: str) -> int:
    with app.app_context():
        found = db.session.scalar(select(User.id).where(User.username == name))
        db.session.remove()
        assert found is not None
        return found


def test_a_submit_tells_the_reviewers_and_a_rejection_tells_the_creator(app, api):
    doc = api.submitted("zhang")
    waiting = told(app, kind="task_waiting", document_id=doc["id"])
    reviewers = {user_id(app, u) for u in ("wang", "chen", "li", "zhou", "duo")}
    finance = {user_id(app, u) for u in ("zhao", "qian", "wu")}  # told of the payment check
    assert len(waiting) == len(reviewers | finance)  # each once
    assert {u for _, u in waiting} == reviewers | finance  # not the creator, not finance's actor
    # … and what each person sees in the app says the same
    for name in ("wang", "chen", "li", "zhou", "duo", "zhao", "qian", "wu"):
        assert seen_by(api, name, doc["id"]) == 1, name
    assert seen_by(api, "zhang", doc["id"]) == 0  # the creator: not for their own document
    assert seen_by(api, "xu", doc["id"]) == 0  # sales: not a reviewer
    items = api.get("/notifications", "li").get_json()["items"]
    assert items and "双人复核" in items[0]["text"] and items[0]["read"] is False
    assert api.act(doc, "li", "reject", "批号不符").status_code == 200
    rejected = told(app, kind="rejected", document_id=doc["id"])
    assert [u for _, u in rejected] == [user_id(app, "zhang")]
    text = api.get("/notifications", "zhang").get_json()["items"][0]["text"]
    assert "批号不符" in text


def test_a_refused_action_notifies_nobody(app, api):
    doc = api.submitted("zhang")
    before = len(rows(app)), len(told(app))
    assert api.act(doc, "zhang", "approve").status_code == 403  # self-review
    assert api.act(doc, "wang", "reject", "").status_code == 422  # no reason
    assert (len(rows(app)), len(told(app))) == before


def add_holders(app, count: int, roles: tuple[str, ...] = ("sales_admin", "warehouse")) -> None:
    with app.app_context():
        start = db.session.scalar(select(func.count(User.id)))
        for number in range(start, start + count):
            db.session.add(
                User(
                    username=f"extra{number}",
                    password_hash="-",
                    role_rows=[UserRole(role=roles[number % len(roles)])],
                )
            )
        db.session.commit()
        db.session.remove()


NOTIFICATION_TABLES = (
    "notifications",
    "notification_roles",
    "notification_exclusions",
    "notification_deliveries",
)


def rows_written(app, api: Api) -> tuple[dict[str, int], int]:
    """The notification rows a submit (and finance's payment check) writes in its requests, by
    table, and the people it is for."""
    statements: dict[str, int] = {}

    def count(_conn, _cursor, sql: str, params: Any, _context, executemany: bool) -> None:
        words = sql.split()
        if words[:2] == ["INSERT", "INTO"] and words[2].strip('"') in NOTIFICATION_TABLES:
            statements[words[2].strip('"')] = statements.get(words[2].strip('"'), 0) + 1

    with app.app_context():
        engine = db.engine
        before = {t: db.session.scalar(select(func.count()).select_from(table(t))) for t in
                  NOTIFICATION_TABLES}  # fmt: skip
        db.session.remove()
    event.listen(engine, "before_cursor_execute", count)
    try:
        doc = api.submitted("zhang")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    with app.app_context():
        after = {t: db.session.scalar(select(func.count()).select_from(table(t))) for t in
                 NOTIFICATION_TABLES}  # fmt: skip
        db.session.remove()
    written = {t: after[t] - before[t] for t in NOTIFICATION_TABLES}
    assert statements.get("notification_deliveries", 0) == 0  # the worker's job, not the request's
    assert sum(statements.values()) <= sum(written.values())
    return written, len(told(app, kind="task_waiting", document_id=doc["id"]))


def test_a_submit_writes_as_many_rows_however_many_hold_the_roles(app, api):
    few, told_few = rows_written(app, api)
    add_holders(app, 50)  # 25 more sales administrators, 25 more warehouse keepers
    many, told_many = rows_written(app, api)
    assert told_many == told_few + 50  # the 50 are told …
    assert many == few  # … by the same rows: one notification per state entered, its roles and
    assert few["notifications"] == 2 and few["notification_deliveries"] == 0  # its exclusions
    assert few["notification_roles"] == 3  # finance; sales_admin and warehouse


def test_the_bell_counts_unread_and_the_page_marks_them_read(app, api, login_as):
    api.submitted("zhang")
    li = login_as("li")
    assert 'class="badge"' in li.get("/inbox").get_data(as_text=True)
    page = li.get("/notifications").get_data(as_text=True)
    assert "双人复核" in page
    assert 'class="badge"' not in li.get("/inbox").get_data(as_text=True)


def unread(app, name: str) -> int:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == name))
        count = notify.unread_count(db.session, user)
        db.session.remove()
        return count


def test_the_unread_count_is_right_across_reading_and_new_notifications(app, api, login_as):
    first = api.submitted("zhang")
    assert (unread(app, "li"), unread(app, "zhang"), unread(app, "zhao")) == (1, 0, 1)
    second = api.submitted("wang")  # wang is excluded from his own; zhang is told this time
    assert (unread(app, "li"), unread(app, "zhang"), unread(app, "wang")) == (2, 1, 1)
    items = api.get("/notifications", "li").get_json()["items"]
    assert [i["read"] for i in items] == [False, False]
    login_as("li").get("/notifications")  # the page shows them: read
    assert unread(app, "li") == 0 and unread(app, "zhou") == 2  # zhou's are zhou's
    assert all(i["read"] for i in api.get("/notifications", "li").get_json()["items"])
    assert api.act(first, "li", "reject", "批号不符").status_code == 200
    assert unread(app, "zhang") == 2  # the rejection, personal, on top of the task
    third = api.submitted("chen")
    assert unread(app, "li") == 1
    items = api.get("/notifications", "li").get_json()["items"]
    assert [(i["document_id"], i["read"]) for i in items[:2]] == [
        (third["id"], False),
        (second["id"], True),
    ]
    login_as("zhang").get("/notifications")
    assert unread(app, "zhang") == 0
    assert all(i["read"] for i in api.get("/notifications", "zhang").get_json()["items"])


def test_the_bell_stops_counting_at_its_cap(app, api, login_as, monkeypatch):
    """Past UNREAD_CAP the bell says "N+" (the count stops there); reading clears it."""
    monkeypatch.setattr(notify, "UNREAD_CAP", 2)
    for creator in ("zhang", "wang"):
        api.submitted(creator)
    assert unread(app, "li") == 2
    assert '<span class="badge" aria-label="未读">2</span>' in login_as("li").get("/inbox").text
    api.submitted("chen")
    assert unread(app, "li") == 3  # the cap + 1: "more than 2"
    li = login_as("li")
    assert '<span class="badge" aria-label="未读">2+</span>' in li.get("/inbox").text
    li.get("/notifications")
    assert unread(app, "li") == 0 and 'class="badge"' not in li.get("/inbox").text


def test_a_new_colleague_sees_the_role_notifications_since_their_account(app, api):
    old = api.submitted("zhang")
    add_holders(app, 1, ("warehouse",))
    (newcomer,) = [u for u in rows(app, User) if u.username.startswith("extra")]
    assert seen_by(api, newcomer.username, old["id"]) == 0 and unread(app, newcomer.username) == 0
    assert newcomer.id not in told_users(app, document_id=old["id"])  # not mailed either
    new = api.submitted("zhang")
    assert seen_by(api, newcomer.username, new["id"]) == 1 and unread(app, newcomer.username) == 1
    # someone given the role later sees what was written for it since their account exists
    with app.app_context():
        db.session.add(UserRole(user_id=user_id(app, "xu"), role="warehouse"))
        db.session.commit()
        db.session.remove()
    assert seen_by(api, "xu", old["id"]) == 1 and seen_by(api, "xu", new["id"]) == 1
    # the exclusions hold for everyone: the creator never sees their own document's task
    assert seen_by(api, "zhang", new["id"]) == 0
    with app.app_context():
        excluded = db.session.scalars(select(NotificationExclusion.user_id)).all()
        roles = db.session.scalars(select(NotificationRole.role).distinct()).all()
        db.session.remove()
    assert user_id(app, "zhang") in excluded and "warehouse" in roles


def test_two_workers_mail_each_notification_once(app, api, smtp):
    mailbox, port = smtp
    with app.app_context():
        db.session.execute(update(User).values(email=User.username + "@example.test"))
        db.session.commit()
        db.session.remove()
    for _ in range(3):
        api.submitted("zhang")
    pending = told(app)  # (notification, person)
    assert len(pending) == 3 * (3 + 5)  # each: 3 finance (payment check) + 5 reviewers
    assert deliveries(app) == []  # the workers expand them
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
    addresses = {f"{u.username}@example.test": u.id for u in rows(app, User)}
    marks = [
        (int(m.content.decode().split("X-Fuhe-Notification: ")[1].split("\r\n")[0]),
         addresses[m.rcpt_tos[0]])
        for m in mailbox.messages
    ]  # fmt: skip
    assert sorted(marks) == pending  # each (notification, person) exactly once
    body = mailbox.messages[0].content.decode()
    assert "https://fuhe.test/documents/" in body
    assert {d.email_state for d in deliveries(app)} == {"sent"}
    assert all(n.expanded for n in rows(app))


def test_two_workers_expanding_at_once_write_each_delivery_once(app, api):
    add_holders(app, 10)
    for _ in range(4):
        api.submitted("zhang")
    expected = told(app)
    start = threading.Barrier(2)
    errors: list[BaseException] = []
    expanded: list[int] = []

    def work() -> None:
        start.wait()
        with app.app_context():
            try:
                while (row := notify.expand(db.session)) is not None:
                    expanded.append(row.id)
            except BaseException as exc:  # a duplicate would fail the unique key
                errors.append(exc)
            db.session.remove()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert sorted(expanded) == [n.id for n in rows(app)]  # each notification by one worker
    assert sorted((d.notification_id, d.user_id) for d in deliveries(app)) == expected


def test_a_mail_server_that_fails_is_retried_later(app, api):
    api.submitted("zhang")
    with app.app_context():
        db.session.execute(update(User).values(email=User.username + "@example.test"))
        db.session.commit()

        def broken(_message: Any) -> None:
            raise OSError("connection refused")

        settings = notify.MailSettings(host="127.0.0.1")
        assert notify.deliver(db.session, broken, settings) == 0
        stmt = select(NotificationDelivery).order_by(NotificationDelivery.id)
        row = db.session.scalars(stmt).first()
        assert row is not None and row.attempts == 1 and row.email_state == "pending"
        assert notify.deliver(db.session, broken, settings) == 0  # not due yet: backoff
        assert db.session.get(NotificationDelivery, row.id).attempts == 1
        db.session.remove()


def test_with_mail_off_notifications_stay_in_the_app(app, api):
    api.submitted("zhang")
    with app.app_context():
        assert notify.deliver(db.session, None, notify.MailSettings(host="")) == 0
        db.session.remove()
    assert not deliveries(app, email_state="pending")
    assert len(deliveries(app, email_state="off")) == len(told(app)) == 3 + 5


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
