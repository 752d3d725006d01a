"""Concurrent approvals over HTTP through two app instances — two separate processes — sharing
one PostgreSQL database: a document advances exactly once, and nothing answers 5xx."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PG_URL, ROOT
from tests.webui.test_api import SHIPMENT

ROUNDS = 8
SERVER = """
import sys
from werkzeug.serving import make_server
from wsgi import app
server = make_server("127.0.0.1", 0, app, threaded=True)
print(server.port, flush=True)
server.serve_forever()
"""

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL not set"),
]


@pytest.fixture
def servers(app, db_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two app processes on random local ports, both on the test PostgreSQL database."""
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "FUHE_INSTANCE_DIR": str(tmp_path),
        "SECRET_KEY": "concurrency-test-secret",
        "FUHE_CONFIG": "default",
    }
    env.pop("FLASK_DEBUG", None)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SERVER],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        ports = [int(p.stdout.readline().strip()) for p in processes]  # type: ignore[union-attr]
        yield [f"http://127.0.0.1:{port}/api/v1" for port in ports]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
            if process.stdout:
                process.stdout.close()


def call(
    base: str, method: str, path: str, token: dict[str, str], body: Any = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={**token, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def race(calls: list[tuple[str, str, str, dict[str, str], Any]]) -> list[tuple[int, Any]]:
    """Fire the calls at the same instant, one thread each."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def worker(index: int) -> None:
        barrier.wait()
        results[index] = call(*calls[index])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_final_approvals_advance_exactly_once(servers, api_as):
    one, two = servers
    tokens = {name: api_as(name) for name in ("zhang", "wang", "li", "zhou", "shen", "zhao")}
    for round_number in range(ROUNDS):
        status, doc = call(
            one, "POST", "/documents", tokens["zhang"], {"flow": "shipment", "data": SHIPMENT}
        )
        assert status == 201, doc
        status, doc = call(
            two,
            "POST",
            f"/documents/{doc['id']}/actions",
            tokens["zhang"],
            {"action": "submit", "revision": 1},
        )
        assert status == 200 and doc["state"] == "payment_check", doc
        # 款到发货: finance confirms the payment (with its reference) before the double check.
        paid = {"paid": True, "held_orders": 0, "payment_ref": f"HD-{round_number}"}
        status, doc = call(
            one,
            "PATCH",
            f"/documents/{doc['id']}",
            tokens["zhao"],
            {"data": paid, "revision": doc["revision"]},
        )
        assert status == 200, doc
        path = f"/documents/{doc['id']}/actions"
        confirm = {"action": "confirm_payment", "revision": doc["revision"]}
        status, doc = call(two, "POST", path, tokens["zhao"], confirm)
        assert status == 200 and doc["state"] == "double_check", doc
        checks = {item["id"]: True for item in doc["review"]["checklist"]}
        approve = {
            "action": "approve",
            "revision": doc["revision"],
            "comment": "核对无误",
            "checks": checks,
        }
        if round_number % 2 == 0:
            # Both approvals of a 2-of-2 state at once: both count, the move happens once.
            results = race(
                [
                    (one, "POST", path, tokens["wang"], approve),
                    (two, "POST", path, tokens["li"], approve),
                ]
            )
            assert [s for s, _ in results] == [200, 200], results
        else:
            # One approval in; two more warehouse people race for the last place.
            assert call(one, "POST", path, tokens["wang"], approve)[0] == 200
            results = race(
                [
                    (one, "POST", path, tokens["li"], approve),
                    (two, "POST", path, tokens["zhou"], approve),
                ]
            )
            statuses = sorted(s for s, _ in results)
            assert statuses[0] == 200 and statuses[1] in (200, 403, 409), results
            for status, body in results:
                if status != 200:
                    assert body["error"]["code"] in (
                        "action_not_allowed",
                        "conflict",
                        "stale_revision",
                    ), body
        assert all(s < 500 for s, _ in results), results
        status, final = call(one, "GET", f"/documents/{doc['id']}", tokens["shen"])
        assert final["state"] == "ready_to_ship", final
        status, history = call(two, "GET", f"/documents/{doc['id']}/history", tokens["shen"])
        moves = [
            e
            for e in history["items"]
            if e["outcome"] == "ok"
            and e["from_state"] == "double_check"
            and e["to_state"] != "double_check"
        ]
        assert len(moves) == 1, history["items"]
        approvals = [
            e for e in history["items"] if e["action"] == "approve" and e["outcome"] == "ok"
        ]
        assert len(approvals) == 2, history["items"]
