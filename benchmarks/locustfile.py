"""Load for `make bench` (locust, headless, 127.0.0.1 only).

ReviewCycle: each simulated client owns bearer tokens (creator, second sales administrator,
warehouse keeper, finance) and runs complete review cycles on a shipment — create, submit,
finance confirms the payment, approve, approve — against one or several app instances
(BENCH_HOSTS, comma-separated: clients are spread over them). ApproveOnly: the same clients
approve, as their two reviewers, shipments already waiting in the double check (from the
generated data, each client its own queue; BENCH_QUEUES): approvals and nothing else, the
request the ceiling is compared with. Ceiling: POST /write on the ceiling server, nothing else.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

from locust import FastHttpUser, constant, events, task

_SETUP = (
    json.loads(Path(os.environ["BENCH_SETUP"]).read_text()) if "BENCH_SETUP" in os.environ else {}
)
_HOSTS = [h for h in os.environ.get("BENCH_HOSTS", "").split(",") if h]
_QUEUES = (
    json.loads(Path(os.environ["BENCH_QUEUES"]).read_text()) if "BENCH_QUEUES" in os.environ else []
)
_numbers = itertools.count()
# Every approval the server acknowledged (200): (document id, approver's username), written at
# the end so the benchmark can check each one is stored.
_acknowledged: list[tuple[int, str]] = []


@events.test_stop.add_listener
def _write_acknowledged(**_kwargs) -> None:
    if "BENCH_ACK_FILE" in os.environ:
        Path(os.environ["BENCH_ACK_FILE"]).write_text(json.dumps(_acknowledged))


class TrioClient(FastHttpUser):
    """A client with its trio's bearer tokens and names, on its share of the hosts."""

    abstract = True
    wait_time = constant(0)

    def __init__(self, environment) -> None:
        self.number = next(_numbers)
        if _HOSTS:
            self.host = _HOSTS[self.number % len(_HOSTS)]
        super().__init__(environment)
        trio = _SETUP["trios"][self.number % len(_SETUP["trios"])]
        self.auth = [{"Authorization": f"Bearer {t}"} for t in trio["tokens"]]
        self.names = trio["names"]


class ReviewCycle(TrioClient):
    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.data = _SETUP["shipment"]

    def _post(self, path: str, body: dict, who: int, name: str) -> dict | None:
        with self.client.post(
            path, json=body, headers=self.auth[who], name=name, catch_response=True
        ) as response:
            if response.status_code not in (200, 201):
                response.failure(f"{response.status_code} {response.text[:200]}")
                return None
            return response.json()

    @task
    def cycle(self) -> None:
        doc = self._post("/api/v1/documents", {"flow": "shipment", "data": self.data}, 0, "create")
        if doc is None:
            return
        actions = f"/api/v1/documents/{doc['id']}/actions"
        submitted = self._post(actions, {"action": "submit", "revision": 1}, 0, "submit")
        if submitted is None:
            return
        revision = 1
        if submitted["state"] == "payment_check":  # 款到发货: finance confirms the payment
            paid = {"data": {"paid": True, "payment_ref": "BENCH"}, "revision": 1}
            with self.client.patch(
                f"/api/v1/documents/{doc['id']}", json=paid, headers=self.auth[3],
                name="confirm_payment", catch_response=True,
            ) as response:  # fmt: skip
                if response.status_code != 200:
                    response.failure(f"{response.status_code} {response.text[:200]}")
                    return
            revision = 2
            body = {"action": "confirm_payment", "revision": revision}
            if self._post(actions, body, 3, "confirm_payment") is None:
                return
        approval = {"action": "approve", "revision": revision, "checks": _SETUP.get("checks", {})}
        for who in (1, 2):
            if self._post(actions, approval, who, "approve") is None:
                return
            _acknowledged.append((doc["id"], self.names[who]))


class ApproveOnly(TrioClient):
    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.queue = list(_QUEUES[self.number % len(_QUEUES)]) if _QUEUES else []

    @task
    def approve(self) -> None:
        if not self.queue:  # a queue ran dry: stop the run (locust's rates count until here)
            self.environment.runner.quit()
            return
        document_id, revision = self.queue.pop()
        path = f"/api/v1/documents/{document_id}/actions"
        body = {"action": "approve", "revision": revision, "checks": _SETUP.get("checks", {})}
        for who in (1, 2):
            with self.client.post(
                path, json=body, headers=self.auth[who], name="approve", catch_response=True
            ) as response:
                if response.status_code != 200:
                    response.failure(f"{response.status_code} {response.text[:200]}")
                    return
            _acknowledged.append((document_id, self.names[who]))


class Ceiling(FastHttpUser):
    wait_time = constant(0)

    @task
    def write(self) -> None:
        self.client.post("/write", data=b"", name="write")
