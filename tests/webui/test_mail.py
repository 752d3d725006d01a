"""Mail: the content in every UI language (with a link straight to the document), per-user
opt-out and daily digest, and what a worker killed mid-batch leaves behind.

Guarantee (stated honestly): a notification to roles is expanded by one worker into one
delivery per person (one transaction, under the notification's row lock); each delivery is
taken, mailed and marked sent in a transaction of its own under its row lock, so two workers
never mail the same (notification, person). A worker stopped the way systemd, deploys and
Ctrl-C stop it (SIGTERM/SIGINT) finishes and marks the message in flight and takes no other:
two workers, one or both killed mid-batch, and every notification arrives exactly once to each
of its people. Only a worker that cannot finish (SIGKILL, power loss) after the server accepted
a message and before its commit leaves that one message unmarked; the next worker sends it
again with the same Message-ID, and a mailbox that drops duplicate Message-IDs (as mail stores
do) holds each notification once. SMTP has no two-phase commit to do better.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import os
import signal
import subprocess
import sys
import time
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.webui.test_api import Api
from tests.webui.test_notifications import Inbox, deliveries, rows, told, user_id
from webui.extensions import db
from workflow import notify
from workflow.calendar import CHINA
from workflow.models import User

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def api(client, api_as) -> Api:
    return Api(client, api_as)


def local_server(mailbox: Inbox) -> tuple[Any, int]:
    """An SMTP server on a free loopback port (127.0.0.1 only), started."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, port


@pytest.fixture
def smtp():
    mailbox = Inbox()
    controller, port = local_server(mailbox)
    try:
        yield mailbox, port
    finally:
        controller.stop()


def with_addresses(app, language: dict[str, str] | None = None) -> None:
    with app.app_context():
        db.session.execute(update(User).values(email=User.username + "@example.test"))
        for name, lang in (language or {}).items():
            db.session.execute(update(User).where(User.username == name).values(language=lang))
        db.session.commit()
        db.session.remove()


def parsed(envelope: Any) -> email.message.EmailMessage:
    return email.message_from_bytes(envelope.content, policy=email_policy.default)


def mail_to(mailbox: Inbox, name: str) -> list[email.message.EmailMessage]:
    return [parsed(m) for m in mailbox.messages if f"{name}@example.test" in m.rcpt_tos]


def deliver_all(app, port: int, now: dt.datetime | None = None) -> int:
    settings = notify.MailSettings(host="127.0.0.1", port=port, base_url="https://fuhe.test")
    send = notify.smtp_sender(settings)
    with app.app_context():
        count = notify.deliver(db.session, send, settings, batch=100, now=now)
        count += notify.deliver_digests(db.session, send, settings, now=now)
        db.session.remove()
    return count


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("zh", ["待你处理", "发货", "双人复核", "打开单据", "您好"]),
        ("zh_Hant", ["待你處理", "打開單據", "您好"]),
        ("en", ["Waiting for you", "Shipment", "Double check", "Open the document", "Hello"]),
    ],
)
def test_each_mail_speaks_the_readers_language_and_links_to_the_document(
    app, api, smtp, language, words
):
    mailbox, port = smtp
    with_addresses(app, {"li": language})
    doc = api.submitted("zhang")
    deliver_all(app, port)
    (message,) = mail_to(mailbox, "li")
    body = message.get_content()
    for word in words:
        assert word in message["Subject"] + body, word
    assert f"https://fuhe.test/documents/{doc['id']}" in body
    li = user_id(app, "li")
    (notification,) = [n for n, u in told(app, kind="task_waiting") if u == li]
    assert message["Message-ID"] == f"<notification-{notification}-{li}@fuhe>"
    assert message["X-Fuhe-Notification"] == str(notification)


def test_a_rejection_mail_carries_the_reason(app, api, smtp):
    mailbox, port = smtp
    with_addresses(app)
    doc = api.submitted("zhang")
    assert api.act(doc, "li", "reject", "批号不符").status_code == 200
    deliver_all(app, port)
    (message,) = mail_to(mailbox, "zhang")
    assert "批号不符" in message["Subject"]
    assert f"/documents/{doc['id']}" in message.get_content()


def test_who_opts_out_gets_no_mail_but_still_sees_it_in_the_app(app, api, smtp):
    mailbox, port = smtp
    with_addresses(app)
    response = api.patch("/notifications/settings", "li", json={"email": False})
    assert response.status_code == 200 and response.get_json() == {"email": False, "digest": False}
    api.submitted("zhang")
    deliver_all(app, port)
    assert mail_to(mailbox, "li") == [] and len(mail_to(mailbox, "zhou")) == 1
    assert api.get("/notifications", "li").get_json()["items"]  # in the app all the same
    assert [r.email_state for r in deliveries(app, user_id=user_id(app, "li"))] == ["off"]


def test_a_digest_reader_gets_one_mail_a_day(app, api, smtp):
    mailbox, port = smtp
    with_addresses(app)
    assert api.patch("/notifications/settings", "li", json={"digest": True}).status_code == 200
    docs = [api.submitted("zhang") for _ in range(3)]
    now = dt.datetime.now(dt.UTC)
    deliver_all(app, port, now)
    assert mail_to(mailbox, "li") == [] and len(mail_to(mailbox, "zhou")) == 3
    morning = notify.next_digest_time(now)
    assert morning.astimezone(CHINA).hour == 8
    deliver_all(app, port, morning - dt.timedelta(minutes=1))
    assert mail_to(mailbox, "li") == []
    deliver_all(app, port, morning)
    (digest,) = mail_to(mailbox, "li")
    body = digest.get_content()
    assert "每日汇总：3 条通知" in digest["Subject"]
    for doc in docs:
        assert f"https://fuhe.test/documents/{doc['id']}" in body
    deliver_all(app, port, morning + dt.timedelta(hours=1))
    assert len(mail_to(mailbox, "li")) == 1  # once
    assert {r.email_state for r in deliveries(app, user_id=user_id(app, "li"))} == {"sent"}
    assert len(deliveries(app, user_id=user_id(app, "li"))) == 3


def test_the_settings_page_changes_the_settings(app, login_as):
    import re

    li = login_as("li")
    page = li.get("/notifications").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = li.post("/notifications/settings", data={"csrf_token": token, "digest": "on"})
    assert response.status_code == 303
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "li"))
        assert (user.notify_email, user.notify_digest) == (False, True)
        db.session.remove()


# --- a worker killed mid-batch --------------------------------------------------------------------
class HangingInbox(Inbox):
    """Accepts messages, but holds the answer to the `hang_at`-th one for `hold` seconds (the
    worker waits for it: that is the message in flight when it is killed)."""

    def __init__(self, hang_at: int, hold: float = 30) -> None:
        super().__init__()
        self.hang_at = hang_at
        self.hold = hold

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await super().handle_DATA(server, session, envelope)
        if len(self.messages) == self.hang_at:
            await asyncio.sleep(self.hold)
        return "250 OK"


def worker_env(db_url: str, tmp_path: Path, port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "FUHE_INSTANCE_DIR": str(tmp_path),
        "FUHE_CONFIG": "default",
        "SECRET_KEY": "worker-test-secret",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "BASE_URL": "https://fuhe.test",
    }
    env.pop("FLASK_DEBUG", None)
    return env


def start_worker(env: dict[str, str], output: bool = True) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--interval", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE if output else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if output else subprocess.DEVNULL,
        text=True,
    )


def assert_started(worker: subprocess.Popen) -> None:
    """The worker's first line says it runs; if not, the failure shows all it printed."""
    first = worker.stdout.readline()
    if first.strip() != "worker started":
        worker.kill()
        rest = worker.communicate(timeout=10)[0]
        raise AssertionError(f"the worker did not start:\n{first}{rest}")


def wait_for(mailbox: Inbox, count: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while len(mailbox.messages) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(mailbox.messages) >= count, "the workers never got going"


def finish(app, port: int) -> None:
    """Another worker finishes what is left."""
    settings = notify.MailSettings(host="127.0.0.1", port=port, base_url="https://fuhe.test")
    with app.app_context():
        while notify.deliver(db.session, notify.smtp_sender(settings), settings, batch=5):
            pass
        db.session.remove()


def mark(app, message: email.message.EmailMessage) -> tuple[int, int]:
    """(notification id, user id) of a mail: its X-Fuhe-Notification header and its reader."""
    name = str(message["To"]).split("@")[0]
    return int(message["X-Fuhe-Notification"]), user_id(app, name)


def deduplicated(app, mailbox: Inbox) -> list[tuple[int, int]]:
    """What mail stores that drop a repeated Message-ID hold (Cyrus' duplicate delivery
    suppression, Sieve `duplicate`, the big mailbox providers), as (notification, person)."""
    held: dict[str, tuple[int, int]] = {}
    for message in map(parsed, mailbox.messages):
        held.setdefault(message["Message-ID"], mark(app, message))
    return list(held.values())


def test_two_workers_stopped_mid_batch_deliver_every_notification_exactly_once(
    app, api, db_url, tmp_path
):
    """SIGTERM (how systemd, a deploy or Ctrl-C stops a worker) lands on two workers while the
    mail server still holds its answer to one of them: each finishes and marks its message in
    flight, takes no other and exits cleanly; a third finishes the rest. Nothing is lost and
    nothing arrives twice."""
    mailbox = HangingInbox(hang_at=5, hold=2)
    controller, port = local_server(mailbox)
    try:
        with_addresses(app)
        for _ in range(3):
            api.submitted("zhang")
        expected = told(app)  # (notification, person), each to be mailed once
        assert len(expected) == 3 * (3 + 5) and len(rows(app)) == 3 * 2
        env = worker_env(db_url, tmp_path, port)
        workers = [start_worker(env), start_worker(env)]
        try:
            for worker in workers:  # both running, their stop handlers in place
                assert_started(worker)
            wait_for(mailbox, mailbox.hang_at)  # one worker now waits for the server's answer
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            outputs = [worker.communicate(timeout=30)[0] for worker in workers]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait(timeout=10)
                worker.stdout.close()
        assert [worker.returncode for worker in workers] == [0, 0], outputs
        assert all("stopped: the message in flight was finished" in out for out in outputs)
        arrived = len(mailbox.messages)
        assert arrived < len(expected), "the stop came after the batch: nothing was in flight"
        # every message the server accepted was marked: nothing is left to be sent again
        assert len(deliveries(app, email_state="sent")) == arrived
        finish(app, port)
        marks = [mark(app, parsed(m)) for m in mailbox.messages]
        assert sorted(marks) == expected  # each exactly once
        assert {r.email_state for r in deliveries(app)} == {"sent"}
        assert len(deliveries(app)) == len(expected)
    finally:
        controller.stop()


def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_only_the_message_in_flight(
    app, api, db_url, tmp_path
):
    """SIGKILL while the server holds its answer: the one window SMTP cannot close. Nothing is
    lost; the message in flight is sent again with the same Message-ID, so a mailbox that drops
    duplicate Message-IDs holds every notification exactly once."""
    mailbox = HangingInbox(hang_at=4)
    controller, port = local_server(mailbox)
    try:
        with_addresses(app)
        for _ in range(3):
            api.submitted("zhang")
        expected = told(app)  # (notification, person)
        # each: finance told of the payment check (zhao, qian, wu), then the double check's
        # reviewers (wang, chen, li, zhou, duo)
        assert len(expected) == 3 * (3 + 5)
        worker = start_worker(worker_env(db_url, tmp_path, port), output=False)
        try:
            wait_for(mailbox, mailbox.hang_at)
            assert len(mailbox.messages) == mailbox.hang_at
        finally:
            os.kill(worker.pid, signal.SIGKILL)  # mid-batch, waiting for the server's answer
            worker.wait(timeout=10)
        in_flight = len(mailbox.messages)
        assert len(deliveries(app, email_state="sent")) == in_flight - 1  # the last: unmarked
        mailbox.hang_at = 0
        finish(app, port)  # a second worker finishes the batch
        marks = [mark(app, parsed(m)) for m in mailbox.messages]
        assert set(marks) == set(expected)  # every notification arrived to each person
        assert len(marks) == len(expected) + 1  # and only the one in flight twice
        repeated = [m for m in set(marks) if marks.count(m) > 1]
        assert len(repeated) == 1
        ids = [parsed(m)["Message-ID"] for m in mailbox.messages]
        assert len(set(ids)) == len(expected)  # the copy had the same Message-ID
        assert sorted(deduplicated(app, mailbox)) == expected
        assert not deliveries(app, email_state="pending")
        assert {r.email_state for r in deliveries(app)} == {"sent"}
    finally:
        controller.stop()
